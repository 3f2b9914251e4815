"""Progress bars for long CLI work (a large import), on stderr and only where someone watches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def import_progress(
    console: Console, label: str, *, enabled: bool | None = None
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a `(done_bytes, total_bytes)` callback that drives a bar, or None when there is no bar.

    `enabled=None` shows it when the console is a terminal (so pipes and logs stay clean)."""
    show = console.is_terminal if enabled is None else enabled
    if not show:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task(label, total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance

"""Inline SVG charts shared by `dunning report --html` and the web dashboard: no library, no script needed.

What the charts promise a reader (each was a way the first versions misled):

- **Rates are drawn on a 0–100% scale.** A 4% rate is a short bar, not a full one.
- **Ticks are round and evenly spaced** (steps of 1, 2 or 5 × 10ⁿ) and the axis ends on a tick, so no bar
  reaches past the top label and 0, 250k, 500k … replace 0, 183,417, 366,834 ….
- **Aging buckets use a severity scale**: current is green, then yellow through orange to deep red as
  invoices get older — the same colour means the same bucket in every chart.
- **Series colours carry no alarm**: red is reserved for the severity scale, so expected cash (a forecast's
  "overdue" source) is never drawn in red.
- **Axis labels stay readable**: long category labels are shortened (the full text is the mark's tooltip)
  and turned at an angle when they would overlap.

Numbers on the axis go through `number_format` (default: compact `1.2M`, `250k`); the web pages pass a
locale-aware one. Every mark carries `data-tip` (read by the page's hover script) and a `<title>`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: Colours for series that are not ordered by severity (no red among them).
SERIES_COLOURS = ("#2563eb", "#0d9488", "#8b5cf6", "#f59e0b", "#06b6d4", "#64748b", "#84cc16", "#db2777")
#: Current (green), then increasingly severe overdue buckets.
SEVERITY_COLOURS = ("#16a34a", "#facc15", "#f59e0b", "#f97316", "#dc2626", "#991b1b", "#5b1010")
GRID = "#e2e8f0"
LABEL_CHARS = 16
CHAR_WIDTH = 6.4

NumberFormat = Callable[[float], str]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def compact(value: float) -> str:
    """`1500000` → `1.5M`, `250000` → `250k`, `12` → `12`: short axis labels in any language."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def severity_colours(count: int) -> list[str]:
    """`count` colours from green (the first: current) through yellow to deep red (the oldest bucket)."""
    if count <= 0:
        return []
    if count == 1:
        return [SEVERITY_COLOURS[0]]
    overdue = SEVERITY_COLOURS[1:]
    picks = [overdue[round(i * (len(overdue) - 1) / max(count - 2, 1))] for i in range(count - 1)]
    return [SEVERITY_COLOURS[0], *picks]


def nice_ticks(top: float, *, count: int = 6) -> list[float]:
    """Evenly spaced round ticks from 0 to at least `top` (steps of 1, 2 or 5 × 10ⁿ; about `count` ticks)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    steps = max(math.ceil(top / step - 1e-9), 1)
    return [round(step * i, 10) for i in range(steps + 1)]


PERCENT_TICKS = [0.0, 0.25, 0.5, 0.75, 1.0]


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _shown(value: float | None, percent: bool, number_format: NumberFormat) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.1f}%" if percent else f"{value:,.2f}"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _axis_labels(labels: Sequence[str], left: float, slot: float, baseline: float) -> tuple[list[str], int]:
    """The x-axis labels (shortened; turned 35° when they would overlap) and the height they need."""
    widest = max((len(_short(label)) for label in labels), default=0) * CHAR_WIDTH
    turned = widest > slot * 0.95
    parts = []
    for i, label in enumerate(labels):
        x = left + slot * (i + 0.5)
        y = baseline + 16
        if turned:
            parts.append(
                f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" transform="rotate(-35 {x:.1f} {y:.1f})">'
                f"<title>{esc(label)}</title>{esc(_short(label))}</text>"
            )
        else:
            parts.append(
                f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle"><title>{esc(label)}</title>'
                f"{esc(_short(label))}</text>"
            )
    needed = int(widest * 0.6 + 24) if turned else 28
    return parts, needed


def _legend(names: Sequence[str], colours: Sequence[str]) -> str:
    if len(names) < 2:
        return ""
    items = "".join(f'<span><i style="background:{colours[j]}"></i>{esc(n)}</span>' for j, n in enumerate(names))
    return f'<div class="legend">{items}</div>'


def _frame(width: int, height: int, title: str, kind: str) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>'
    )


def _grid(
    ticks: Sequence[float],
    top: float,
    left: float,
    right_edge: float,
    upper: float,
    plot_h: float,
    label: Callable[[float], str],
) -> list[str]:
    parts = []
    for tick in ticks:
        y = upper + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right_edge}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label(tick))}</text>'
        )
    return parts


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Any]],
    *,
    stacked: bool = False,
    percent: bool = False,
    title: str = "",
    width: int = 760,
    height: int = 280,
    colours: Sequence[str] | None = None,
    bar_colours: Sequence[str] | None = None,
    number_format: NumberFormat = compact,
) -> str:
    """Vertical bars per label, one colour per series (grouped, or stacked); every bar has a hover tip.

    `percent`: values are fractions, drawn on a fixed 0–100% axis. `colours`: one per series (default: the
    series palette); `bar_colours`: one per label, for a single series whose categories carry meaning (aging
    buckets in their severity colours).
    """
    names = list(series)
    palette = list(colours or SERIES_COLOURS)
    series_colours = [palette[j % len(palette)] for j in range(len(names))]
    values = {n: [float(v or 0) for v in series[n]] for n in names}
    count = max(len(labels), 1)
    if stacked:
        top = max((sum(values[n][i] for n in names) for i in range(len(labels))), default=0.0)
    else:
        top = max((max(v) for v in values.values() if v), default=0.0)
    ticks = PERCENT_TICKS if percent and top <= 1 else nice_ticks(top)
    top = ticks[-1]
    left, right, upper = 64, 10, 16
    slot = (width - left - right) / count
    axis, bottom = _axis_labels(labels, left, slot, 0)
    height = max(height, upper + 120 + bottom)
    plot_h = height - bottom - upper
    baseline = upper + plot_h
    axis, _ = _axis_labels(labels, left, slot, baseline)
    parts = [_frame(width, height, title, "bar")]
    parts += _grid(ticks, top, left, width - right, upper, plot_h, _percent if percent else number_format)
    for i, label in enumerate(labels):
        x0 = left + slot * i
        base = baseline
        inner = slot * 0.8
        for j, name in enumerate(names):
            value = max(values[name][i], 0.0)
            h = plot_h * value / top
            tip = esc(f"{label} · {name}: {_shown(value, percent, number_format)}")
            colour = bar_colours[i % len(bar_colours)] if bar_colours and len(names) == 1 else series_colours[j]
            if stacked:
                base -= h
                x, w, y = x0 + slot * 0.1, inner, base
            else:
                w = inner / len(names)
                x, y = x0 + slot * 0.1 + w * j, baseline - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}" data-tip="{tip}"><title>{tip}</title></rect>'
            )
    parts.append(f'<line x1="{left}" y1="{baseline:.1f}" x2="{width - right}" y2="{baseline:.1f}" stroke="#94a3b8"/>')
    parts += axis
    parts.append("</svg>")
    return "".join(parts) + _legend(names, series_colours)


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Any]],
    *,
    percent: bool = False,
    title: str = "",
    width: int = 760,
    height: int = 240,
    top: float | None = None,
    colours: Sequence[str] | None = None,
    number_format: NumberFormat = compact,
) -> str:
    """One line per series over the labels (months); a missing value (None) breaks the line.

    `percent`: fractions on a fixed 0–100% axis; `top`: a fixed upper end otherwise (e.g. 100 for CEI).
    """
    names = list(series)
    palette = list(colours or SERIES_COLOURS)
    series_colours = [palette[j % len(palette)] for j in range(len(names))]
    present = [float(v) for n in names for v in series[n] if v is not None]
    highest = max(present, default=0.0)
    if percent:
        ticks = PERCENT_TICKS if highest <= 1 else nice_ticks(highest)
    else:
        ticks = nice_ticks(max(highest, top or 0.0))
    scale = ticks[-1]
    count = max(len(labels), 1)
    left, right, upper = 64, 10, 16
    slot = (width - left - right) / count
    axis, bottom = _axis_labels(labels, left, slot, 0)
    plot_h = height - bottom - upper
    baseline = upper + plot_h
    axis, _ = _axis_labels(labels, left, slot, baseline)
    parts = [_frame(width, height, title, "line")]
    parts += _grid(ticks, scale, left, width - right, upper, plot_h, _percent if percent else number_format)
    for j, name in enumerate(names):
        colour = series_colours[j]
        runs: list[list[str]] = [[]]
        marks = []
        for i, (label, raw) in enumerate(zip(labels, series[name], strict=False)):
            if raw is None:
                runs.append([])
                continue
            value = float(raw)
            x = left + slot * (i + 0.5)
            y = baseline - plot_h * max(value, 0.0) / scale
            runs[-1].append(f"{x:.1f},{y:.1f}")
            tip = esc(f"{label} · {name}: {_shown(value, percent, number_format)}")
            marks.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}" data-tip="{tip}">'
                f"<title>{tip}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
        parts += marks
    parts.append(f'<line x1="{left}" y1="{baseline:.1f}" x2="{width - right}" y2="{baseline:.1f}" stroke="#94a3b8"/>')
    parts += axis
    parts.append("</svg>")
    return "".join(parts) + _legend(names, series_colours)

"""The dashboard: the book at a glance — open and overdue per currency, aging, KPIs, outbox health, the last
sweep, approvals waiting and the 12-month trends, drawn by the charts of `dunning report --html`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.reports.charts import bar_chart, severity_colours
from engine.reports.figures import DEFAULT_PERIOD_DAYS, aging, kpis, load_book
from engine.reports.html import trend_charts
from engine.reports.trends import monthly_trends
from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.i18n import translator
from engine.web.pages.common import app_of, today
from engine.web.pages.render import language_of, render, trusted_html

router = APIRouter()
#: Figures over the whole book are recomputed in the background at most this often (seconds); a page
#: waits for a computation at most WAIT seconds and otherwise shows the previous figures (or says they are
#: on their way and refreshes itself): on a large book they take many seconds.
FIGURES_TTL = 300.0
WAIT = 2.0
#: Open early warnings listed on the dashboard, newest first (the rest: GET /api/v1/warnings).
WARNINGS_SHOWN = 20


@dataclass
class _Figures:
    day: date
    started: float
    thread: threading.Thread | None = None
    figures: dict[str, Any] | None = None
    error: str | None = None


_cache: dict[str, _Figures] = {}
_lock = threading.Lock()


def _compute(dunning: Any, day: date, entry: _Figures) -> None:
    try:
        book = load_book(dunning.repo, dunning.settings.zone, day, dunning.stage_order())
        figures = {
            "aging": aging(book),
            "kpis": kpis(book, day - timedelta(days=DEFAULT_PERIOD_DAYS - 1)),
            "trends": monthly_trends(book),
        }
        with _lock:
            entry.figures, entry.error = figures, None
    except Exception as exc:  # shown on the dashboard instead of the charts; the page itself stays up
        with _lock:
            entry.error = f"{type(exc).__name__}: {exc}"


def book_figures(request: Request) -> tuple[dict[str, Any] | None, bool, str | None]:
    """(figures as of today or the latest computed, whether a newer computation is running, its error)."""
    dunning = app_of(request)
    day = today(request)
    key = dunning.repo.url
    with _lock:
        entry = _cache.get(key)
        fresh = entry is not None and entry.day == day and time.monotonic() - entry.started < FIGURES_TTL
        running = entry is not None and entry.thread is not None and entry.thread.is_alive()
        if not fresh and not running:
            previous = entry.figures if entry is not None else None
            entry = _cache[key] = _Figures(day, time.monotonic(), figures=previous)
            entry.thread = threading.Thread(
                target=_compute, args=(dunning, day, entry), daemon=True, name="dashboard-figures"
            )
            entry.thread.start()
        assert entry is not None
        thread = entry.thread
    if thread is not None:
        thread.join(timeout=WAIT)
    with _lock:
        return entry.figures, bool(thread and thread.is_alive()), entry.error


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, user: WebUser = Depends(page_user)) -> HTMLResponse:
    dunning = app_of(request)
    now = dunning.clock.now()
    lang = language_of(request, user)
    t = translator(lang)
    figures, computing, error = book_figures(request)

    def aging_chart(section: dict[str, Any]) -> Any:
        labels = [b["bucket"] for b in section["buckets"]]
        shown = [t.gettext("current") if label == "current" else label for label in labels]
        return trusted_html(
            bar_chart(
                shown,
                {section["currency"]: [b["amount"] for b in section["buckets"]]},
                title=f"{t.gettext('Receivables aging')} {section['currency']}",
                bar_colours=severity_colours(len(labels)),
                number_format=t.compact,
                height=240,
            )
        )

    titles = {
        key: t.gettext(text)
        for key, text in (
            ("dso", "DSO (days), per month"),
            ("cei", "CEI, per month"),
            ("overdue_share", "Overdue share at month end"),
            ("collected", "Collected per month"),
        )
    }
    return render(
        request,
        "dashboard.html",
        user=user,
        language=lang,
        figures=figures,
        aging_chart=aging_chart,
        computing=computing,
        figures_error=error,
        trend_charts=trusted_html(trend_charts(figures["trends"], titles=titles, number_format=t.compact))
        if figures
        else "",
        totals=workspace.open_by_currency(dunning.repo, today=today(request)),
        outbox=workspace.outbox_counts(dunning.repo, now=now),
        sweep=workspace.last_sweep(dunning.repo),
        approvals=workspace.approvals_waiting(dunning.repo),
        warnings=dunning.credit.warnings(open_only=True, newest_first=True, limit=WARNINGS_SHOWN, with_customer=True),
        warnings_shown=WARNINGS_SHOWN,
        zone=dunning.settings.zone,
    )

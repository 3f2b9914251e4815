"""The dashboard: the book at a glance — open and overdue per currency, aging, KPIs, outbox health, the last
sweep, approvals waiting and the 12-month trends, drawn by the charts of `dunning report --html`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from engine.reports.charts import bar_chart, severity_colours
from engine.reports.html import trend_charts

from engine.reports.figures import DEFAULT_PERIOD_DAYS, aging, kpis, load_book
from engine.reports.trends import monthly_trends
from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of, today
from engine.web.i18n import translator
from engine.web.pages.render import language_of, render

router = APIRouter()
#: Figures over the whole book are recomputed at most this often per application (seconds).
FIGURES_TTL = 60.0
_cache: dict[int, tuple[float, Any, dict[str, Any]]] = {}
_lock = threading.Lock()


def book_figures(request: Request) -> dict[str, Any]:
    """Aging, the 90-day KPIs and the monthly trends as of today (cached for FIGURES_TTL)."""
    dunning = app_of(request)
    day = today(request)
    key = id(dunning)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[1] == day and time.monotonic() - cached[0] < FIGURES_TTL:
            return cached[2]
    book = load_book(dunning.repo, dunning.settings.zone, day, dunning.stage_order())
    figures = {
        "aging": aging(book),
        "kpis": kpis(book, day - timedelta(days=DEFAULT_PERIOD_DAYS - 1)),
        "trends": monthly_trends(book),
    }
    with _lock:
        _cache[key] = (time.monotonic(), day, figures)
    return figures


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, user: WebUser = Depends(page_user)) -> HTMLResponse:
    dunning = app_of(request)
    now = dunning.clock.now()
    lang = language_of(request, user)
    t = translator(lang)
    figures = book_figures(request)

    def aging_chart(section: dict[str, Any]) -> Markup:
        labels = [b["bucket"] for b in section["buckets"]]
        shown = [t.gettext("current") if label == "current" else label for label in labels]
        return Markup(bar_chart(shown, {section["currency"]: [b["amount"] for b in section["buckets"]]},
                                title=f"{t.gettext('Receivables aging')} {section['currency']}",
                                bar_colours=severity_colours(len(labels)), number_format=t.compact, height=240))

    titles = {key: t.gettext(text) for key, text in (
        ("dso", "DSO (days), per month"), ("cei", "CEI, per month"), ("overdue_share", "Overdue share at month end"),
        ("collected", "Collected per month"))}
    return render(
        request, "dashboard.html", user=user, language=lang, figures=figures, aging_chart=aging_chart,
        trend_charts=Markup(trend_charts(figures["trends"], titles=titles, number_format=t.compact)),
        totals=workspace.open_by_currency(dunning.repo, today=today(request)),
        outbox=workspace.outbox_counts(dunning.repo, now=now), sweep=workspace.last_sweep(dunning.repo),
        approvals=workspace.approvals_waiting(dunning.repo), zone=dunning.settings.zone,
    )

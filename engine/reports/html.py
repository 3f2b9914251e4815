"""Reports as one self-contained HTML page: figures as tiles, charts as inline SVG, no external resources.

The page works offline (no CDN, no web fonts). A small inline script adds the hover read-outs and marks
the page ready (`<html data-ready="1" data-charts="N">`) — headless tests read that marker to know the
script ran without error.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from engine.reports.charts import bar_chart, line_chart, severity_colours

TITLES = {
    "aging": "Receivables aging",
    "kpis": "Collection KPIs",
    "effectiveness": "Stage and channel effectiveness",
    "owners": "Collections by owner",
    "forecast": "Cash forecast",
    "charges": "Charges billed and collected",
}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','PingFang SC','Microsoft YaHei',sans-serif;
margin:0;background:#f8fafc;color:#0f172a}
header{background:#0f172a;color:#f8fafc;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}main{padding:20px 28px;max-width:1200px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:16px 20px;margin-bottom:18px}
h2{font-size:17px;margin:0 0 12px}h3{font-size:14px;margin:16px 0 8px;color:#334155}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:8px}
.tile{border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;min-width:150px;background:#f8fafc}
.tile .v{font-size:20px;font-weight:600}.tile .l{font-size:12px;color:#475569}
table{border-collapse:collapse;font-size:13px;margin-top:6px}th,td{padding:4px 10px;border-bottom:1px solid #e2e8f0}
th{text-align:left;color:#475569;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}svg.chart text{font-size:11px;fill:#334155}
.caption{font-size:13px;font-weight:600;color:#334155;margin-top:6px}
.trend-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:8px 18px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
#readout{position:fixed;pointer-events:none;background:#0f172a;color:#fff;font-size:12px;padding:4px 8px;
border-radius:4px;display:none}
"""

SCRIPT = """
(function () {
  var readout = document.getElementById('readout');
  var charts = document.querySelectorAll('svg.chart');
  charts.forEach(function (chart) {
    chart.querySelectorAll('[data-tip]').forEach(function (mark) {
      mark.addEventListener('mousemove', function (e) {
        readout.textContent = mark.getAttribute('data-tip');
        readout.style.left = (e.clientX + 12) + 'px';
        readout.style.top = (e.clientY + 12) + 'px';
        readout.style.display = 'block';
      });
      mark.addEventListener('mouseleave', function () { readout.style.display = 'none'; });
    });
  });
  document.documentElement.setAttribute('data-charts', String(charts.length));
  document.documentElement.setAttribute('data-ready', '1');
})();
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, kind: str = "") -> str:
    """Amounts with thousands separators, ratios as percentages, None as an en dash."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{Decimal(value) * 100:.1f}%"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def tiles(items: Sequence[tuple[str, Any, str]]) -> str:
    cells = "".join(
        f'<div class="tile"><div class="v">{esc(fmt(v, k))}</div><div class="l">{esc(label)}</div></div>'
        for label, v, k in items
    )
    return f'<div class="tiles">{cells}</div>'


def table(columns: Sequence[tuple[str, str, str]], rows: Sequence[Mapping[str, Any]]) -> str:
    """columns: (key, heading, kind) with kind "" (text), "n" (number) or "pct"."""
    head = "".join(f"<th>{esc(h)}</th>" for _, h, _ in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if kind else ""}">{esc(fmt(row.get(key), kind))}</td>' for key, _, kind in columns)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- per report ------------------------------------------------------------------------------------------


def _aging(report: Mapping[str, Any]) -> str:
    out = []
    for s in report["sections"]:
        cur = s["currency"]
        labels = [b["bucket"] for b in s["buckets"]]
        out.append(
            f"<section><h2>{esc(cur)}: open receivables by days overdue</h2>"
            + tiles(
                [
                    ("open receivables", s["total_open"], ""),
                    ("overdue", s["overdue_amount"], ""),
                    ("overdue share", s["overdue_share"], "pct"),
                    ("customers overdue", s["customers_overdue_share"], "pct"),
                    ("invoices overdue", s["invoices_overdue_share"], "pct"),
                ]
            )
            + bar_chart(
                labels,
                {cur: [b["amount"] for b in s["buckets"]]},
                title=f"Aging {cur}",
                bar_colours=severity_colours(len(labels)),
            )
            + table(
                [
                    ("bucket", "bucket", ""),
                    ("amount", "amount", "n"),
                    ("invoices", "invoices", "n"),
                    ("share", "share", "pct"),
                ],
                s["buckets"],
            )
        )
        for dimension, heading in (
            ("owner", "owner"),
            ("credit_grade", "credit grade"),
            ("segment", "segment"),
            ("customer", "customer"),
        ):
            rows = s[f"by_{dimension}"]
            flat = [{**{k: v for k, v in r.items() if k != "buckets"}, **r["buckets"]} for r in rows]
            out.append(f"<h3>By {esc(heading)}</h3>")
            if dimension != "customer":
                out.append(
                    bar_chart(
                        [r["key"] for r in rows],
                        {lab: [r["buckets"][lab] for r in rows] for lab in labels},
                        stacked=True,
                        title=f"Aging by {heading}",
                        height=240,
                        colours=severity_colours(len(labels)),
                    )
                )
            cols = [("key", heading, "")] + ([("name", "name", "")] if dimension == "customer" else [])
            out.append(
                table(
                    cols
                    + [("open", "open", "n"), ("overdue", "overdue", "n"), ("overdue_share", "overdue share", "pct")]
                    + [(lab, lab, "n") for lab in labels],
                    flat,
                )
            )
        out.append("</section>")
    return "".join(out)


def _kpis(report: Mapping[str, Any]) -> str:
    out = []
    for s in report["sections"]:
        cur = s["currency"]
        out.append(
            f"<section><h2>{esc(cur)}: {esc(fmt(s['period_start']))} – {esc(fmt(s['period_end']))} "
            f"({s['days_in_period']} days)</h2>"
            + tiles(
                [
                    ("DSO (days)", s["dso"], ""),
                    ("average days to pay", s["average_days_to_pay"], ""),
                    ("timeliness rate", s["timeliness_rate"], "pct"),
                    ("CEI", s["cei"], ""),
                    ("bad-debt rate", s["bad_debt_rate"], "pct"),
                    ("receivables turnover", s["receivables_turnover"], ""),
                ]
            )
        )
        names = ["opening", "credit sales", "collected", "written off", "closing", "closing current"]
        keys = [
            "opening_receivables",
            "credit_sales",
            "collected",
            "written_off",
            "closing_receivables",
            "closing_current_receivables",
        ]
        out.append(bar_chart(names, {cur: [s[k] for k in keys]}, title=f"Period flows {cur}"))
        out.append(
            bar_chart(
                ["timeliness (count)", "timeliness (amount)", "bad-debt rate"],
                {cur: [s["timeliness_rate"], s["timeliness_rate_amount"], s["bad_debt_rate"]]},
                percent=True,
                title=f"Rates {cur}",
                height=220,
            )
        )
        out.append(
            table(
                [("figure", "figure", ""), ("value", "value", "n")],
                [{"figure": k, "value": v} for k, v in s.items() if k != "currency"],
            )
        )
        out.append("</section>")
    return "".join(out)


def _effectiveness(report: Mapping[str, Any]) -> str:
    windows = ("paid_within_7", "paid_within_14", "paid_within_30")
    stages = report["stages"]
    channels = report["channels"]
    out = [
        "<section><h2>Which steps get invoices paid</h2>"
        + tiles(
            [
                ("promise-kept rate", report["promise_kept_rate"], "pct"),
                ("installment-kept rate", report["installment_kept_rate"], "pct"),
                ("avg days first reminder → payment", report["average_days_first_reminder_to_payment"], ""),
            ]
        )
    ]
    out.append(
        "<h3>Per stage</h3>"
        + bar_chart(
            [s["stage"] for s in stages],
            {w.replace("_", " "): [s[w] for s in stages] for w in windows},
            percent=True,
            title="Paid within N days after entering the stage",
        )
    )
    cols = [("reached", "reached", "n")] + [(w, w.replace("_", " "), "pct") for w in windows]
    out.append(table([("stage", "stage", "")] + cols, stages))
    out.append(
        "<h3>Per stage and channel</h3>"
        + bar_chart(
            [f"{c['stage']}/{c['channel']}" for c in channels],
            {w.replace("_", " "): [c[w] for c in channels] for w in windows},
            percent=True,
            title="Paid within N days after the notification",
        )
    )
    out.append(table([("stage", "stage", ""), ("channel", "channel", "")] + cols, channels) + "</section>")
    return "".join(out)


def _owners(report: Mapping[str, Any]) -> str:
    out = []
    for s in report["sections"]:
        rows = s["owners"]
        out.append(f"<section><h2>{esc(s['currency'])}: collected and on-time rate per owner</h2>")
        out.append(
            bar_chart(
                [r["owner"] for r in rows],
                {"collected": [r["collected"] for r in rows]},
                title="Collected in the period",
            )
        )
        out.append(
            bar_chart(
                [r["owner"] for r in rows],
                {"on-time rate": [r["on_time_rate"] for r in rows]},
                percent=True,
                title="On-time rate",
                height=220,
            )
        )
        out.append(
            table(
                [
                    ("owner", "owner", ""),
                    ("collected", "collected", "n"),
                    ("invoices_due", "invoices due", "n"),
                    ("invoices_paid_on_time", "paid on time", "n"),
                    ("on_time_rate", "on-time rate", "pct"),
                    ("open", "open", "n"),
                    ("overdue", "overdue", "n"),
                ],
                rows,
            )
            + "</section>"
        )
    return "".join(out)


def _forecast(report: Mapping[str, Any]) -> str:
    out = []
    sources = (("due_dates", "due dates"), ("promises", "promises"), ("plans", "plans"), ("overdue", "overdue"))
    for s in report["sections"]:
        weeks = s["weeks"]
        labels = [f"{w['start']:%m-%d}" for w in weeks]
        out.append(
            f"<section><h2>{esc(s['currency'])}: expected collections, next {len(weeks)} weeks</h2>"
            + tiles([("expected in total", s["total"], "")])
            + bar_chart(
                labels,
                {name: [w[key] for w in weeks] for key, name in sources},
                stacked=True,
                title="Expected per week",
            )
            + table(
                [("week", "week", "n"), ("start", "from", ""), ("end", "to", "")]
                + [(key, name, "n") for key, name in sources]
                + [("total", "total", "n")],
                weeks,
            )
            + "</section>"
        )
    rates = report["rates"]
    out.append(
        "<section><h2>Rates used</h2>"
        + tiles(
            [
                ("on-time rate", rates["on_time_rate"], "pct"),
                ("promise-kept rate", rates["promise_kept_rate"], "pct"),
                ("installment-kept rate", rates["installment_kept_rate"], "pct"),
                ("paid within 30 days (all stages)", rates["overall_paid_within_30"], "pct"),
            ]
        )
        + "</section>"
    )
    return "".join(out)


TREND_TITLES = {
    "dso": "DSO (days), per month",
    "cei": "CEI, per month",
    "overdue_share": "Overdue share at month end",
    "collected": "Collected per month",
}


def trend_charts(
    trends: Mapping[str, Any], *, titles: Mapping[str, str] | None = None, number_format: Any = None
) -> str:
    """The 12-month trends (from engine.reports.trends.monthly_trends), four charts per currency: DSO and
    CEI (on 0–100) as lines, the overdue share on a 0–100% scale, collected per month as bars."""
    names = {**TREND_TITLES, **(titles or {})}
    extra = {"number_format": number_format} if number_format else {}
    months = list(trends["months"])
    size = {"width": 520, "height": 220}
    out = []
    for s in trends["sections"]:
        cur = s["currency"]
        charts = {
            "dso": line_chart(months, {names["dso"]: s["dso"]}, title=f"{names['dso']} {cur}", **size, **extra),
            "cei": line_chart(
                months, {names["cei"]: s["cei"]}, title=f"{names['cei']} {cur}", top=100, **size, **extra
            ),
            "overdue_share": line_chart(
                months,
                {names["overdue_share"]: s["overdue_share"]},
                percent=True,
                title=f"{names['overdue_share']} {cur}",
                **size,
                **extra,
            ),
            "collected": bar_chart(
                months, {names["collected"]: s["collected"]}, title=f"{names['collected']} {cur}", **size, **extra
            ),
        }
        cells = "".join(
            f'<div><div class="caption">{esc(names[key])}</div>{chart}</div>' for key, chart in charts.items()
        )
        out.append(
            f'<div class="trends" data-currency="{esc(cur)}"><h3>{esc(cur)}</h3>'
            f'<div class="trend-grid">{cells}</div></div>'
        )
    return "".join(out)


def _charges(report: Mapping[str, Any]) -> str:
    out = []
    for s in report["sections"]:
        out.append(f"<section><h2>{esc(s['currency'])}: interest, compensation and fees</h2>")
        out.append(
            tiles(
                [
                    ("billed in the period", s["billed"], ""),
                    ("collected in the period", s["collected"], ""),
                    ("outstanding at its end", s["outstanding"], ""),
                ]
            )
        )
        columns = [("invoice", "invoice", ""), ("customer_id", "customer", "")]
        for part in ("interest", "compensation", "fees"):
            columns += [(f"{part}_billed", f"{part} billed", "n"), (f"{part}_collected", f"{part} collected", "n")]
        columns += [("outstanding", "outstanding", "n"), ("basis", "legal basis", "")]
        out.append(table(columns, s["invoices"]) + "</section>")
    return "".join(out)


RENDERERS = {
    "aging": _aging,
    "kpis": _kpis,
    "effectiveness": _effectiveness,
    "owners": _owners,
    "forecast": _forecast,
    "charges": _charges,
}


def render(report: Mapping[str, Any], *, company: str = "", trends: Mapping[str, Any] | None = None) -> str:
    """The whole page for one report (as built by engine.reports.figures.build); with `trends` (from
    engine.reports.trends.monthly_trends) a last section shows the 12-month trends."""
    name = report["report"]
    title = TITLES.get(name, name)
    subtitle = f"as of {fmt(report['as_of'])}" + (f" · {company}" if company else "")
    if report.get("period_start"):
        subtitle += f" · period from {fmt(report['period_start'])}"
    body = RENDERERS[name](report)
    if "<section>" not in body:
        body = "<section><p>No invoices in the book yet.</p></section>"
    elif trends is not None and trends["sections"]:
        body += "<section><h2>Trends over the last 12 months</h2>" + trend_charts(trends) + "</section>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} — {esc(subtitle)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>{body}</main>"
        f'<div id="readout"></div><script>{SCRIPT}</script></body></html>'
    )

"""Credit management commands: credit score|review|set|check, and the early warnings list (warnings, warnings ack)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.shared import AsOf, Json, app, emit_json, err, guarded, instant, out, state
from engine.clock import iso, local_day
from engine.credit.desk import order_amount
from engine.errors import CreditRefused
from engine.spreadsheet import SafeDictWriter

credit_app = typer.Typer(help="Credit scoring and grades (rules/credit.yaml), limits and order checks.")
warnings_app = typer.Typer(
    help="Early warnings (rules/warnings.yaml): list them, acknowledge one.", invoke_without_command=True
)
app.add_typer(credit_app, name="credit")
app.add_typer(warnings_app, name="warnings")

Actor = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar="DUNNING_ACTOR", help="Who is acting (recorded in the log); default: config `actor`."
    ),
]


def _actor(name: str | None) -> str:
    return name or state.settings().actor or "system"


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CreditRefused(f"{what} {text!r} is not an ISO date; write e.g. 2026-12-31") from None


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


@credit_app.command("score")
def credit_score(
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")] = None,
    as_of: AsOf = None,
    json_out: Json = False,
) -> None:
    """Each customer's grade in force, its source, and the score the book gives now, factor by factor."""

    def action() -> None:
        dunning = state.dunning()
        when = instant(as_of, dunning.settings) or dunning.clock.now()
        assessments = dunning.credit.score(local_day(when, dunning.settings.zone), customer)
        if json_out:
            emit_json([a.as_dict() for a in assessments])
            return
        for a in assessments:
            assert a.scored is not None
            scored = "no invoice due in the window" if a.scored.score is None else f"score {a.scored.score}"
            out.print(
                f"{a.customer_id}  grade {_show(a.grade)} ({a.source}); {scored} -> grade {a.scored.grade}; "
                f"limit {_show(a.limit)}, terms {_show(a.payment_terms_days)} days",
                markup=False,
            )
            for f in a.scored.factors:
                out.print(
                    f"    {f.name:<18} {f.measure:<24} value {_show(f.value):<10} band {f.band:<12} "
                    f"{f.points:>4} points",
                    markup=False,
                )

    guarded(action)


@credit_app.command("review")
def credit_review(
    as_of: AsOf = None,
    apply: Annotated[bool, typer.Option("--apply", help="Record the new grades (without it: a dry run).")] = False,
    json_out: Json = False,
    actor: Actor = None,
) -> None:
    """Re-grade every customer from its score (manual grades in force stay); --apply records grade_changed events."""

    def action() -> None:
        dunning = state.dunning()
        when = instant(as_of, dunning.settings) or dunning.clock.now()
        changes = dunning.credit.review(when, apply=apply, actor=_actor(actor))
        if json_out:
            emit_json(changes)
            return
        for change in changes:
            out.print(
                f"{change['customer_id']}  {_show(change['old'])} -> {change['new']}  "
                f"(score {_show(change['score'])}, {change['source']})",
                markup=False,
            )
        verb = "regraded" if apply else "would be regraded (dry run; --apply records it)"
        out.print(f"{len(changes)} customer(s) {verb} as of {iso(when)}", markup=False)

    guarded(action)


@credit_app.command("set")
def credit_set(
    customer: str,
    grade: Annotated[str, typer.Option("--grade", help="The grade, one of credit.yaml's grades.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded with the change).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Sticky until this day (inclusive).")] = None,
    actor: Actor = None,
) -> None:
    """Set a customer's grade by hand; reviews leave it alone until --until (or until set again)."""

    def action() -> None:
        dunning = state.dunning()
        result = dunning.credit.set_grade(
            customer, grade, reason=reason or "", until=_day(until, "--until") if until else None, actor=_actor(actor)
        )
        sticky = f" until {result['until']}" if result["until"] else ""
        out.print(f"{customer}: grade {_show(result['old'])} -> {grade} (manual{sticky})", markup=False)

    guarded(action)


@credit_app.command("check")
def credit_check(
    customer: str,
    amount: Annotated[str, typer.Option("--amount", help="The new order's amount.")],
    currency: Annotated[str | None, typer.Option("--currency", help="Its currency (default: credit.yaml's).")] = None,
    json_out: Json = False,
) -> None:
    """May a new order ship? Exit 0 with the headroom, or 1 with the reasons."""

    def action() -> None:
        result = state.dunning().credit.check(customer, order_amount(amount), currency)
        if json_out:
            emit_json(result)
        elif result["ok"]:
            out.print(
                f"{customer}: ok; headroom {result['headroom']} (limit {result['limit']}, open {result['open']})",
                markup=False,
            )
        else:
            for reason in result["reasons"]:
                err.print(f"{customer}: {reason}", markup=False)
        if not result["ok"]:
            raise typer.Exit(1)

    guarded(action)


@warnings_app.callback()
def warnings_list(
    ctx: typer.Context,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only open warnings (not acknowledged or cleared).")
    ] = False,
    json_out: Json = False,
) -> None:
    """Early warnings, newest last: open, acknowledged and cleared (--open: open ones only)."""
    if ctx.invoked_subcommand is not None:
        return

    def action() -> None:
        rows = state.reader().credit.warnings(open_only=open_only)
        if json_out:
            emit_json(rows)
            return
        for w in rows:
            out.print(
                f"{w['id']:>5}  {iso(w['raised_at'])}  {w['customer_id']:<12} {w['rule']:<22} {w['severity']:<7}"
                f"{w['status']}" + (f"  ({w['acknowledged_by']}: {w['note']})" if w["acknowledged_by"] else ""),
                markup=False,
            )

    guarded(action)


@warnings_app.command("ack")
def warnings_ack(
    warning_id: Annotated[int, typer.Argument(help="The warning's id (from `dunning warnings`).")],
    note: Annotated[str | None, typer.Option("--note", help="What is being done about it.")] = None,
    actor: Actor = None,
) -> None:
    """Acknowledge an open warning: it is not raised again while its condition keeps holding."""

    def action() -> None:
        state.dunning().credit.acknowledge(warning_id, note=note, actor=_actor(actor))
        out.print(f"warning {warning_id} acknowledged", markup=False)

    guarded(action)


# -- report incentives / report credit (registered by engine.cli.reports) ----------------------------------

CREDIT_REPORTS = ("incentives", "credit", "reasons")


def credit_report(
    name: str,
    *,
    as_of: str | None,
    since: str | None,
    until: str | None,
    json_out: bool,
    csv_out: bool,
    html_file: Path | None,
) -> None:
    """`dunning report incentives --from --to` and `dunning report credit [--from] [--as-of]`."""
    from datetime import timedelta

    from engine.credit.incentives import as_csv, as_html

    dunning = state.dunning()
    today = local_day(dunning.clock.now(), dunning.settings.zone)
    if name == "incentives":
        if since is None or (until is None and as_of is None):
            raise CreditRefused("report incentives needs the period: --from DATE --to DATE")
        report = dunning.credit.incentives(_day(since, "--from"), _day(until or as_of or "", "--to"))
        if html_file is not None:
            html_file.write_text(as_html(report, dunning.settings.company.name), encoding="utf-8")
        if json_out:
            emit_json(report)
        elif csv_out:
            sys.stdout.write(as_csv(report))
        else:
            for o in report["owners"]:
                out.print(
                    f"{o['owner']:<16} {o['currency']}  collected {o['collected']}  commission {o['commission']}"
                    f"  bonus {o['bonus']}  cap -{o['cap_reduction']}  clawback -{o['clawback']}  "
                    f"total {o['total']}",
                    markup=False,
                )
        return
    if name == "reasons":
        report = dunning.credit.reasons_report(
            _day(since, "--from") if since else None, _day(until or as_of, "--to") if (until or as_of) else None
        )
        if json_out:
            emit_json(report)
            return
        fields = ["section", "key", "group", "currency", "count", "amount"]
        writer = SafeDictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in report["codes"]:
            writer.writerow({"section": "code", "key": row["code"], **{k: row[k] for k in fields[2:]}})
        for row in report["groups"]:
            writer.writerow({"section": "group", "key": row["group"], **{k: row[k] for k in fields[2:]}})
        return
    day = _day(as_of, "--as-of") if as_of else today
    report = dunning.credit.report(_day(since, "--from") if since else day - timedelta(days=90), day)
    if json_out or not csv_out:
        emit_json(report)
        return
    writer = SafeDictWriter(sys.stdout, fieldnames=["section", "key", "value"], lineterminator="\n")
    writer.writeheader()
    rows = [("grades", grade, count) for grade, count in report["grades"].items()]
    rows += [
        ("migration", f"{old} -> {new}", count)
        for old, row in report["migration"].items()
        for new, count in row.items()
    ]
    rows += [("utilisation", band, count) for band, count in report["utilisation"].items()]
    rows += [("over_limit", item["customer_id"], item["utilisation"]) for item in report["over_limit"]]
    rows += [("on_hold", item["customer_id"], iso(item["since"])) for item in report["on_hold"]]
    for section, key, value in rows:
        writer.writerow({"section": section, "key": key, "value": value})


ReasonCode = Annotated[
    str | None,
    typer.Option(
        "--reason-code", help="Why, as a code of rules/reasons.yaml (e.g. cash_trouble); see `report reasons`."
    ),
]


def check_reason_code(code: str | None) -> None:
    """Refuse an unknown code before the action runs (nothing changes)."""
    if code is not None:
        state.dunning().credit.reason_group(code)


def record_reason_code(
    code: str | None, kind: str, *, number: str | None = None, task: int | None = None, actor: str | None = None
) -> None:
    if code is not None:
        state.dunning().credit.record_reason(
            code, kind, numbers=[number] if number else [], task=task, actor=_actor(actor)
        )

"""Policy authoring commands: `simulate`, `policy diff` and `explain` (registered on engine.cli.shared apps).

All three only read the user's database: simulations run the real sweep on a scratch copy, and nothing is
ever sent.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.shared import AsOf, Json, app, emit_json, guarded, instant, out, policy_app, state
from engine.clock import local_day
from engine.errors import DunningError
from engine.policy.model import PolicySet


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise DunningError(f"{option} {text!r} is not a date; use ISO 8601 such as 2026-03-31") from None


def _hour(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise DunningError(f"--at {text!r} is not a time of day; use HH:MM such as 09:00") from None


def _policies(path: Path, what: str) -> PolicySet:
    from engine.policy.loader import load_policies

    settings = state.settings()
    if not path.exists():
        raise DunningError(f"{what} {path}: no such policy file or folder; check the path")
    return load_policies(path, known_channels=settings.channel_settings().keys(), default_country=settings.country)


def _amounts(amounts: dict) -> str:  # type: ignore[type-arg]
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(amounts.items())) or "-"


def _counts(counter: dict) -> str:  # type: ignore[type-arg]
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items())) or "-"


# -- simulate --------------------------------------------------------------------------------------


@app.command()
def simulate(
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="First simulated day (default: the first day after the latest sweep, today at the earliest)."
        ),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last simulated day (default: 30 days in all).")] = None,
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies", help="Simulate under these policies (a file or folder) instead of the configured ones."
        ),
    ] = None,
    payments_model: Annotated[
        str, typer.Option("--payments-model", help="none: nobody pays; historical: each stage's observed payment rate.")
    ] = "none",
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed of the historical payments model (same seed, same run).")
    ] = 0,
    window: Annotated[
        int, typer.Option("--window", help="Historical model: 'paid within N days of entering a stage'.")
    ] = 14,
    at: Annotated[str, typer.Option("--at", help="Company-local time of the daily sweep.")] = "09:00",
    by: Annotated[str | None, typer.Option("--by", help="day or week (default: day up to 31 days, else week).")] = None,
    json_out: Json = False,
) -> None:
    """Replay the book forward day by day under the policies, assuming no further payments (or the
    historical rates), and show what would happen. Writes nothing to the database and sends nothing."""
    from engine.authoring.simulate import PaymentsModel, Simulator

    def action() -> None:
        dunning = state.reader()
        try:
            model = PaymentsModel(payments_model)
        except ValueError:
            raise DunningError(f"--payments-model {payments_model!r} is unknown; use none or historical") from None
        if window < 1:
            raise DunningError(f"--window must be at least 1 day, got {window}")
        if by not in (None, "day", "week"):
            raise DunningError(f"--by {by!r} is unknown; use day or week")
        chosen = _policies(policies, "--policies") if policies else None
        simulator = Simulator(
            dunning,
            policies=chosen,
            at=_hour(at),
            payments_model=model,
            seed=seed,
            window_days=window,
            keep_timelines=json_out,
        )
        first = _day(from_, "--from") or simulator.first_free_day()
        last = _day(to, "--to") or first + timedelta(days=29)
        simulation = simulator.run(first, last)
        grouping = by or ("day" if (last - first).days < 31 else "week")
        if json_out:
            emit_json(simulation.as_dict(by=grouping))
            return
        total = simulation.total()
        out.print(
            f"Simulated {first} to {last} at {simulation.at:%H:%M} under {', '.join(simulation.policies)}; "
            f"{simulation.invoices_open_at_start} open invoice(s) at the start; payments: "
            + ("none assumed" if model is PaymentsModel.NONE else f"historical rates (seed {seed})")
            + "; approvals: none assumed"
            + (
                f" ({simulation.invoices_awaiting_approval_at_start} invoice(s) already waiting)"
                if simulation.invoices_awaiting_approval_at_start
                else ""
            )
            + ". Nothing was written or sent.",
            markup=False,
        )
        table = Table(title=f"per {grouping}")
        for column in ("period", "entered", "repeats", "notifications", "into legal", "awaiting approval", "paid"):
            table.add_column(column)
        for period in simulation.periods(grouping):
            label = str(period.first) if period.first == period.last else f"{period.first} – {period.last}"
            legal = f"{period.legal_invoices}: {_amounts(period.legal_amount)}" if period.legal_invoices else "-"
            paid = f"{period.payments}: {_amounts(period.paid_amount)}" if period.payments else "-"
            waiting = _counts(period.awaiting_approval)
            table.add_row(
                label,
                _counts(period.entered),
                _counts(period.repeats),
                _counts(period.channel_totals()),
                legal,
                waiting,
                paid,
            )
        out.print(table)
        detail = Table(title="notifications per stage and channel")
        detail.add_column("stage")
        detail.add_column("channel")
        detail.add_column("notifications", justify="right")
        for (stage, channel), count in sorted(total.notifications.items()):
            detail.add_row(stage, channel, str(count))
        out.print(detail)
        out.print(
            f"Total: {total.legal_invoices} invoice(s) entering legal ({_amounts(total.legal_amount)}); "
            f"{sum(total.notifications.values())} notification(s); {total.payments} payment(s); "
            f"{sum(total.awaiting_approval.values())} invoice(s) starting to wait for an approval "
            f"({_amounts(total.awaiting_approval_amount)}), none approved in the simulation. "
            "--json adds a timeline per invoice.",
            markup=False,
        )

    guarded(action)


# -- policy diff -----------------------------------------------------------------------------------


@policy_app.command("diff")
def policy_diff(
    old: Annotated[Path, typer.Argument(help="The policies in force (a file or folder), e.g. rules/.")],
    new: Annotated[Path, typer.Argument(help="The edited policies (a file or folder).")],
    as_of: AsOf = None,
    horizon: Annotated[int, typer.Option("--horizon", help="Days to look ahead.")] = 90,
    at: Annotated[str, typer.Option("--at", help="Company-local time of the daily sweep.")] = "09:00",
    limit: Annotated[int, typer.Option("--limit", help="Invoices listed in the text output (0: all).")] = 50,
    json_out: Json = False,
) -> None:
    """Which invoices and customers the NEW policies would treat differently from OLD over the horizon:
    stages earlier, later, added or dropped, and notifications gained or lost (no payments assumed)."""
    from engine.authoring.policy_diff import diff_policies
    from engine.authoring.simulate import Simulator

    def action() -> None:
        dunning = state.reader()
        if horizon < 1:
            raise DunningError(f"--horizon must be at least 1 day, got {horizon}")
        old_policies, new_policies = _policies(old, "OLD"), _policies(new, "NEW")
        hour = _hour(at)
        start = instant(as_of, dunning.settings)
        simulator = Simulator(dunning, at=hour)
        first = local_day(start, dunning.settings.zone) if start else simulator.first_free_day()
        if start is not None and simulator.instant(first) < start:
            first += timedelta(days=1)  # the --as-of instant is past that day's sweep time
        result = diff_policies(dunning, old_policies, new_policies, first=first, days=horizon, at=hour)
        if json_out:
            emit_json(result.as_dict())
            return
        for line in result.lines(limit=None if limit == 0 else limit):
            out.print(line, markup=False)

    guarded(action)


# -- explain ---------------------------------------------------------------------------------------


@app.command()
def explain(number: str, as_of: AsOf = None, json_out: Json = False) -> None:
    """In plain words: which policy governs the invoice and why, its stage and since when, what happens
    next and on what date, and which conditions are holding it back."""
    from engine.authoring.explain import explain_invoice

    def action() -> None:
        dunning = state.reader()
        found = explain_invoice(dunning, number, instant(as_of, dunning.settings))
        if json_out:
            emit_json(found.as_dict())
            return
        for line in found.lines():
            out.print(line, markup=False)

    guarded(action)

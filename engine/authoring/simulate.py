"""Replaying the book forward on a virtual clock: what the policies *would* do, with nothing written or sent.

A simulation never has rules of its own. It copies the book into a private scratch SQLite file (the user's
database is only read), then drives the real `Dunning.run` → `engine.sweep.Sweeper` once per simulated day
at the hour the user sweeps, without dispatching, and reads back the events and outbox rows those real
sweeps wrote into the scratch copy. Whatever the sweep does — today or after it changes — the simulation
does too, which is what makes "simulate, then run for real" give identical transitions and notifications.

Payments: by default none arrive during the simulated period. With `PaymentsModel.HISTORICAL`, each open
invoice pays in full with a daily probability derived from its stage's observed payment rate in the real
history (the share of invoices that were paid within `window_days` of entering the stage), drawn from a
seeded generator so a run is reproducible. Simulated payments go through `Importer.import_rows("payments")`,
the code path of real payments.

Approvals: nobody approves during the simulated period. An invoice due for an `approval: required` stage
is counted when the sweep asks for the approval (`awaiting_approval`) and then waits, silent, to the end;
the invoices already waiting at the start (`invoices_awaiting_approval_at_start`) wait on too.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.clock import TickingClock, iso, local_day
from engine.errors import SimulationError
from engine.policy.model import CLOSED_STATES, CURRENT, LIFECYCLE_STATES, PolicySet, Stage
from engine.store import queries
from engine.store.database import Repository
from engine.store.events import observed
from engine.store.scratch import scratch_copy
from engine.store.workspace import approvals_waiting

if TYPE_CHECKING:
    from engine.app import Dunning

__all__ = [
    "InvoiceTimeline",
    "PaymentsModel",
    "Period",
    "Simulation",
    "SimulationError",
    "Simulator",
    "StageRate",
    "is_legal_stage",
    "observed_payment_rates",
    "scratch_copy",
]

#: The event kinds a simulation reports (the rest — imports, updates — never happen during one).
REPORTED_KINDS = ("transition", "notification", "policy_changed", "payment", "approval_requested")

#: Marks a priced entry whose open amount counts as waiting for an approval (not paid, not handed to lawyers).
AWAITING_APPROVAL: Any = object()


class PaymentsModel(enum.Enum):
    NONE = "none"  # nobody pays during the simulated period
    HISTORICAL = "historical"  # each stage's observed payment rate, as a daily probability


def is_legal_stage(stage: Stage) -> bool:
    """A stage that hands an invoice to lawyers: named so, or using the legal channel."""
    return "legal" in stage.name.lower() or "legal" in stage.channels


# -- results ------------------------------------------------------------------------------------------------


@dataclass
class Period:
    """What happened in one simulated day (or the sum over several)."""

    first: date
    last: date
    entered: Counter[str] = field(default_factory=Counter)
    repeats: Counter[str] = field(default_factory=Counter)
    #: (stage, channel) -> notifications queued
    notifications: Counter[tuple[str, str]] = field(default_factory=Counter)
    legal_invoices: int = 0
    #: currency -> open amount of the invoices entering a legal stage
    legal_amount: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    payments: int = 0
    paid_amount: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    policy_changes: int = 0
    #: stage -> invoices that started waiting for an approval to enter it (none is approved in a simulation)
    awaiting_approval: Counter[str] = field(default_factory=Counter)
    #: currency -> open amount of those invoices
    awaiting_approval_amount: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, other: Period) -> None:
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.entered.update(other.entered)
        self.repeats.update(other.repeats)
        self.notifications.update(other.notifications)
        self.legal_invoices += other.legal_invoices
        for currency, amount in other.legal_amount.items():
            self.legal_amount[currency] += amount
        self.payments += other.payments
        for currency, amount in other.paid_amount.items():
            self.paid_amount[currency] += amount
        self.policy_changes += other.policy_changes
        self.awaiting_approval.update(other.awaiting_approval)
        for currency, amount in other.awaiting_approval_amount.items():
            self.awaiting_approval_amount[currency] += amount

    def channel_totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_, channel), count in self.notifications.items():
            totals[channel] += count
        return totals

    def as_dict(self) -> dict[str, Any]:
        by_stage: dict[str, dict[str, int]] = defaultdict(dict)
        for (stage, channel), count in sorted(self.notifications.items()):
            by_stage[stage][channel] = count
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "entered": dict(self.entered),
            "repeats": dict(self.repeats),
            "notifications": dict(by_stage),
            "notifications_per_channel": dict(self.channel_totals()),
            "legal": {"invoices": self.legal_invoices, "amount": dict(self.legal_amount)},
            "payments": {"invoices": self.payments, "amount": dict(self.paid_amount)},
            "policy_changes": self.policy_changes,
            "awaiting_approval": {
                "invoices": sum(self.awaiting_approval.values()),
                "stages": dict(self.awaiting_approval),
                "amount": dict(self.awaiting_approval_amount),
            },
        }


@dataclass
class InvoiceTimeline:
    number: str
    customer_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)

    def stage_entries(self) -> dict[str, date]:
        """Stage -> the first simulated day the invoice entered it (by escalation, not by a policy change)."""
        entered: dict[str, date] = {}
        for entry in self.entries:
            if entry["kind"] == "transition" and entry["to"] not in LIFECYCLE_STATES:
                entered.setdefault(entry["to"], entry["day"])
        return entered

    def notification_counts(self) -> Counter[str]:
        return Counter(e["channel"] for e in self.entries if e["kind"] == "notification")

    def policies(self) -> list[str]:
        return list(dict.fromkeys(e["policy"] for e in self.entries if e.get("policy")))


@dataclass
class Simulation:
    first: date
    last: date
    at: time
    policies: list[str]
    payments_model: PaymentsModel
    payment_rates: dict[str, StageRate]
    seed: int
    days: list[Period]
    timelines: dict[str, InvoiceTimeline]
    invoices_open_at_start: int
    invoices_awaiting_approval_at_start: int = 0
    seconds: float = 0.0

    def total(self) -> Period:
        total = Period(self.first, self.last)
        for day in self.days:
            total.add(day)
        return total

    def periods(self, by: str) -> list[Period]:
        """The days grouped by "day" or by "week" (seven-day blocks from the first simulated day)."""
        if by == "day":
            return list(self.days)
        grouped: list[Period] = []
        for index, day in enumerate(self.days):
            if index % 7 == 0:
                grouped.append(Period(day.first, day.last))
            grouped[-1].add(day)
        return grouped

    def transitions(self) -> list[tuple[str, str, str, str, str]]:
        """(day, invoice, from, to, rule) for every transition, in order: what tests compare with reality."""
        rows = []
        for timeline in self.timelines.values():
            for e in timeline.entries:
                if e["kind"] == "transition":
                    rows.append((e["day"].isoformat(), timeline.number, e["from"], e["to"], e["rule"]))
        return sorted(rows)

    def notifications(self) -> list[tuple[str, str, str, str, int, str | None]]:
        """(day, invoice, stage, channel, repeat, recipient) for every notification queued."""
        rows = []
        for timeline in self.timelines.values():
            for e in timeline.entries:
                if e["kind"] == "notification":
                    rows.append(
                        (e["day"].isoformat(), timeline.number, e["stage"], e["channel"], e["repeat"], e["recipient"])
                    )
        return sorted(rows, key=lambda r: (r[0], r[1], r[2], r[4], r[3]))

    def as_dict(self, *, by: str = "day", timelines: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "at": self.at.strftime("%H:%M"),
            "policies": self.policies,
            "payments_model": self.payments_model.value,
            "seed": self.seed if self.payments_model is PaymentsModel.HISTORICAL else None,
            "payment_rates": {stage: rate.as_dict() for stage, rate in sorted(self.payment_rates.items())},
            "invoices_open_at_start": self.invoices_open_at_start,
            "invoices_awaiting_approval_at_start": self.invoices_awaiting_approval_at_start,
            "periods": [p.as_dict() for p in self.periods(by)],
            "total": self.total().as_dict(),
        }
        if timelines:
            result["invoices"] = {
                number: {"customer_id": t.customer_id, "timeline": t.entries}
                for number, t in sorted(self.timelines.items())
            }
        return result


@dataclass(frozen=True)
class StageRate:
    """Observed: of `entered` invoices that entered the stage (with the whole window observed), `paid` were
    paid within `window_days`. `daily` is the per-day probability that gives the same share over the window."""

    entered: int
    paid: int
    window_days: int

    @property
    def share(self) -> float:
        return self.paid / self.entered if self.entered else 0.0

    @property
    def daily(self) -> float:
        share = min(self.share, 0.999999)
        return 1 - (1 - share) ** (1 / self.window_days) if share > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "entered": self.entered,
            "paid": self.paid,
            "window_days": self.window_days,
            "share": round(self.share, 4),
            "daily_probability": round(self.daily, 6),
        }


# -- the simulator ------------------------------------------------------------------------------------------


class Simulator:
    """Replays `dunning`'s book forward under `policies` (default: the configured ones).

    `at` is the company-local time of the daily sweep. Nothing is written to `dunning`'s database and
    nothing is sent: every sweep runs on a scratch copy that is deleted afterwards.
    """

    def __init__(
        self,
        dunning: Dunning,
        *,
        policies: PolicySet | None = None,
        at: time = time(9),
        payments_model: PaymentsModel = PaymentsModel.NONE,
        seed: int = 0,
        window_days: int = 14,
        keep_timelines: bool = True,
    ):
        self.dunning = dunning
        self.policies = policies if policies is not None else dunning.policies
        self.at = at
        self.payments_model = payments_model
        self.seed = seed
        self.window_days = window_days
        self.keep_timelines = keep_timelines

    def instant(self, day: date) -> datetime:
        return datetime.combine(day, self.at, tzinfo=self.dunning.settings.zone)

    def first_free_day(self) -> date:
        """The day the book would be swept next: the first day whose sweep comes after the latest real
        one, or today when it was never swept."""
        zone = self.dunning.settings.zone
        latest = self.dunning.latest_sweep()
        if latest is None:
            return local_day(self.dunning.clock.now(), zone)
        day = local_day(latest, zone)
        while self.instant(day) <= latest:
            day += timedelta(days=1)
        return day

    def run(self, first: date, last: date) -> Simulation:
        import time as wall

        started = wall.perf_counter()
        if last < first:
            raise SimulationError(f"--to {last} is before --from {first}; give a period that moves forward")
        latest = self.dunning.latest_sweep()
        if latest is not None and self.instant(first) <= latest:
            raise SimulationError(
                f"cannot simulate from {first}: the book was already swept as of {iso(latest)}, and sweeps never "
                f"go back in time; simulate from {self.first_free_day()} or later"
            )
        rates = (
            observed_payment_rates(self.dunning, window_days=self.window_days)
            if self.payments_model is PaymentsModel.HISTORICAL
            else {}
        )
        with scratch_copy(self.dunning.repo) as scratch_repo:
            result = self._replay(scratch_repo, first, last, rates)
        result.invoices_awaiting_approval_at_start = approvals_waiting(self.dunning.repo)
        result.seconds = wall.perf_counter() - started
        return result

    def _replay(self, repo: Repository, first: date, last: date, rates: dict[str, StageRate]) -> Simulation:
        from engine.app import Dunning

        # A ticking clock: what a sweep writes is recorded before its `finished_at`, as in reality, so the
        # next day's sweep reads only what is due, not every invoice the last sweep touched.
        clock = TickingClock(self.instant(first))
        scratch = Dunning(self.dunning.settings, clock=clock, repo=repo)
        # The policies under test replace the configured ones for this run only.
        scratch.policies = self.policies  # type: ignore[misc]
        scratch.credit.at_sweeps = False  # holds and warnings are not simulated (a whole-book read a day)
        # Only the historical model needs every open invoice's stage day by day; it is kept up to date
        # from the events the sweeps write rather than by re-reading the whole book every day.
        open_count, mirror = queries.simulation_start(repo, with_stages=bool(rates))
        rng = random.Random(self.seed)
        daily = {stage: rate.daily for stage, rate in rates.items()}
        simulation = Simulation(
            first=first,
            last=last,
            at=self.at,
            policies=[p.name for p in self.policies.policies],
            payments_model=self.payments_model,
            payment_rates=rates,
            seed=self.seed,
            days=[],
            timelines={},
            invoices_open_at_start=int(open_count),
        )
        collector = _Collector(self.policies, simulation, mirror, keep_timelines=self.keep_timelines)
        day = first
        # What the sweeps and simulated payments write is handed over as they write it, not read back.
        with observed(collector.fold):
            while day <= last:
                period = Period(day, day)
                instant = self.instant(day)
                clock.at = instant
                collector.begin(day, period)
                scratch.run(instant, dispatch=False)
                collector.settle(repo)
                if daily:
                    payments = []
                    for number, stage, open_amount in mirror.values():
                        chance = daily.get(stage, 0.0)
                        if chance and rng.random() < chance:
                            payments.append(
                                {
                                    "invoice": number,
                                    "amount": open_amount,
                                    "paid_on": day,
                                    "reference": f"SIMULATED-{day.isoformat()}-{number}",
                                }
                            )
                    if payments:
                        collector.begin(day, period)
                        scratch.importer(actor="simulation").import_rows("payments", payments, source="<simulation>")
                        collector.settle(repo)
                simulation.days.append(period)
                day += timedelta(days=1)
        return simulation


class _Collector:
    """Folds the events a simulated day writes (handed over by `engine.store.events.observed` as they are
    appended) into the day's figures, the timelines and the stage mirror of the historical model."""

    def __init__(
        self, policies: PolicySet, simulation: Simulation, mirror: dict[int, list[Any]], *, keep_timelines: bool
    ):
        self.policies = policies
        self.simulation = simulation
        self.mirror = mirror
        self.keep_timelines = keep_timelines
        self.day = simulation.first
        self.period = Period(simulation.first, simulation.first)
        self.repeats: set[tuple[int, str, int]] = set()
        #: Entries that need their invoice's open amount or currency, read once the step has been written.
        self.priced: list[tuple[int, dict[str, Any], Any]] = []

    def begin(self, day: date, period: Period) -> None:
        """Collect into `period` from now on (one step of `day`: its sweep, or its simulated payments)."""
        self.day, self.period = day, period
        self.repeats = set()

    def settle(self, repo: Repository) -> None:
        """Add the amounts of what this step collected, read as the step left the invoices."""
        if not self.priced:
            return
        amounts = queries.open_amounts(repo, {invoice_id for invoice_id, _, _ in self.priced})
        period = self.period
        for invoice_id, entry, paid in self.priced:
            open_amount, currency = amounts[invoice_id]
            if paid is None:  # entering a legal stage: the amount handed to the lawyers
                period.legal_amount[currency] += open_amount
                entry["open_amount"] = open_amount
            elif paid is AWAITING_APPROVAL:  # the amount that waits for an approval nobody gives
                period.awaiting_approval_amount[currency] += open_amount
            else:
                period.paid_amount[currency] += paid
                entry["currency"] = currency
        self.priced = []

    def fold(self, events: Sequence[Mapping[str, Any]]) -> None:
        period, mirror, policies = self.period, self.mirror, self.policies
        for event in events:
            kind = event["kind"]
            invoice_id = event["invoice_id"]
            if kind not in REPORTED_KINDS or invoice_id is None:
                continue
            data = event["data"]
            entry: dict[str, Any] = {"day": self.day, "kind": kind}
            if kind == "transition":
                target = data["to"]
                entry.update(
                    {
                        "from": data["from"],
                        "to": target,
                        "rule": data.get("rule"),
                        "policy": data.get("policy"),
                        "skipped": data.get("skipped", []),
                    }
                )
                if target not in LIFECYCLE_STATES:
                    period.entered[target] += 1
                    policy = policies.by_name(data.get("policy") or "")
                    if policy is not None and policy.has_stage(target) and is_legal_stage(policy.stage(target)):
                        period.legal_invoices += 1
                        self.priced.append((invoice_id, entry, None))
                if invoice_id in mirror:
                    if target in CLOSED_STATES:
                        del mirror[invoice_id]
                    else:
                        mirror[invoice_id][1] = target
            elif kind == "notification":
                entry.update(
                    {
                        "stage": data["stage"],
                        "channel": data["channel"],
                        "repeat": data["repeat"],
                        "recipient": data.get("recipient"),
                        "policy": data.get("policy"),
                    }
                )
                period.notifications[(data["stage"], data["channel"])] += 1
                repeat = (invoice_id, data["stage"], data["repeat"])
                if data["repeat"] and repeat not in self.repeats:  # one repeat, however many channels it uses
                    self.repeats.add(repeat)
                    period.repeats[data["stage"]] += 1
            elif kind == "policy_changed":
                entry.update(
                    {
                        "from_policy": data.get("from_policy"),
                        "to_policy": data.get("to_policy"),
                        "from": data.get("from"),
                        "to": data.get("to"),
                    }
                )
                period.policy_changes += 1
                if invoice_id in mirror and data.get("to"):
                    mirror[invoice_id][1] = data["to"]
            elif kind == "approval_requested":
                entry.update(
                    {"from": data["from"], "to": data["to"], "rule": data.get("rule"), "policy": data.get("policy")}
                )
                period.awaiting_approval[data["to"]] += 1
                self.priced.append((invoice_id, entry, AWAITING_APPROVAL))
            else:  # payment
                amount = Decimal(str(data["amount"]))
                entry.update({"amount": amount, "currency": None})
                period.payments += 1
                self.priced.append((invoice_id, entry, amount))
            if self.keep_timelines:
                number = data["invoice"]
                timeline = self.simulation.timelines.get(number)
                if timeline is None:
                    timeline = self.simulation.timelines[number] = InvoiceTimeline(number, event["customer_id"])
                timeline.entries.append(entry)


# -- the historical payments model --------------------------------------------------------------------------


def observed_payment_rates(dunning: Dunning, *, window_days: int) -> dict[str, StageRate]:
    """Per stage: how many invoices entered it and how many of those were paid within `window_days`.

    Entries are transitions into a stage (and, for `current`, the invoice's import); only entries whose
    whole window lies before the latest sweep (or now) count, so recent entries don't look unpaid.
    Read from the user's database, never written.
    """
    zone = dunning.settings.zone
    horizon = local_day(dunning.latest_sweep() or dunning.clock.now(), zone)
    entered: Counter[str] = Counter()
    paid: Counter[str] = Counter()
    with queries.stage_entries(dunning.repo) as (closed, entries):
        paid_on = {invoice_id: local_day(closed_at, zone) for invoice_id, closed_at in closed.items()}
        for invoice_id, at, kind, data in entries:
            stage = CURRENT if kind == "import" else (data or {}).get("to")
            if not stage or stage in CLOSED_STATES:
                continue
            day = local_day(at, zone)
            if day + timedelta(days=window_days) > horizon:
                continue
            entered[stage] += 1
            settled = paid_on.get(invoice_id)
            if settled is not None and day <= settled <= day + timedelta(days=window_days):
                paid[stage] += 1
    return {stage: StageRate(count, paid[stage], window_days) for stage, count in entered.items()}

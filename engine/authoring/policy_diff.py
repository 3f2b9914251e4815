"""`dunning policy diff OLD NEW`: which invoices and customers the new policies would treat differently.

Both sides are real simulations (engine.authoring.simulate) of the same book over the same days — one under the OLD
policies, one under the NEW — so the comparison inherits every rule exactly as the sweep applies it. Per
invoice, it compares the day each stage is first entered and the notifications sent per channel.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any

from engine.authoring.simulate import InvoiceTimeline, Simulation, Simulator
from engine.policy.model import PolicySet

if TYPE_CHECKING:
    from engine.app import Dunning

#: Kinds of stage difference, in the order they are reported.
EARLIER, LATER, ADDED, DROPPED = "earlier", "later", "added", "dropped"


@dataclass
class StageChange:
    stage: str
    kind: str  # earlier, later, added (only under NEW), dropped (only under OLD)
    old_on: date | None
    new_on: date | None

    @property
    def days(self) -> int | None:
        return (self.new_on - self.old_on).days if self.old_on and self.new_on else None

    def describe(self) -> str:
        if self.kind == ADDED:
            return f"{self.stage} added (entered {self.new_on})"
        if self.kind == DROPPED:
            return f"{self.stage} dropped (was entered {self.old_on})"
        days = abs(self.days or 0)
        return f"{self.stage} {days} day(s) {self.kind} ({self.old_on} -> {self.new_on})"

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "change": self.kind, "old": self.old_on, "new": self.new_on, "days": self.days}


@dataclass
class InvoiceDiff:
    number: str
    customer_id: str
    old_policy: list[str]
    new_policy: list[str]
    stages: list[StageChange]
    #: channel -> (OLD count, NEW count), only channels whose counts differ
    notifications: dict[str, tuple[int, int]]

    def describe(self) -> str:
        parts = [change.describe() for change in self.stages]
        parts += [f"{channel} {new - old:+d}" for channel, (old, new) in sorted(self.notifications.items())]
        policies = ""
        if self.old_policy != self.new_policy:
            policies = f" [{'/'.join(self.old_policy) or '-'} -> {'/'.join(self.new_policy) or '-'}]"
        return f"{self.number} ({self.customer_id}){policies}: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "customer_id": self.customer_id,
            "old_policy": self.old_policy,
            "new_policy": self.new_policy,
            "stages": [s.as_dict() for s in self.stages],
            "notifications": {
                c: {"old": o, "new": n, "delta": n - o} for c, (o, n) in sorted(self.notifications.items())
            },
        }


@dataclass
class PolicyDiff:
    first: date
    last: date
    old: Simulation
    new: Simulation
    invoices: list[InvoiceDiff] = field(default_factory=list)

    @property
    def customers(self) -> list[str]:
        return sorted({d.customer_id for d in self.invoices})

    def stage_summary(self) -> dict[str, Counter[str]]:
        """stage -> {earlier, later, added, dropped: invoice count}"""
        summary: dict[str, Counter[str]] = defaultdict(Counter)
        for diff in self.invoices:
            for change in diff.stages:
                summary[change.stage][change.kind] += 1
        return dict(summary)

    def notification_summary(self) -> dict[str, tuple[int, int]]:
        """channel -> (notifications under OLD, under NEW) over the whole book and period."""
        old = self.old.total().channel_totals()
        new = self.new.total().channel_totals()
        return {channel: (old[channel], new[channel]) for channel in sorted(set(old) | set(new))}

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.first,
            "to": self.last,
            "old_policies": self.old.policies,
            "new_policies": self.new.policies,
            "invoices_compared": len(set(self.old.timelines) | set(self.new.timelines)),
            "invoices_affected": len(self.invoices),
            "customers_affected": len(self.customers),
            "stages": {
                stage: {kind: counts[kind] for kind in (EARLIER, LATER, ADDED, DROPPED)}
                for stage, counts in sorted(self.stage_summary().items())
            },
            "notifications": {
                c: {"old": o, "new": n, "delta": n - o} for c, (o, n) in self.notification_summary().items()
            },
            "legal": {"old": self.old.total().as_dict()["legal"], "new": self.new.total().as_dict()["legal"]},
            "invoices": [d.as_dict() for d in self.invoices],
            "customers": self.customers,
        }

    def lines(self, limit: int | None = 50) -> list[str]:
        out = [
            f"Compared {self.first} to {self.last} ({(self.last - self.first).days + 1} days), no payments assumed: "
            f"{len(self.invoices)} invoice(s) of {len(self.customers)} customer(s) treated differently.",
        ]
        summary = self.stage_summary()
        if summary:
            out.append("Stages (invoices):")
            for stage, counts in sorted(summary.items()):
                parts = [f"{counts[kind]} {kind}" for kind in (EARLIER, LATER, ADDED, DROPPED) if counts[kind]]
                out.append(f"  {stage}: {', '.join(parts)}")
        changed = [(c, o, n) for c, (o, n) in self.notification_summary().items() if o != n]
        if changed:
            out.append("Notifications (old -> new):")
            out.extend(f"  {c}: {o} -> {n} ({n - o:+d})" for c, o, n in changed)
        old_legal, new_legal = self.old.total(), self.new.total()
        if old_legal.legal_invoices != new_legal.legal_invoices or old_legal.legal_amount != new_legal.legal_amount:
            out.append(
                f"Entering legal: {old_legal.legal_invoices} -> {new_legal.legal_invoices} invoice(s); "
                f"{_amounts(old_legal.legal_amount)} -> {_amounts(new_legal.legal_amount)}"
            )
        if self.invoices:
            out.append("Invoices:")
            shown = self.invoices if limit is None else self.invoices[:limit]
            out.extend(f"  {d.describe()}" for d in shown)
            if len(shown) < len(self.invoices):
                out.append(f"  ... and {len(self.invoices) - len(shown)} more (--json lists them all)")
        return out


def diff_policies(
    dunning: Dunning, old: PolicySet, new: PolicySet, *, first: date, days: int, at: time = time(9)
) -> PolicyDiff:
    """Simulate `days` days from `first` under `old` and under `new`, and compare invoice by invoice."""
    last = first + timedelta(days=days - 1)
    old_run = Simulator(dunning, policies=old, at=at).run(first, last)
    new_run = Simulator(dunning, policies=new, at=at).run(first, last)
    result = PolicyDiff(first, last, old_run, new_run)
    for number in sorted(set(old_run.timelines) | set(new_run.timelines)):
        before, after = old_run.timelines.get(number), new_run.timelines.get(number)
        diff = compare_timelines(number, before, after)
        if diff is not None:
            result.invoices.append(diff)
    return result


def compare_timelines(number: str, old: InvoiceTimeline | None, new: InvoiceTimeline | None) -> InvoiceDiff | None:
    """How one invoice's treatment differs between two simulations; None when it is the same."""
    old_stages = old.stage_entries() if old else {}
    new_stages = new.stage_entries() if new else {}
    changes: list[StageChange] = []
    for stage in sorted(
        set(old_stages) | set(new_stages), key=lambda s: min(d for d in (old_stages.get(s), new_stages.get(s)) if d)
    ):
        before, after = old_stages.get(stage), new_stages.get(stage)
        if before == after:
            continue
        if before is None:
            kind = ADDED
        elif after is None:
            kind = DROPPED
        else:
            kind = EARLIER if after < before else LATER
        changes.append(StageChange(stage, kind, before, after))
    old_counts = old.notification_counts() if old else Counter()
    new_counts = new.notification_counts() if new else Counter()
    notifications = {
        channel: (old_counts[channel], new_counts[channel])
        for channel in set(old_counts) | set(new_counts)
        if old_counts[channel] != new_counts[channel]
    }
    if not changes and not notifications:
        return None
    customer = (old or new).customer_id  # type: ignore[union-attr]
    return InvoiceDiff(
        number, customer, old.policies() if old else [], new.policies() if new else [], changes, notifications
    )


def _amounts(amounts: dict[str, Any]) -> str:
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(amounts.items())) or "0"

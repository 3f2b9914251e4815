"""What a collection policy *is*: plain, immutable types with no I/O.

`engine.policy.loader` turns YAML into these; the sweep and the state machine only ever see these.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.charges.model import ChargeTerms

#: States every policy's machine has besides its own stages.
CURRENT = "current"
PAID = "paid"
WRITTEN_OFF = "written_off"
DISPUTED = "disputed"
PROMISED = "promised"
LIFECYCLE_STATES = (PAID, WRITTEN_OFF, DISPUTED, PROMISED)
RESERVED_STATE_NAMES = frozenset({CURRENT, *LIFECYCLE_STATES})
CLOSED_STATES = frozenset({PAID, WRITTEN_OFF})
PAUSED_STATES = frozenset({DISPUTED, PROMISED})

# Bounds of a policy's numbers and names (README, "Policies": "Bounds"); the loader refuses anything beyond
# them as a located problem, so a policy that loads cannot overflow a date, a C int or a database column.
#: Any count of days (after_days either way, every_days, min_days_between_stages, grace_days): 100 years.
MAX_DAYS = 36_500
#: Extra sendings of one stage (`repeat.max`).
MAX_REPEATS = 1_000
#: Stages of one policy.
MAX_STAGES = 1_000
#: Characters of a stage name: the `invoices.stage` and `invoices.awaiting_stage` columns.
STAGE_NAME_LENGTH = 64
#: Characters of a policy name: the `invoices.policy` column.
POLICY_NAME_LENGTH = 128


class CatchUp(enum.Enum):
    """How far one sweep may move an invoice that is several stages behind."""

    STEP = "step"  # at most one stage per sweep
    JUMP = "jump"  # straight to the highest due stage; only that stage fires


class DayCount(enum.Enum):
    CALENDAR = "calendar"
    BUSINESS = "business"  # weekends and the public holidays of the policy's country don't count


class Expression(Protocol):
    """A compiled, type-checked `when` / `applies_to` expression (see engine.policy.expressions)."""

    source: str
    fields: frozenset[str]

    def evaluate(self, facts: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True)
class Repeat:
    every_days: int
    max: int


@dataclass(frozen=True)
class Stage:
    name: str
    after_days: int
    channels: tuple[str, ...]
    when: Expression | None = None
    repeat: Repeat | None = None
    #: Template name override; by default the stage name picks the template.
    template: str | None = None
    description: str | None = None
    #: `title:` per language tag ("zh_CN", "zh", "en"; "" for a plain title), in the order written
    titles: tuple[tuple[str, str], ...] = ()
    #: `approval: required`: the invoice waits in "awaiting approval" until `dunning approve` lets it in.
    approval_required: bool = False
    #: (channel, fallback channel) pairs: a notification that fails for good on the first is queued on the second.
    fallback: tuple[tuple[str, str], ...] = ()
    #: The PDFs this stage's e-mails attach (`attach:`), overriding the channel's list; None: the channel's.
    attach: tuple[str, ...] | None = None

    def fallback_for(self, channel: str) -> str | None:
        return next((to for frm, to in self.fallback if frm == channel), None)

    @property
    def pre_due(self) -> bool:
        """A stage with negative after_days is a courtesy reminder: entered only before the due date."""
        return self.after_days < 0


@dataclass(frozen=True)
class PolicySource:
    path: str
    text: str
    sha256: str


@dataclass(frozen=True, eq=False)  # a loaded policy is an identity: hashing it must be cheap
class Policy:
    name: str
    stages: tuple[Stage, ...]
    applies_to: Expression | None = None
    days: DayCount = DayCount.CALENDAR
    #: ISO country code whose public holidays `days: business` skips (None: weekends only).
    country: str | None = None
    min_days_between_stages: int = 0
    catch_up: CatchUp = CatchUp.STEP
    description: str | None = None
    source: PolicySource | None = None
    #: Days after a promise's date (or an installment's) before it counts as broken (missed).
    grace_days: int = 3
    #: "invoice": one message per invoice; "customer": one per customer, stage and repeat listing them all.
    group_by: str = "invoice"
    #: Interest, compensation and fees the policy charges (`charges:`); None charges nothing.
    charges: ChargeTerms | None = None
    _index: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.name: i for i, s in enumerate(self.stages)})

    @property
    def is_default(self) -> bool:
        return self.applies_to is None

    @property
    def hash(self) -> str:
        return self.source.sha256 if self.source else ""

    def stage_index(self, name: str) -> int:
        """Position of a stage, -1 for `current`; KeyError for a name this policy lacks."""
        if name == CURRENT:
            return -1
        return self._index[name]

    def has_stage(self, name: str) -> bool:
        return name in self._index

    def stage(self, name: str) -> Stage:
        return self.stages[self._index[name]]


@dataclass(frozen=True)
class PolicySet:
    """All policies in force, in evaluation order with the default last."""

    policies: tuple[Policy, ...]

    @property
    def default(self) -> Policy:
        return self.policies[-1]

    def by_name(self, name: str) -> Policy | None:
        for policy in self.policies:
            if policy.name == name:
                return policy
        return None

    def governing(self, facts: Mapping[str, Any]) -> Policy:
        """The first policy whose applies_to holds for these facts; else the default."""
        for policy in self.policies:
            if policy.applies_to is None or policy.applies_to.evaluate(facts):
                return policy
        return self.default

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(c for p in self.policies for s in p.stages for c in s.channels)

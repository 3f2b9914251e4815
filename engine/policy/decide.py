"""What one invoice should do at one instant under its policy: the escalation rules, as a pure function.

The sweep, the simulator and `explain` all call `decide`, so there is one implementation of the rules.

- A stage is *due* when the days overdue reach its `after_days`. A pre-due stage (negative `after_days`)
  is due only until the due date; once the invoice is overdue it is passed over.
- A due stage whose `when` is false is skipped.
- Leaving a stage needs `min_days_between_stages` days in it (not from `current`).
- `catch_up: step` enters the first stage that qualifies; `jump` the last one, passing over the others.
- Without a move, a stage with `repeat` notifies again every `every_days` days, at most `max` times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from engine.policy.calendar import DayCounter
from engine.policy.model import CURRENT, CatchUp, Policy, Stage


@dataclass(frozen=True)
class Skip:
    stage: str
    reason: str


@dataclass(frozen=True)
class Decision:
    #: "escalate", "repeat" or "stay"
    action: str
    target: str | None = None
    rule: str = ""
    repeat_no: int = 0
    skipped: tuple[Skip, ...] = ()
    #: Why nothing happens (for `stay`), in plain words.
    waiting: tuple[str, ...] = field(default_factory=tuple)


STAY = Decision("stay")


def stage_rule(stage: Stage) -> str:
    rule = f"{stage.name}: after_days {stage.after_days}"
    return f"{rule} and {stage.when.source}" if stage.when else rule


def decide(
    policy: Policy,
    *,
    stage: str,
    days_overdue: int,
    entered_on: date | None,
    last_notice_on: date | None,
    repeats_done: int,
    today: date,
    counter: DayCounter,
    facts: Mapping[str, Any],
    explain: bool = False,
    force_next: bool = False,
) -> Decision:
    """`force_next` (a broken promise): the next stage is entered now, whatever its after_days and the
    spacing say; stages passed over (pre-due, `when` false) are still skipped."""
    index = policy.stage_index(stage)
    stages = policy.stages
    waiting: list[str] = []

    days_in_stage = counter.between(entered_on, today) if entered_on and index >= 0 else None
    spacing_ok = force_next or days_in_stage is None or days_in_stage >= policy.min_days_between_stages

    qualified: list[int] = []
    skipped: list[Skip] = []
    for position in range(index + 1, len(stages)):
        candidate = stages[position]
        if days_overdue < candidate.after_days and not (force_next and not qualified):
            if explain:
                waiting.append(
                    f"{candidate.name} is due at {candidate.after_days} days overdue; now {days_overdue}"
                )
            break
        if candidate.pre_due and days_overdue >= 0:
            skipped.append(Skip(candidate.name, "pre-due stage: the invoice is already due"))
            continue
        if candidate.when is not None and not candidate.when.evaluate(facts):
            skipped.append(Skip(candidate.name, f"condition not met: {candidate.when.source}"))
            continue
        qualified.append(position)
        if policy.catch_up is CatchUp.STEP or days_overdue < candidate.after_days:
            break

    if qualified and spacing_ok:
        target = qualified[-1]
        passed = [Skip(stages[p].name, "passed over: catch_up jump") for p in qualified[:-1]]
        chosen_skips = sorted(
            [s for s in skipped if policy.stage_index(s.stage) < target] + passed,
            key=lambda s: policy.stage_index(s.stage),
        )
        return Decision("escalate", stages[target].name, stage_rule(stages[target]), 0, tuple(chosen_skips))
    if qualified and explain:
        waiting.append(
            f"{stages[qualified[-1]].name} is due but min_days_between_stages is "
            f"{policy.min_days_between_stages}: {days_in_stage} day(s) in {stage} so far"
        )

    if index >= 0:
        current = stages[index]
        repeat = current.repeat
        if repeat is not None:
            since = last_notice_on or entered_on
            if repeats_done >= repeat.max:
                if explain:
                    waiting.append(f"{current.name}: all {repeat.max} repeat(s) sent")
            elif since is not None:
                gap = counter.between(since, today)
                if gap >= repeat.every_days:
                    return Decision(
                        "repeat",
                        current.name,
                        f"{current.name}: repeat every {repeat.every_days} days (max {repeat.max})",
                        repeats_done + 1,
                    )
                if explain:
                    waiting.append(
                        f"{current.name}: next repeat after {repeat.every_days} days; {gap} so far"
                    )
    return Decision("stay", waiting=tuple(waiting)) if explain else STAY


def map_stage(old: Policy | None, new: Policy, stage: str, days_overdue: int) -> str:
    """Where an invoice lands when another policy (or a new version of its policy) takes over: the same
    stage if the new policy has it; else the new policy's last stage not later than the old one (by
    after_days); without the old stage's definition, the last stage its days overdue have reached.
    Landing fires nothing: escalation simply continues from there."""
    if stage == CURRENT or new.has_stage(stage):
        return stage
    reached = old.stage(stage).after_days if old is not None and old.has_stage(stage) else days_overdue
    landed = CURRENT
    for candidate in new.stages:
        if candidate.after_days <= reached and not (candidate.pre_due and days_overdue >= 0):
            landed = candidate.name
    return landed


#: Fields whose value moves with time or with *other* invoices: a condition on them is re-checked daily.
VOLATILE_FIELDS = frozenset(
    {"invoice.days_overdue", "customer.total_open", "customer.total_overdue", "customer.overdue_count"}
)
#: "Nothing will ever happen by itself": only a change to the invoice (payment, import, action) wakes it.
NEVER = date(9999, 12, 31)


def is_volatile(expression: Any) -> bool:
    return expression is not None and bool(expression.fields & VOLATILE_FIELDS)


def next_action_on(
    policy: Policy,
    *,
    stage: str,
    days_overdue: int,
    entered_on: date | None,
    last_notice_on: date | None,
    repeats_done: int,
    today: date,
    counter: DayCounter,
    facts: Mapping[str, Any],
    volatile_policy_choice: bool = False,
) -> date:
    """The first day on which `decide` could return something other than `stay` for this invoice, if
    nothing about it changes meanwhile (changes — payments, imports, actions — reset the date).

    Sweeps skip invoices whose day has not come; being early is harmless, being late is a bug, so every
    uncertain case (conditions over values that move by themselves) answers "tomorrow".
    """
    tomorrow = today + timedelta(days=1)
    candidates: list[date] = [tomorrow] if volatile_policy_choice else []
    index = policy.stage_index(stage)
    stages = policy.stages
    for position in range(index + 1, len(stages)):
        candidate = stages[position]
        if days_overdue < candidate.after_days:
            candidates.append(counter.reach(today, candidate.after_days - days_overdue))
            break
        if candidate.pre_due and days_overdue >= 0:
            continue  # passed over for good
        if is_volatile(candidate.when):
            candidates.append(tomorrow)
            continue
        if candidate.when is not None and not candidate.when.evaluate(facts):
            continue  # false until the invoice itself changes
        # due and allowed: only the spacing can be holding it back
        spaced = counter.reach(entered_on, policy.min_days_between_stages) if entered_on and index >= 0 else today
        candidates.append(max(spaced, today))
        break
    if index >= 0:
        repeat = stages[index].repeat
        since = last_notice_on or entered_on
        if repeat is not None and repeats_done < repeat.max and since is not None:
            candidates.append(max(counter.reach(since, repeat.every_days), today))
    return min(candidates) if candidates else NEVER

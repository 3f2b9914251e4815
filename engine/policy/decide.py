"""What one invoice should do at one instant under its policy, and when to look at it again: the escalation
rules, as a pure function.

The sweep and `explain` call `decide`, so there is one implementation of the rules.

- A stage is *due* when the days overdue reach its `after_days`. A pre-due stage (negative `after_days`)
  is due only until the due date; once the invoice is overdue it is passed over.
- A due stage whose `when` is false is skipped.
- Leaving a stage needs `min_days_between_stages` days in it (not from `current`).
- `catch_up: step` enters the first stage that qualifies; `jump` the last one, passing over the others.
- Without a move, a stage with `repeat` notifies again every `every_days` days, at most `max` times.

The same walk up the ladder also finds `Decision.next_on`: the first day on which deciding again could give
something other than `stay` once the decision is carried out, if nothing about the invoice changes
meanwhile. The sweep stores it (`next_action_on`) and skips the invoice until then; being early is
harmless, being late is a bug, so a condition over a value that moves by itself answers "tomorrow".
After an escalation the walk simply goes on above the stage entered; each condition is evaluated once
(again only when it reads `invoice.stage`, which the escalation changed).

A condition that cannot be computed for this invoice (`EvaluationError`: a value outside the documented
bounds, e.g. a NaN amount written into the database by hand) holds the invoice where it is: the
decision is `stay` (nothing sent, no stage change) with the reason in `waiting`, looked at again tomorrow,
and a warning naming the invoice and the expression's FILE:LINE:COLUMN is logged each time. The sweep goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from engine.errors import EvaluationError
from engine.policy.calendar import DayCounter
from engine.policy.facts import VOLATILE_FIELDS
from engine.policy.model import CURRENT, CatchUp, Expression, Policy, Stage

__all__ = [
    "NEVER",
    "VOLATILE_FIELDS",
    "Decision",
    "Skip",
    "decide",
    "held",
    "is_volatile",
    "map_stage",
    "stage_rule",
]

logger = logging.getLogger("dunning.policy")

#: "Nothing will ever happen by itself": only a change to the invoice (payment, import, action) wakes it.
NEVER = date(9999, 12, 31)


class Skip(NamedTuple):
    stage: str
    reason: str


class Decision(NamedTuple):
    """What to do with one invoice today. A named tuple, not a dataclass: the sweep makes one per invoice,
    and a frozen dataclass costs several times as much to build."""

    #: "escalate", "repeat" or "stay"
    action: str
    target: str | None = None
    rule: str = ""
    repeat_no: int = 0
    skipped: tuple[Skip, ...] = ()
    #: Why nothing happens (for `stay`), in plain words.
    waiting: tuple[str, ...] = ()
    #: The next day to decide again (see the module docstring); after a `stay`, never today.
    next_on: date = NEVER


def stage_rule(stage: Stage) -> str:
    rule = f"{stage.name}: after_days {stage.after_days}"
    return f"{rule} and {stage.when.source}" if stage.when else rule


def is_volatile(expression: Expression | None, moving: Collection[str] = VOLATILE_FIELDS) -> bool:
    """Whether the expression reads a value that moves by itself, so its verdict may change any day."""
    return expression is not None and not expression.fields.isdisjoint(moving)


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
    volatile_policy_choice: bool = False,
    moving: Collection[str] = VOLATILE_FIELDS,
    hold: bool = True,
) -> Decision:
    """The decision for one invoice today (see `_decide`); a condition that cannot be computed holds it.

    `hold=False`: raise that `EvaluationError` instead, for a caller that counts what it holds (the sweep
    calls `held` itself, so that counting costs nothing on the invoices that are not held)."""
    try:
        return _decide(
            policy,
            stage,
            days_overdue,
            entered_on,
            last_notice_on,
            repeats_done,
            today,
            counter,
            facts,
            explain,
            force_next,
            volatile_policy_choice,
            moving,
        )
    except EvaluationError as error:
        if not hold:
            raise
        return held(policy, facts, error, today)


def held(policy: Policy, facts: Mapping[str, Any], error: EvaluationError, today: date) -> Decision:
    """The decision for an invoice whose policy cannot be evaluated on its values: stay, warn, retry tomorrow."""
    number = facts.get("invoice.number")
    reason = f"policy '{policy.name}': {error}; the invoice is held where it is until the value or the policy is fixed"
    logger.warning("invoice %s: %s", number, reason)
    return Decision("stay", waiting=(reason,), next_on=today + timedelta(days=1))


def _decide(
    policy: Policy,
    stage: str,
    days_overdue: int,
    entered_on: date | None,
    last_notice_on: date | None,
    repeats_done: int,
    today: date,
    counter: DayCounter,
    facts: Mapping[str, Any],
    explain: bool,
    force_next: bool,
    volatile_policy_choice: bool,
    moving: Collection[str],
) -> Decision:
    """The decision for one invoice today, with the day to decide again (`Decision.next_on`).

    `force_next` (a broken promise): the next stage is entered now, whatever its after_days and the
    spacing say; stages passed over (pre-due, `when` false) are still skipped. It is spent by this
    decision, so `next_on` does not count on it.
    `volatile_policy_choice`: some policy's `applies_to` reads a moving value, so the governing policy
    itself may change any day (`next_on` is then at most tomorrow).
    `moving`: the fields whose values may change by themselves; `explain`, which holds everything but
    time still, passes only `invoice.days_overdue`.
    """
    index = policy.stage_index(stage)
    stages = policy.stages
    tomorrow = today + timedelta(days=1)
    waiting: list[str] = []
    verdicts: dict[int, bool] = {}  # position -> its `when` on these facts, evaluated once

    days_in_stage = counter.between(entered_on, today) if entered_on and index >= 0 else None
    spacing_ok = force_next or days_in_stage is None or days_in_stage >= policy.min_days_between_stages

    qualified: list[int] = []
    skipped: list[Skip] = []
    step = policy.catch_up is CatchUp.STEP
    # One walk up the ladder serves two questions: what to do now (`choosing`), and on which day the
    # ladder could move the invoice if it stays where it is (`waking`, the earliest such day in `wake`).
    # Per-invoice hot path of the sweep: the helpers are inlined.
    choosing = waking = True
    wake: date | None = tomorrow if volatile_policy_choice else None
    for position in range(index + 1, len(stages)):
        candidate = stages[position]
        after_days = candidate.after_days
        not_yet = days_overdue < after_days
        passed = after_days < 0 <= days_overdue  # a pre-due stage once the invoice is due
        when = candidate.when
        holds: bool | None = None if when is not None else True  # evaluated at most once
        if choosing:
            if not_yet and not (force_next and not qualified):
                if explain:
                    waiting.append(f"{candidate.name} is due at {after_days} days overdue; now {days_overdue}")
                choosing = False
            elif passed:
                skipped.append(Skip(candidate.name, "pre-due stage: the invoice is already due"))
            else:
                if holds is None:
                    assert when is not None
                    holds = verdicts[position] = when.evaluate(facts)
                if not holds:
                    assert when is not None
                    skipped.append(Skip(candidate.name, f"condition not met: {when.source}"))
                else:
                    qualified.append(position)
                    if step or not_yet:
                        choosing = False
        if waking:
            if not_yet:
                day = counter.reach(today, after_days - days_overdue)
                if wake is None or day < wake:
                    wake = day
                waking = False
            elif passed:
                pass  # passed over for good
            elif when is not None and not when.fields.isdisjoint(moving):
                if wake is None or tomorrow < wake:
                    wake = tomorrow
            else:
                if holds is None:
                    assert when is not None
                    holds = verdicts[position] = when.evaluate(facts)
                if holds:
                    # due and allowed: only the spacing can be holding it back
                    spaced = (
                        counter.reach(entered_on, policy.min_days_between_stages)
                        if entered_on and index >= 0
                        else today
                    )
                    day = spaced if spaced > today else today
                    if wake is None or day < wake:
                        wake = day
                    waking = False
                # else: false until the invoice itself changes
        if not (choosing or waking):
            break

    if qualified and spacing_ok:
        target = qualified[-1]
        passed_over = [Skip(stages[p].name, "passed over: catch_up jump") for p in qualified[:-1]]
        chosen_skips = sorted(
            [s for s in skipped if policy.stage_index(s.stage) < target] + passed_over,
            key=lambda s: policy.stage_index(s.stage),
        )
        entered = stages[target]
        if entered.approval_required:
            # The invoice waits where it is until someone approves (engine.actions): its stage is unchanged.
            next_on = (
                _earliest(
                    wake,
                    _repeat_day(
                        stages[index] if index >= 0 else None,
                        last_notice_on or entered_on,
                        repeats_done,
                        today,
                        counter,
                    ),
                )
                or NEVER
            )
        else:
            next_on = _next_on_entering(
                policy,
                target,
                days_overdue,
                today,
                counter,
                facts,
                verdicts,
                moving,
                tomorrow if volatile_policy_choice else None,
            )
        return Decision("escalate", entered.name, stage_rule(entered), 0, tuple(chosen_skips), next_on=next_on)
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
                    repeat_no = repeats_done + 1
                    return Decision(
                        "repeat",
                        current.name,
                        f"{current.name}: repeat every {repeat.every_days} days (max {repeat.max})",
                        repeat_no,
                        next_on=_earliest(wake, _repeat_day(current, today, repeat_no, today, counter)) or NEVER,
                    )
                if explain:
                    waiting.append(f"{current.name}: next repeat after {repeat.every_days} days; {gap} so far")
    stay_wake = _earliest(
        wake,
        _repeat_day(stages[index] if index >= 0 else None, last_notice_on or entered_on, repeats_done, today, counter),
    )
    # nothing happens today, so today is never asked again
    next_on = max(stay_wake, tomorrow) if stay_wake else NEVER
    return Decision("stay", waiting=tuple(waiting), next_on=next_on) if waiting else _stay(next_on)


@lru_cache(maxsize=4096)
def _stay(next_on: date) -> Decision:
    # Most invoices stay on most days, mostly until one of a few dates: share those decisions.
    return Decision("stay", next_on=next_on)


def _holds(stage: Stage, position: int, facts: Mapping[str, Any], verdicts: dict[int, bool]) -> bool:
    if stage.when is None:
        return True
    verdict = verdicts.get(position)
    if verdict is None:
        verdict = verdicts[position] = stage.when.evaluate(facts)
    return verdict


def _earliest(day: date | None, other: date | None) -> date | None:
    if day is None:
        return other
    return day if other is None or day <= other else other


def _repeat_day(
    stage: Stage | None, since: date | None, repeats_done: int, today: date, counter: DayCounter
) -> date | None:
    """When the stage's next repeat falls due (None: no repeat left, or nothing to count from)."""
    repeat = stage.repeat if stage is not None else None
    if repeat is None or repeats_done >= repeat.max or since is None:
        return None
    return max(counter.reach(since, repeat.every_days), today)


def _next_on_entering(
    policy: Policy,
    target: int,
    days_overdue: int,
    today: date,
    counter: DayCounter,
    facts: Mapping[str, Any],
    verdicts: dict[int, bool],
    moving: Collection[str],
    wake: date | None,
) -> date:
    """`next_on` once the invoice has entered stage `target` today: the walk goes on above it."""
    stages = policy.stages
    entered = stages[target]
    entered_facts: dict[str, Any] | None = None  # the facts with the new stage, made only if a condition reads it
    for position in range(target + 1, len(stages)):
        candidate = stages[position]
        if days_overdue < candidate.after_days:
            wake = _earliest(wake, counter.reach(today, candidate.after_days - days_overdue))
            break
        if candidate.pre_due and days_overdue >= 0:
            continue
        when = candidate.when
        if is_volatile(when, moving):
            wake = _earliest(wake, today + timedelta(days=1))
            continue
        if when is not None:
            if "invoice.stage" in when.fields:
                if entered_facts is None:
                    entered_facts = {**facts, "invoice.stage": entered.name}
                holds = when.evaluate(entered_facts)
            else:
                holds = _holds(candidate, position, facts, verdicts)
            if not holds:
                continue
        wake = _earliest(wake, max(counter.reach(today, policy.min_days_between_stages), today))
        break
    return _earliest(wake, _repeat_day(entered, today, 0, today, counter)) or NEVER


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

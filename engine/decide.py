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
from datetime import date
from typing import Any

from engine.calendar import DayCounter
from engine.policy import CURRENT, CatchUp, Policy, Stage


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
) -> Decision:
    index = policy.stage_index(stage)
    stages = policy.stages
    waiting: list[str] = []

    days_in_stage = counter.between(entered_on, today) if entered_on and index >= 0 else None
    spacing_ok = days_in_stage is None or days_in_stage >= policy.min_days_between_stages

    qualified: list[int] = []
    skipped: list[Skip] = []
    for position in range(index + 1, len(stages)):
        candidate = stages[position]
        if days_overdue < candidate.after_days:
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
        if policy.catch_up is CatchUp.STEP:
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

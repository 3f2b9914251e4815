"""The collection state machine, built once per policy with `transitions` and shared by every invoice.

States: `current`, one per policy stage, and the lifecycle states `paid`, `written_off`, `disputed`,
`promised`. Following the library's advice for many models, each machine is unbound (`model=None`) and
events are triggered on a light `Case` adapter — never on a SQLModel row, which refuses the attributes
transitions sets.

Triggers:
    escalate_to_<stage>   from current or any earlier stage (the sweep)
    repeat                stay in the stage and notify again (the sweep)
    pay / write_off       from any open state
    dispute / promise     pause the clock (dispute also from promised)
    resume_to_<state>     from a pause back to current or a stage
    move_to_<state>       manual override between open states
    reopen                paid -> current (the open amount grew again)

`escalate_to_<stage>` and `move_to_<state>` each come from up to every open state, so adding them all up
front is quadratic in the number of stages (1.5 million transitions, 11 s, for a 1,000-stage policy); they
are added the first time they are fired or asked about, which keeps a sweep linear in the stages.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from transitions import Event, EventData, Machine, MachineError, State

from engine.errors import IllegalTransition
from engine.policy.model import CURRENT, DISPUTED, LIFECYCLE_STATES, PAID, PROMISED, WRITTEN_OFF, Policy, Stage

#: What transitions accepts as a state in a transition's sources (ours are plain names).
StateName = str | enum.Enum | State


@dataclass
class Case:
    """What the machine moves: one invoice's stage, plus the transitions made on it so far."""

    number: str
    stage: str
    moves: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def record(self, event: EventData) -> None:
        transition = event.transition
        assert transition is not None  # `after` callbacks run only once a transition was made
        dest = transition.dest if transition.dest is not None else transition.source
        self.moves.append((event.event.name, transition.source, dest, dict(event.kwargs)))


class CollectionMachine:
    def __init__(self, policy: Policy):
        self.policy = policy
        stages: list[StateName] = [s.name for s in policy.stages]
        open_states: list[StateName] = [CURRENT, *stages]
        self._machine = Machine(
            model=None,
            states=[*open_states, *LIFECYCLE_STATES],
            initial=CURRENT,
            auto_transitions=False,
            send_event=True,
            model_attribute="stage",
        )
        self._open_states = open_states
        self._lock = threading.Lock()  # a sweep thread and a web request may add the same trigger at once
        add = self._machine.add_transition
        if stages:
            add("repeat", stages, None)
        add("pay", [*open_states, DISPUTED, PROMISED], PAID, after="record")
        add("write_off", [*open_states, DISPUTED, PROMISED], WRITTEN_OFF, after="record")
        add("dispute", [*open_states, PROMISED], DISPUTED, after="record")
        add("promise", open_states, PROMISED, after="record")
        add("reopen", [PAID], CURRENT, after="record")
        for target in open_states:
            add(f"resume_to_{target}", [DISPUTED, PROMISED], target, after="record")

    def _event(self, trigger: str) -> Event | None:
        """The machine's event for `trigger`, adding an on-demand one (see the module docstring) when due."""
        event = self._machine.events.get(trigger)
        if event is not None:
            return event
        with self._lock:
            event = self._machine.events.get(trigger)
            if event is None:
                self._add_on_demand(trigger)
                event = self._machine.events.get(trigger)
        return event

    def _add_on_demand(self, trigger: str) -> None:
        open_states = self._open_states
        if trigger.startswith("escalate_to_"):
            target = trigger.removeprefix("escalate_to_")
            if target != CURRENT and target in open_states:
                # The sweep fires these for up to millions of invoices: no callbacks on its hot path.
                self._machine.add_transition(trigger, open_states[: open_states.index(target)], target)
        elif trigger.startswith("move_to_"):
            target = trigger.removeprefix("move_to_")
            if target in open_states:
                sources = [s for s in open_states if s != target]
                self._machine.add_transition(trigger, sources, target, after="record")

    @property
    def states(self) -> list[str]:
        return list(self._machine.states)

    def fire(self, case: Case, trigger: str, **details: Any) -> None:
        """Apply one trigger; an illegal one raises IllegalTransition and leaves the case unchanged."""
        event = self._event(trigger)
        if event is None:
            raise IllegalTransition(
                f"invoice {case.number}: policy {self.policy.name!r} has no move {trigger!r}; "
                f"its states are {', '.join(self.states)}"
            )
        before = case.stage
        try:
            event.trigger(case, **details)
        except MachineError:
            case.stage = before
            raise IllegalTransition(
                f"invoice {case.number} is {before!r}: {trigger.replace('_', ' ')} is not allowed from there; "
                "nothing was changed"
            ) from None

    def can(self, stage: str, trigger: str) -> bool:
        event = self._event(trigger)
        return bool(event and stage in event.transitions)


@lru_cache(maxsize=256)
def machine_for(policy: Policy) -> CollectionMachine:
    """One machine definition per policy version, reused for every invoice it governs."""
    return CollectionMachine(policy)


def machine_for_invoice(policy: Policy | None, stage: str) -> CollectionMachine:
    """The machine that governs an invoice in `stage`: its policy's, or — when the policy is unknown
    (never swept, or since removed) — a minimal one that still knows the lifecycle moves from that stage."""
    if policy is not None and (stage in (CURRENT, *LIFECYCLE_STATES) or policy.has_stage(stage)):
        return machine_for(policy)
    stages: tuple[Stage, ...] = ()
    if stage not in (CURRENT, *LIFECYCLE_STATES):
        stages = (Stage(name=stage, after_days=0, channels=()),)
    return machine_for(Policy(name=policy.name if policy else "(none)", stages=stages))

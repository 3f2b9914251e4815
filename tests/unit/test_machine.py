"""The collection state machine (engine.policy.machine): the same moves for any ladder, built in linear time."""

from __future__ import annotations

import pytest

from engine.errors import IllegalTransition
from engine.policy.machine import Case, CollectionMachine
from engine.policy.model import CURRENT, PAID, Policy, Stage


def ladder(n: int) -> Policy:
    return Policy("many", tuple(Stage(f"s{i}", i, ("email",)) for i in range(n)))


def transitions(machine: CollectionMachine) -> int:
    return sum(len(ts) for event in machine._machine.events.values() for ts in event.transitions.values())


def test_a_thousand_stage_machine_has_linearly_many_transitions() -> None:
    # Every escalate_to_<stage> / move_to_<state> up front made 1.5 million transitions (11 s) for 1,000
    # stages; the sweep of 30 invoices fires a few of them.
    machine = CollectionMachine(ladder(1000))
    assert transitions(machine) < 10 * 1000
    case = Case("I1", "s10")
    machine.fire(case, "escalate_to_s500")
    machine.fire(case, "escalate_to_s999")
    assert case.stage == "s999"
    assert transitions(machine) < 10 * 1000 + 2 * 1000


def test_escalation_goes_up_only_and_moves_go_anywhere_open() -> None:
    machine = CollectionMachine(ladder(5))
    assert machine.can(CURRENT, "escalate_to_s0") and machine.can("s1", "escalate_to_s4")
    assert not machine.can("s3", "escalate_to_s3") and not machine.can("s4", "escalate_to_s1")
    assert not machine.can(PAID, "escalate_to_s2")
    assert not machine.can(CURRENT, "escalate_to_current") and not machine.can("s0", "move_to_paid")
    with pytest.raises(IllegalTransition, match="not allowed"):
        machine.fire(Case("I1", "s3"), "escalate_to_s2")
    with pytest.raises(IllegalTransition, match="has no move"):
        machine.fire(Case("I1", "s3"), "escalate_to_s77")
    case = Case("I1", "s4")
    machine.fire(case, "move_to_s1")
    assert case.stage == "s1" and case.moves == [("move_to_s1", "s4", "s1", {})]
    machine.fire(case, "move_to_current")
    assert case.stage == CURRENT

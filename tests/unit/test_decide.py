"""The escalation rules (engine.policy.decide) as a pure function: the decision and the next action day."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from engine.policy.calendar import CALENDAR_DAYS, DayCounter, working_days
from engine.policy.decide import NEVER, Decision, decide
from engine.policy.expressions import compile_expression
from engine.policy.facts import CREDIT_FIELDS, FIELDS, VOLATILE_FIELDS, customer_facts, invoice_facts
from engine.policy.model import CURRENT, CatchUp, Policy, Repeat, Stage

TODAY = date(2026, 3, 4)  # a Wednesday
ONLY_TIME = frozenset({"invoice.days_overdue"})


def stage(name: str, after: int, when: str | None = None, **kwargs: Any) -> Stage:
    return Stage(name, after, ("email",), when=compile_expression(when) if when else None, **kwargs)


LADDER = (
    stage("courtesy", -3),
    stage("reminder", 3, repeat=Repeat(every_days=7, max=2)),
    stage("phone", 15),
    stage("visit", 60, "invoice.open_amount >= 50000"),
    stage("legal", 90),
)


def ladder(**kwargs: Any) -> Policy:
    return Policy("standard", LADDER, **kwargs)


def run(
    policy: Policy,
    stage: str = CURRENT,
    days_overdue: int = 0,
    *,
    entered_on: date | None = None,
    last_notice_on: date | None = None,
    repeats_done: int = 0,
    today: date = TODAY,
    counter: DayCounter = CALENDAR_DAYS,
    facts: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Decision:
    facts = {"invoice.open_amount": Decimal(100), "invoice.stage": stage, **(facts or {})}
    facts["invoice.days_overdue"] = days_overdue
    return decide(
        policy,
        stage=stage,
        days_overdue=days_overdue,
        entered_on=entered_on,
        last_notice_on=last_notice_on,
        repeats_done=repeats_done,
        today=today,
        counter=counter,
        facts=facts,
        **kwargs,
    )


def test_nothing_due_stays_until_the_next_stage_is() -> None:
    decision = run(ladder(), "courtesy", 0, entered_on=TODAY - timedelta(days=3))
    assert decision.action == "stay"
    assert decision.next_on == TODAY + timedelta(days=3)  # reminder at 3 days overdue


def test_a_due_stage_is_entered_and_the_next_day_is_the_one_after() -> None:
    decision = run(ladder(), CURRENT, 3)
    assert (decision.action, decision.target, decision.rule) == ("escalate", "reminder", "reminder: after_days 3")
    assert decision.skipped[0].stage == "courtesy"  # pre-due, passed over
    # next: the first repeat a week later (phone is 12 days away)
    assert decision.next_on == TODAY + timedelta(days=7)


def test_pre_due_stage_is_entered_before_the_due_date() -> None:
    assert run(ladder(), CURRENT, -3).target == "courtesy"
    assert run(ladder(), CURRENT, -4).next_on == TODAY + timedelta(days=1)


def test_a_false_condition_skips_the_stage_and_nothing_wakes_it() -> None:
    entered = TODAY - timedelta(days=30)
    decision = run(ladder(), "phone", 70, entered_on=entered)
    assert decision.action == "stay"
    assert decision.next_on == TODAY + timedelta(days=20)  # legal at 90; visit's amount never changes by itself
    rich = run(ladder(), "phone", 70, entered_on=entered, facts={"invoice.open_amount": Decimal(60000)})
    assert (rich.action, rich.target) == ("escalate", "visit")


def test_spacing_holds_the_next_stage_and_names_the_day() -> None:
    policy = ladder(min_days_between_stages=5)
    decision = run(policy, "reminder", 15, entered_on=TODAY - timedelta(days=2), last_notice_on=TODAY, explain=True)
    assert decision.action == "stay"
    assert decision.next_on == TODAY + timedelta(days=3)
    assert any("min_days_between_stages is 5" in line for line in decision.waiting)


@pytest.mark.parametrize(("catch_up", "target"), [(CatchUp.STEP, "reminder"), (CatchUp.JUMP, "phone")])
def test_catch_up_step_or_jump(catch_up: CatchUp, target: str) -> None:
    decision = run(ladder(catch_up=catch_up), CURRENT, 20)
    assert decision.target == target
    if catch_up is CatchUp.JUMP:
        assert [s.reason for s in decision.skipped][-1] == "passed over: catch_up jump"
        assert decision.next_on == TODAY + timedelta(days=40)  # visit's day (60), whatever its condition will say
    else:
        assert decision.next_on == TODAY  # phone is already due: the next sweep moves on


def test_repeats_every_n_days_up_to_max() -> None:
    entered = TODAY - timedelta(days=7)
    first = run(ladder(), "reminder", 10, entered_on=entered, last_notice_on=entered)
    assert (first.action, first.repeat_no) == ("repeat", 1)
    assert first.next_on == TODAY + timedelta(days=5)  # phone at 15 comes before the second repeat
    done = run(ladder(), "reminder", 10, entered_on=entered, last_notice_on=entered, repeats_done=2, explain=True)
    assert done.action == "stay" and "reminder: all 2 repeat(s) sent" in done.waiting


def test_a_broken_promise_forces_the_next_stage_now() -> None:
    decision = run(ladder(min_days_between_stages=10), "reminder", 5, entered_on=TODAY, force_next=True)
    assert (decision.action, decision.target) == ("escalate", "phone")


def test_an_escalation_awaiting_approval_keeps_the_stage_for_the_next_day() -> None:
    stages = (stage("reminder", 3, repeat=Repeat(every_days=2, max=1)), stage("legal", 10, approval_required=True))
    decision = run(Policy("p", stages), "reminder", 12, entered_on=TODAY - timedelta(days=9), last_notice_on=TODAY)
    assert (decision.action, decision.target) == ("escalate", "legal")
    assert decision.next_on == TODAY  # still in reminder, legal is due: once approved or not, it is asked again
    entering = run(Policy("p", (stages[0], stage("legal", 10))), "reminder", 12, entered_on=TODAY, last_notice_on=TODAY)
    assert (entering.target, entering.next_on) == ("legal", NEVER)  # in legal, the last stage: nothing more


def test_a_condition_on_moving_values_is_asked_again_tomorrow() -> None:
    stages = (stage("reminder", 3), stage("big", 5, "customer.total_overdue > 1000"), stage("legal", 90))
    decision = run(Policy("p", stages), "reminder", 30, entered_on=TODAY - timedelta(days=27))
    assert decision.next_on == TODAY + timedelta(days=1)
    # holding all but time still (explain), a condition on the customer's totals cannot change by itself
    assert run(Policy("p", stages), "reminder", 30, entered_on=TODAY, moving=ONLY_TIME).next_on == TODAY + timedelta(
        days=60
    )
    assert run(Policy("p", stages), "reminder", 30, volatile_policy_choice=True).next_on == TODAY + timedelta(days=1)


def test_a_condition_on_the_stage_is_read_with_the_stage_just_entered() -> None:
    stages = (stage("reminder", 3), stage("phone", 5, "invoice.stage == 'reminder'"), stage("legal", 90))
    decision = run(Policy("p", stages), CURRENT, 30)
    assert decision.target == "reminder"
    assert decision.next_on == TODAY  # from reminder, phone's condition holds: due at once


def test_business_days_of_a_friday_saturday_weekend_country() -> None:
    thursday = date(2026, 3, 5)
    counter = working_days("SA")
    decision = run(
        ladder(), "reminder", 3, entered_on=thursday, last_notice_on=thursday, today=thursday, counter=counter
    )
    assert decision.next_on == date(2026, 3, 16)  # 7 working days: Sun 8 … Thu 12, Sun 15, Mon 16 (Fri/Sat off)


def test_next_on_is_never_late() -> None:
    """Deciding again every day until `next_on` (nothing else changing) never finds an earlier action."""
    rnd = random.Random(5)
    conditions = [None, None, "invoice.open_amount >= 500", "invoice.days_overdue > 40", "invoice.stage != 'b'"]
    for _ in range(400):
        afters = sorted(rnd.sample(range(-10, 80), rnd.randint(1, 5)))
        stages = tuple(
            stage(
                name, after, rnd.choice(conditions), repeat=Repeat(rnd.randint(1, 9), 2) if rnd.random() < 0.4 else None
            )
            for name, after in zip("abcde", afters, strict=False)
        )
        policy = Policy(
            "p", stages, min_days_between_stages=rnd.choice([0, 4]), catch_up=rnd.choice([CatchUp.STEP, CatchUp.JUMP])
        )
        counter = rnd.choice([CALENDAR_DAYS, working_days("DE"), working_days("SA")])
        index = rnd.randrange(-1, len(stages))
        name = CURRENT if index < 0 else stages[index].name
        entered = None if index < 0 else TODAY - timedelta(days=rnd.randrange(0, 20))
        due = TODAY - timedelta(days=rnd.randrange(-15, 100))
        amount = Decimal(rnd.choice([100, 1000]))
        decision = _on(policy, name, due, TODAY, entered, None, 0, counter, amount)
        if decision.action != "stay":
            continue
        day = TODAY + timedelta(days=1)
        while day < min(decision.next_on, TODAY + timedelta(days=200)):
            assert _on(policy, name, due, day, entered, None, 0, counter, amount).action == "stay", (policy, day)
            day += timedelta(days=1)


def _on(
    policy: Policy,
    name: str,
    due: date,
    day: date,
    entered: date | None,
    last: date | None,
    repeats: int,
    counter: DayCounter,
    amount: Decimal,
) -> Decision:
    overdue = counter.between(due, day)
    return run(
        policy,
        name,
        overdue,
        entered_on=entered,
        last_notice_on=last,
        repeats_done=repeats,
        today=day,
        counter=counter,
        facts={"invoice.open_amount": amount},
    )


def test_fact_builders_fill_exactly_the_registered_fields() -> None:
    row = {
        "number": "INV-1",
        "amount": Decimal("100.00"),
        "open_amount": Decimal("40.00"),
        "currency": "EUR",
        "issued_on": date(2026, 1, 1),
        "due_on": date(2026, 1, 31),
        "tags": None,
        "stage": "reminder",
        "customer_id": "C1",
        "c_name": "Acme",
        "c_credit_grade": "A",
        "c_segment": "smb",
        "c_owner": "ann",
        "c_language": "en",
        "c_timezone": "Europe/Berlin",
        "c_tags": ["vip"],
    }
    facts = {**customer_facts(row, None), **invoice_facts(row, 12)}
    assert set(facts) == set(FIELDS) - CREDIT_FIELDS  # the credit desk fills the others
    assert facts["invoice.paid_amount"] == Decimal("60.00")
    assert facts["invoice.tags"] == () and facts["customer.tags"] == ("vip",)
    assert (facts["customer.total_open"], facts["customer.overdue_count"]) == (Decimal(0), 0)
    assert VOLATILE_FIELDS == {
        "invoice.days_overdue",
        "customer.total_open",
        "customer.total_overdue",
        "customer.overdue_count",
        "customer.utilisation",
        "customer.grade_changed_days_ago",
        "customer.open_warnings",
    }


def test_nothing_left_means_never() -> None:
    assert run(ladder(), "legal", 200, entered_on=TODAY - timedelta(days=100)).next_on == NEVER


def test_a_condition_that_cannot_be_computed_holds_the_invoice_and_names_the_rule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NaN (possible only in a database edited by hand, e.g. PostgreSQL numeric 'NaN') has no order: the
    # comparison raises decimal.InvalidOperation, which used to end the whole sweep in a traceback.
    when = compile_expression("invoice.open_amount >= 50000", origin="rules/house.yaml:7:13")
    policy = Policy("house", (stage("reminder", 3), Stage("visit", 3, ("visit",), when=when)), catch_up=CatchUp.JUMP)
    nan = {"invoice.open_amount": Decimal("NaN"), "invoice.number": "I-7"}
    with caplog.at_level("WARNING", logger="dunning.policy"):
        decision = run(policy, CURRENT, 5, facts=nan)
    assert decision.action == "stay" and decision.next_on == TODAY + timedelta(days=1)
    assert "rules/house.yaml:7:13" in decision.waiting[0] and "policy 'house'" in decision.waiting[0]
    assert "I-7" in caplog.text and "rules/house.yaml:7:13" in caplog.text and "not a number" in caplog.text
    # the same invoice with a usable value decides as usual
    assert run(policy, CURRENT, 5, facts={"invoice.open_amount": Decimal(60000)}).target == "visit"


def test_days_beyond_the_calendar_mean_never_not_an_overflow() -> None:
    # after_days far in the future (or a sweep near 9999-12-31): the wake-up day saturates at NEVER
    policy = Policy("far", (stage("reminder", 3), stage("late", 10**10)))
    assert run(policy, "reminder", 5, entered_on=TODAY).next_on == NEVER
    late_today = date(9999, 12, 1)
    assert run(policy, "reminder", 5, entered_on=late_today, today=late_today).next_on == NEVER
    business = run(policy, "reminder", 5, entered_on=TODAY, counter=working_days("DE"))
    assert business.next_on == NEVER

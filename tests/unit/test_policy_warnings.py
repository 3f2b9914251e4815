"""Policy check warnings: legal but suspicious policies, and "did you mean" for the usual slips."""

from __future__ import annotations

import textwrap
from pathlib import Path

from engine.errors import Problem
from engine.policy.loader import check_policies, load_policies

CHANNELS = {"email", "phone", "letter", "visit", "legal"}


def check(tmp_path: Path, text: str) -> tuple[Path, list[Problem]]:
    file = tmp_path / "p.yaml"
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return file, check_policies(file, known_channels=CHANNELS)


def warnings(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems if p.severity == "warning"]


def test_legal_stage_without_amount_floor_warns_but_loads(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: p
        stages:
          - {name: reminder, after_days: 3, channels: [email]}
          - name: lawyers
            after_days: 60
            channels: [legal]
        """,
    )
    assert warnings(problems) == [
        f"{file}:4:11: warning: stage 'lawyers' is a legal step with no amount floor: every overdue invoice "
        'reaches it, however small; add a condition such as when: "invoice.open_amount >= 5000"'
    ]
    assert load_policies(file, known_channels=CHANNELS).default.stage("lawyers").after_days == 60


def test_legal_stage_with_a_condition_on_something_else_still_warns(tmp_path: Path) -> None:
    _, problems = check(
        tmp_path,
        """\
        name: p
        stages:
          - name: legal_handover
            after_days: 60
            when: "customer.credit_grade == 'D'"
            channels: [letter]
        """,
    )
    assert len(warnings(problems)) == 1 and "no amount floor" in warnings(problems)[0]


def test_legal_stage_with_amount_floor_is_fine(tmp_path: Path) -> None:
    _, problems = check(
        tmp_path,
        """\
        name: p
        stages:
          - {name: legal, after_days: 60, when: "customer.total_overdue >= 1000", channels: [legal]}
        """,
    )
    assert problems == []


def test_condition_on_days_overdue_that_can_never_hold_after_the_due_day(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: p
        stages:
          - {name: reminder, after_days: 10, when: "invoice.days_overdue < 5", channels: [email]}
          - {name: letter, after_days: 20, when: "invoice.days_overdue >= 25", channels: [letter]}
        """,
    )
    [warning] = warnings(problems)
    assert warning.startswith(f"{file}:3:44: warning: stage 'reminder' can never be entered")
    assert "invoice.days_overdue < 5" in warning


def test_jump_makes_an_earlier_stage_with_the_same_after_days_unreachable(tmp_path: Path) -> None:
    text = """\
        name: p
        catch_up: CATCH
        stages:
          - {name: email_notice, after_days: 10, channels: [email]}
          - {name: letter, after_days: 10, channels: [letter]}
        """
    file, problems = check(tmp_path, text.replace("CATCH", "jump"))
    [warning] = warnings(problems)
    assert warning.startswith(
        f"{file}:4:38: warning: stage 'email_notice' can never be entered: with catch_up: "
        "jump, stage 'letter' is due on the same day"
    )
    _, problems = check(tmp_path, text.replace("CATCH", "step"))
    assert problems == []


def test_did_you_mean_for_keys_fields_and_channels(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: p
        stages:
          - name: reminder
            afterdays: 3
            after_days: 3
            channels: [emial]
            when: "invoice.open_amout > 5"
        """,
    )
    text = "\n".join(str(p) for p in problems)
    assert "unknown key 'afterdays'" in text and "did you mean 'after_days'?" in text
    assert "unknown channel 'emial' in stage 'reminder'; did you mean 'email'?" in text
    assert "did you mean 'invoice.open_amount'" in text


def test_shipped_rules_stay_free_of_warnings() -> None:
    rules = Path(__file__).resolve().parents[2] / "rules"
    assert check_policies(rules, known_channels=CHANNELS) == []

"""rules/credit.yaml and rules/warnings.yaml: their own schemas, located problems, never read as dunning policies."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from engine.credit.rules import Band, check_rule_files, load_credit_rules
from engine.errors import PolicyError
from engine.policy.loader import check_policies as check_dunning_policies
from engine.policy.loader import load_policies


def check_policies(path: Path, *, known_channels: tuple[str, ...]) -> list:  # type: ignore[type-arg]
    """What `dunning policy check` reports: the policies and the credit rule files."""
    return sorted(
        check_dunning_policies(path, known_channels=known_channels)
        + check_rule_files(path, known_channels=known_channels)
    )


RULES = Path(__file__).resolve().parents[2] / "rules"
CHANNELS = ("email", "letter", "phone", "visit", "legal", "erp_hook")


def test_shipped_rules_are_valid_and_the_credit_files_are_no_policies() -> None:
    assert check_policies(RULES, known_channels=CHANNELS) == []
    names = {p.name for p in load_policies(RULES, known_channels=CHANNELS).policies}
    assert "credit" not in names and len(names) == 3
    rules = load_credit_rules(RULES, known_channels=CHANNELS)
    assert rules.credit is not None and [g.grade for g in rules.credit.grades] == ["A", "B", "C", "D"]
    assert rules.credit.currency == "CNY" and rules.credit.no_history_grade == "C"
    assert [w.name for w in rules.warnings] == [
        "grade_dropped",
        "near_limit",
        "three_overdue",
        "large_overdue",
        "broken_promise",
        "paying_later",
    ]


def test_bands_upto_atleast_and_the_rest() -> None:
    upto, atleast, rest = Band(40, upto=Decimal(0)), Band(30, atleast=Decimal("0.9")), Band(0)
    assert upto.holds(Decimal(0)) and not upto.holds(Decimal("0.1")) and not upto.holds(None)
    assert atleast.holds(Decimal("0.9")) and not atleast.holds(Decimal("0.89"))
    assert rest.holds(None) and rest.holds(Decimal(99))


BAD_CREDIT = """\
window_days: 365
factors:
  - name: paid_late_days
    measure: avg_day_late
    points: [{upto: 0, points: 40}, {points: 0}]
  - name: legal
    expression: "credit.legal_invoice == 0"
    points: [{atleast: 1, pionts: 3}]
  - name: legal
    measure: disputes
    expression: "customer.overdue_count > 1"
    points: [{upto: 1, atleast: 0, points: 3}]
grades:
  - {grade: A, min_score: 85, limit: 500000, payment_terms_days: 60}
  - {grade: D, min_score: 90, limit: 0,      payment_terms_days: 0}
no_history_grade: E
currency: CNY
holds: {when: "customer.utilisaton > 1", notify: [owner, erp_hok]}
"""
BAD_WARNINGS = """\
warnings:
  - name: three_overdue
    when: "customer.overdue_count >= 3"
    severity: hgh
    notify: [owner]
  - name: three_overdue
    whn: "customer.total_overdue > 1000"
"""


def test_problems_are_located_with_did_you_mean(tmp_path: Path) -> None:
    shutil.copy(RULES / "90-default.yaml", tmp_path / "90-default.yaml")
    (tmp_path / "credit.yaml").write_text(BAD_CREDIT, encoding="utf-8")
    (tmp_path / "warnings.yaml").write_text(BAD_WARNINGS, encoding="utf-8")
    found = [str(p).replace(str(tmp_path) + "/", "") for p in check_policies(tmp_path, known_channels=CHANNELS)]
    assert found[:4] == [
        "credit.yaml:4:14: measure must be one of: avg_days_late, on_time_share, broken_promises, overdue_share, "
        "disputes, days_to_pay, utilisation, relationship_days, days_since_last_payment, got 'avg_day_late'; "
        "did you mean 'avg_days_late'? (in factors item 'paid_late_days')",
        "credit.yaml:7:18: invalid expression in factor 'legal': unknown field 'credit.legal_invoice'; "
        "did you mean 'credit.legal_invoices'?",
        "credit.yaml:8:14: missing required key 'points' in points item 1",
        "credit.yaml:8:27: unknown key 'pionts' in points item 1; did you mean 'points'?",
    ]
    text = "\n".join(found)
    assert "credit.yaml:9:11: factor 'legal' is defined twice (first at line 6)" in text
    assert "credit.yaml:9:5: factor 'legal' needs exactly one of measure: or expression:" in text
    assert "credit.yaml:12:14: a band has upto: or atleast:, not both" in text
    assert "credit.yaml:15:27: min_score 90 must be lower than the grade above's (85)" in text
    assert "credit.yaml:16:19: no_history_grade 'E' is not one of the grades (A, D)" in text
    assert (
        "credit.yaml:18:16: invalid expression in holds.when: unknown field 'customer.utilisaton'; "
        "did you mean 'customer.utilisation'?" in text
    )
    assert (
        "credit.yaml:18:58: unknown notify target 'erp_hok': use owner, an email address or a configured "
        "channel; did you mean 'erp_hook'?" in text
    )
    assert (
        "warnings.yaml:4:15: severity must be one of: info, low, medium, high, got 'hgh'; did you mean 'high'?" in text
    )
    assert "warnings.yaml:6:11: warning 'three_overdue' is defined twice (first at line 2)" in text
    assert "warnings.yaml:7:5: unknown key 'whn'" in text
    with pytest.raises(PolicyError):
        load_credit_rules(tmp_path, known_channels=CHANNELS)
    # checking one rule file by itself checks only that file, against its own schema
    alone = check_policies(tmp_path / "warnings.yaml", known_channels=CHANNELS)
    assert alone and {Path(p.file).name for p in alone} == {"warnings.yaml"}
    assert check_rule_files(tmp_path / "90-default.yaml") == []


def test_policy_fields_stay_out_of_policies_but_credit_fields_are_refused_there(tmp_path: Path) -> None:
    (tmp_path / "90-default.yaml").write_text(
        'name: d\nstages:\n  - {name: r, after_days: 1, channels: [email], when: "credit.disputes > 0"}\n',
        encoding="utf-8",
    )
    problems = [p.message for p in check_policies(tmp_path, known_channels=CHANNELS)]
    assert (
        len(problems) == 1
        and "'credit' fields are not available here; use one of: invoice.*, customer.*" in problems[0]
    )


def test_reason_codes_file_is_checked_and_defaults_apply_without_it(tmp_path: Path) -> None:
    assert load_credit_rules(tmp_path).reasons["delivery_problem"] == "internal"  # the built-in list
    assert load_credit_rules(RULES).reasons["industry_downturn"] == "market"
    (tmp_path / "reasons.yaml").write_text(
        "groups:\n  customer: {cash_trouble: short of cash}\n  internal: {cash_trouble: again, 9x: bad}\ngrups: {}\n",
        encoding="utf-8",
    )
    found = [str(p).replace(str(tmp_path) + "/", "") for p in check_rule_files(tmp_path)]
    assert found == ["reasons.yaml:4:1: unknown key 'grups'; did you mean 'groups'?"]
    (tmp_path / "reasons.yaml").write_text(
        "groups:\n  customer: {cash_trouble: short of cash}\n  internal: {cash_trouble: again, 9x: bad}\n",
        encoding="utf-8",
    )
    found = [str(p).replace(str(tmp_path) + "/", "") for p in check_rule_files(tmp_path)]
    assert found == [
        "reasons.yaml:3:14: reason code 'cash_trouble' is already in group 'customer'",
        "reasons.yaml:3:35: reason code '9x' must be one word of letters, digits and underscores",
    ]

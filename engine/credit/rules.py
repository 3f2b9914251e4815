"""The credit rule files finance edits, beside the dunning policies: `credit.yaml` and `warnings.yaml`.

They are recognised by name (`RULE_FILES`), never read as dunning policies, and each is checked against its
own schema with the same located problems as policies (`rules/credit.yaml:12:14: unknown measure
'avg_day_late'; did you mean 'avg_days_late'?`). Both are optional: without `credit.yaml` there is no
scoring (grades stay as imported or set by hand); without `warnings.yaml` no warning is raised.

credit.yaml (see rules/README.md for the finance user's guide)::

    window_days: 365
    factors:
      - {name: paid_late_days, measure: avg_days_late, points: [{upto: 0, points: 40}, {points: 0}]}
      - {name: no_legal, expression: "credit.legal_invoices == 0", points: [{atleast: 1, points: 10}, {points: 0}]}
    grades:
      - {grade: A, min_score: 85, limit: 500000, payment_terms_days: 60}
      - {grade: D, min_score: 0, limit: 0, payment_terms_days: 0}
    no_history_grade: C
    currency: CNY
    holds: {when: "customer.utilisation > 1 or customer.credit_grade == 'D'", notify: [owner]}

warnings.yaml::

    warnings:
      - {name: three_overdue, when: "customer.overdue_count >= 3", severity: high, notify: [owner]}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import ExpressionError, PolicyError, Problem
from engine.policy.expressions import CompiledExpression, compile_expression
from engine.policy.model import MAX_DAYS
from engine.yamlsource import (
    Expect,
    Limit,
    Located,
    did_you_mean,
    load_located_file,
    show_value,
    validation_problems,
)

__all__ = [
    "CREDIT_FILE",
    "MEASURES",
    "RULE_FILES",
    "WARNINGS_FILE",
    "Band",
    "CreditPolicy",
    "CreditRules",
    "Factor",
    "Grade",
    "Holds",
    "WarningRule",
    "check_rule_files",
    "load_credit_rules",
]

CREDIT_FILE = "credit.yaml"
WARNINGS_FILE = "warnings.yaml"
INCENTIVES_FILE = "incentives.yaml"
#: Rule files read by name from the rules folder; never dunning policies.
RULE_FILES = frozenset(
    {
        CREDIT_FILE,
        WARNINGS_FILE,
        INCENTIVES_FILE,
        "reasons.yaml",
        "credit.yml",
        "warnings.yml",
        "incentives.yml",
        "reasons.yml",
    }
)
#: What factor expressions, hold conditions and warnings may look at.
CREDIT_ROOTS = ("customer", "credit")

#: Every named measure a factor may score, with its definition (the README and rules/README repeat these).
MEASURES: dict[str, str] = {
    "avg_days_late": "amount-weighted mean days late of the invoices paid in full in the window (a payment "
    "before the due date counts 0 days, never negative); weights are the invoice amounts",
    "on_time_share": "invoices due in the window paid in full by their due date ÷ invoices due in the window",
    "broken_promises": "promises broken and plan installments missed in the window (count)",
    "overdue_share": "overdue open amount ÷ open amount at the as-of day (0 without open invoices)",
    "disputes": "disputes opened in the window (count)",
    "days_to_pay": "mean days from issue date to payment in full, over the invoices paid in full in the window",
    "utilisation": "open amount in the credit currency ÷ credit limit at the as-of day",
    "relationship_days": "days from the customer's first invoice's issue date to the as-of day",
    "days_since_last_payment": "days from the customer's latest payment to the as-of day",
}
SEVERITIES = ("info", "low", "medium", "high")
GRADE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_+-]*$"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
# Bounds (README, Credit management): as in policies, a count of days is at most 100 years, and an amount is
# below what an invoice may carry (10^14); a warning's name fits the credit_warnings.rule column.
_DAYS = Limit("days", "100 years")
MAX_CREDIT_AMOUNT = 10**14
_AMOUNT = Limit("", "10^14, the largest amount an invoice may carry")
MAX_POINTS = 1_000_000
WARNING_NAME_LENGTH = 128
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")

_STRICT = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------- the file schemas


class BandSpec(BaseModel):
    """One band of a factor: the first band whose bound the value meets gives its points."""

    model_config = ConfigDict(**_STRICT, title="Band")

    upto: Annotated[float | None, Expect("a number")] = Field(
        default=None, allow_inf_nan=False, description="The band holds values ≤ this number.", examples=[15]
    )
    atleast: Annotated[float | None, Expect("a number")] = Field(
        default=None, allow_inf_nan=False, description="The band holds values ≥ this number.", examples=[0.9]
    )
    points: Annotated[int, Expect("a whole number of points"), Limit("points")] = Field(
        ge=-MAX_POINTS, le=MAX_POINTS, description="Points for a value in this band.", examples=[30]
    )


class FactorSpec(BaseModel):
    """One scored fact about the customer: a named measure, or a condition (true counts as 1, false as 0)."""

    model_config = ConfigDict(**_STRICT, title="Factor")

    name: Annotated[str, Expect("a single word of letters, digits and underscores")] = Field(
        pattern=NAME_PATTERN, description="Unique name, shown in every score breakdown.", examples=["on_time"]
    )
    measure: (
        Literal[
            "avg_days_late",
            "on_time_share",
            "broken_promises",
            "overdue_share",
            "disputes",
            "days_to_pay",
            "utilisation",
            "relationship_days",
            "days_since_last_payment",
        ]
        | None
    ) = Field(default=None, description="The measure scored (see MEASURES).")
    expression: Annotated[str | None, Expect("a condition in quotes")] = Field(
        default=None,
        description="Instead of a measure: a condition over customer.* and credit.* fields; true is 1, false 0.",
        examples=["credit.legal_invoices == 0"],
    )
    points: Annotated[list[BandSpec], Expect("a list of bands such as [{upto: 0, points: 40}, {points: 0}]")] = Field(
        min_length=1, description="Bands tried in order; the first that holds gives the points (none: 0 points)."
    )
    description: Annotated[str | None, Expect("text")] = None


class GradeSpec(BaseModel):
    """A credit grade: reached by a score of at least `min_score`; its limit and payment terms."""

    model_config = ConfigDict(**_STRICT, title="Grade")

    grade: Annotated[str, Expect("a grade name such as A")] = Field(pattern=GRADE_PATTERN, examples=["A"])
    min_score: Annotated[int, Expect("a whole number"), Limit("points")] = Field(ge=0, le=MAX_POINTS, examples=[85])
    limit: Annotated[float, Expect("an amount in the credit currency"), _AMOUNT] = Field(
        ge=0, le=MAX_CREDIT_AMOUNT, allow_inf_nan=False, examples=[500000]
    )
    payment_terms_days: Annotated[int, Expect("a whole number of days"), _DAYS] = Field(
        ge=0, le=MAX_DAYS, examples=[60]
    )


class HoldsSpec(BaseModel):
    """When a customer goes on credit hold (no new orders ship) and when the hold is released."""

    model_config = ConfigDict(**_STRICT, title="Holds")

    when: Annotated[str, Expect("a condition in quotes")] = Field(
        examples=["customer.utilisation > 1 or customer.credit_grade == 'D' or credit.legal_invoices > 0"]
    )
    release_when: Annotated[str | None, Expect("a condition in quotes")] = Field(
        default=None, description="Default: as soon as `when` no longer holds."
    )
    notify: Annotated[list[str], Expect("a list such as [owner, order_system]")] = Field(
        default_factory=list, description="owner, an email address, or a channel name."
    )


class CreditSpec(BaseModel):
    """rules/credit.yaml: how customers are scored and graded, and what each grade may owe."""

    model_config = ConfigDict(**_STRICT, title="Credit policy")

    window_days: Annotated[int, Expect("a whole number of days"), _DAYS] = Field(default=365, ge=1, le=MAX_DAYS)
    factors: Annotated[list[FactorSpec], Expect("a list of factors")] = Field(min_length=1)
    grades: Annotated[list[GradeSpec], Expect("a list of grades")] = Field(min_length=1)
    no_history_grade: Annotated[str, Expect("one of the grades")]
    currency: Annotated[str, Expect("a 3-letter currency code such as CNY")] = Field(pattern=r"^[A-Z]{3}$")
    holds: Annotated[HoldsSpec | None, Expect("a mapping with when:")] = None
    description: Annotated[str | None, Expect("text")] = None


class WarningSpec(BaseModel):
    """One early-warning rule: raised once when `when` holds for a customer, open until acknowledged or cleared."""

    model_config = ConfigDict(**_STRICT, title="Warning")

    name: Annotated[
        str,
        Expect("a single word of letters, digits and underscores"),
        Limit("characters", "the length of the database's warning rule column"),
    ] = Field(pattern=NAME_PATTERN, max_length=WARNING_NAME_LENGTH)
    when: Annotated[str, Expect("a condition in quotes")]
    severity: Literal["info", "low", "medium", "high"] = "medium"
    notify: Annotated[list[str], Expect("a list such as [owner]")] = Field(default_factory=list)
    description: Annotated[str | None, Expect("text")] = None


class WarningsSpec(BaseModel):
    model_config = ConfigDict(**_STRICT, title="Early warnings")

    warnings: Annotated[list[WarningSpec], Expect("a list of warning rules")]


class LatenessBandSpec(BaseModel):
    """Commission rate for payments that came at most `upto_days` days after the due date (none: the rest)."""

    model_config = ConfigDict(**_STRICT, title="Lateness band")

    name: Annotated[str, Expect("a band name such as on_time")] = Field(min_length=1, examples=["on_time", "1-30"])
    upto_days: Annotated[int | None, Expect("a whole number of days"), _DAYS] = Field(
        default=None, ge=0, le=MAX_DAYS, examples=[30]
    )
    rate: Annotated[float, Expect("a fraction such as 0.01 (1%)")] = Field(ge=0, le=1, examples=[0.01])


class BonusSpec(BaseModel):
    """An extra rate on everything an owner collected when their on-time share (by amount) reaches a target."""

    model_config = ConfigDict(**_STRICT, title="Bonus")

    on_time_share_atleast: Annotated[float, Expect("a fraction such as 0.8")] = Field(ge=0, le=1, examples=[0.8])
    rate: Annotated[float, Expect("a fraction such as 0.005")] = Field(ge=0, le=1, examples=[0.005])


class IncentivesSpec(BaseModel):
    """rules/incentives.yaml: commission on what each owner collects, by amount and timeliness (回款提成)."""

    model_config = ConfigDict(**_STRICT, title="Collection incentives")

    bands: Annotated[list[LatenessBandSpec], Expect("a list of bands")] = Field(min_length=1)
    bonus: Annotated[BonusSpec | None, Expect("a mapping such as {on_time_share_atleast: 0.8, rate: 0.005}")] = None
    cap: Annotated[float | None, Expect("an amount"), _AMOUNT] = Field(
        default=None,
        ge=0,
        le=MAX_CREDIT_AMOUNT,
        allow_inf_nan=False,
        description="Most commission + bonus per owner, currency and report period.",
    )
    clawback: Annotated[bool, Expect("true or false")] = Field(
        default=True, description="Take back the commission of an invoice's payments when it is written off."
    )
    description: Annotated[str | None, Expect("text")] = None


class ReasonsSpec(BaseModel):
    """rules/reasons.yaml: the reason codes collectors pick (`--reason-code`), grouped by where the cause lies."""

    model_config = ConfigDict(**_STRICT, title="Reason codes")

    groups: Annotated[dict[str, dict[str, str]], Expect("a mapping of groups to {code: description}")] = Field(
        min_length=1, examples=[{"customer": {"cash_trouble": "The customer is short of cash"}}]
    )


#: The practice's grouping of overdue causes, used when rules/ has no reasons.yaml.
DEFAULT_REASONS: dict[str, dict[str, str]] = {
    "customer": {
        "cash_trouble": "The customer is short of cash",
        "bad_faith": "The customer will not pay in bad faith",
        "disagreement": "The customer disagrees about goods, price or terms",
    },
    "internal": {
        "weak_credit_check": "Credit was granted without a proper check",
        "unclear_contract": "The contract or invoice terms were unclear",
        "delivery_problem": "Late, short or faulty delivery on our side",
    },
    "market": {
        "industry_downturn": "The customer's industry is in a downturn",
        "policy_change": "A change in regulation or policy",
    },
}


# --------------------------------------------------------------------------- the loaded rules


@dataclass(frozen=True)
class Band:
    points: int
    upto: Decimal | None = None
    atleast: Decimal | None = None

    def holds(self, value: Decimal | None) -> bool:
        """A band with a bound never holds an unknown value; the catch-all band (no bound) holds anything."""
        if self.upto is None and self.atleast is None:
            return True
        if value is None:
            return False
        if self.upto is not None and value > self.upto:
            return False
        return not (self.atleast is not None and value < self.atleast)

    def label(self) -> str:
        if self.upto is not None:
            return f"≤ {self.upto}"
        if self.atleast is not None:
            return f"≥ {self.atleast}"
        return "otherwise"


@dataclass(frozen=True)
class Factor:
    name: str
    bands: tuple[Band, ...]
    measure: str | None = None
    expression: CompiledExpression | None = None


@dataclass(frozen=True)
class Grade:
    grade: str
    min_score: int
    limit: Decimal
    payment_terms_days: int


@dataclass(frozen=True)
class Holds:
    when: CompiledExpression
    release_when: CompiledExpression | None
    notify: tuple[str, ...]


@dataclass(frozen=True)
class CreditPolicy:
    window_days: int
    factors: tuple[Factor, ...]
    grades: tuple[Grade, ...]
    no_history_grade: str
    currency: str
    holds: Holds | None
    path: str
    #: SHA-256 of the exact file text: recorded with every grade change.
    hash: str

    def grade_for(self, score: int) -> Grade:
        for grade in self.grades:
            if score >= grade.min_score:
                return grade
        return self.grades[-1]

    def grade_named(self, name: str | None) -> Grade | None:
        return next((g for g in self.grades if g.grade == name), None)

    def rank(self, name: str | None) -> int | None:
        """0 for the best grade; None for a grade this policy does not know."""
        return next((i for i, g in enumerate(self.grades) if g.grade == name), None)


@dataclass(frozen=True)
class WarningRule:
    name: str
    when: CompiledExpression
    severity: str
    notify: tuple[str, ...]


@dataclass(frozen=True)
class LatenessBand:
    name: str
    upto_days: int | None
    rate: Decimal


@dataclass(frozen=True)
class Incentives:
    bands: tuple[LatenessBand, ...]
    bonus_target: Decimal | None
    bonus_rate: Decimal
    cap: Decimal | None
    clawback: bool
    path: str
    hash: str

    def band_for(self, days_late: int) -> LatenessBand | None:
        return next((b for b in self.bands if b.upto_days is None or days_late <= b.upto_days), None)


@dataclass(frozen=True)
class CreditRules:
    credit: CreditPolicy | None = None
    warnings: tuple[WarningRule, ...] = ()
    incentives: Incentives | None = None
    #: reason code -> its group (rules/reasons.yaml, else DEFAULT_REASONS)
    reasons: Mapping[str, str] = field(default_factory=lambda: _groups_of(DEFAULT_REASONS))


@dataclass
class _Result:
    problems: list[Problem] = field(default_factory=list)
    credit: CreditPolicy | None = None
    warnings: tuple[WarningRule, ...] = ()
    incentives: Incentives | None = None
    reasons: dict[str, str] | None = None


def _groups_of(groups: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    return {code: group for group, codes in groups.items() for code in codes}


# --------------------------------------------------------------------------- public API


def is_rule_file(path: Path) -> bool:
    """Whether a file of the rules folder is one of the credit rule files (and so not a dunning policy)."""
    return path.name in RULE_FILES


def load_credit_rules(rules: str | Path, *, known_channels: Collection[str] = ()) -> CreditRules:
    """The credit rules in the folder `rules` (either file may be absent); PolicyError listing every problem."""
    result = _analyse(Path(rules), known_channels)
    if any(p.severity == "error" for p in result.problems):
        raise PolicyError(result.problems)
    if result.reasons is None:
        return CreditRules(result.credit, result.warnings, result.incentives)
    return CreditRules(result.credit, result.warnings, result.incentives, result.reasons)


def check_rule_files(rules: str | Path, *, known_channels: Collection[str] = ()) -> list[Problem]:
    """Every problem in the credit rule files under `rules` (a folder, or one of the files itself)."""
    return sorted(_analyse(Path(rules), known_channels).problems)


# --------------------------------------------------------------------------- analysis


def _analyse(path: Path, known_channels: Collection[str]) -> _Result:
    result = _Result()
    if path.is_file():
        files = [path] if is_rule_file(path) else []
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if is_rule_file(p) and p.is_file())
    else:
        files = []
    for file in files:
        stem = file.name.split(".")[0]
        located = load_located_file(file)
        result.problems.extend(located.problems)
        if not located.parsed:
            continue
        if not isinstance(located.data, dict):
            what = {"credit": "window_days:, factors: and grades:", "warnings": "warnings:", "reasons": "groups:"}.get(
                stem, "bands:"
            )
            result.problems.append(
                located.problem(
                    (), f"{file.name} must be a mapping of keys such as {what}, got {show_value(located.data)}"
                )
            )
            continue
        if stem == "credit":
            result.credit = _credit(located, result.problems, known_channels)
        elif stem == "warnings":
            result.warnings = _warnings(located, result.problems, known_channels)
        elif stem == "reasons":
            result.reasons = _reasons(located, result.problems)
        else:
            result.incentives = _incentives(located, result.problems)
    return result


def _compile(located: Located, path: tuple[Any, ...], problems: list[Problem], what: str) -> CompiledExpression | None:
    source = located.data
    for part in path:
        if isinstance(source, dict):
            source = source.get(part)
        elif isinstance(source, list) and isinstance(part, int) and 0 <= part < len(source):
            source = source[part]
        else:
            source = None
    if not isinstance(source, str):
        return None  # missing or of the wrong type: the schema reports it
    try:
        mark = located.value_mark(path)
        return compile_expression(source, roots=CREDIT_ROOTS, origin=f"{located.file}:{mark.line}:{mark.column}")
    except ExpressionError as exc:
        problems.append(located.problem(path, f"invalid expression in {what}: {exc.message}", offset=exc.offset))
        return None


def _notify_problems(
    located: Located, path: tuple[Any, ...], targets: Any, known_channels: Collection[str], problems: list[Problem]
) -> None:
    if not isinstance(targets, list):
        return
    channels = set(known_channels)
    for index, target in enumerate(targets):
        if not isinstance(target, str) or target == "owner" or _EMAIL.match(target) or target in channels:
            continue
        hint = did_you_mean(target, ["owner", *sorted(channels)])
        problems.append(
            located.problem(
                (*path, index),
                f"unknown notify target '{target}': use owner, an email address or a configured channel{hint}",
            )
        )


def _once(
    located: Located, problems: list[Problem], seen: dict[str, int], path: tuple[Any, ...], name: Any, what: str
) -> None:
    """Note the line of a named entry (a factor, a warning rule), or a problem when the name came before."""
    if not isinstance(name, str):
        return
    if name in seen:
        problems.append(
            located.problem((*path, "name"), f"{what} '{name}' is defined twice (first at line {seen[name]})")
        )
    else:
        seen[name] = located.key_line(path)


def _credit(located: Located, problems: list[Problem], known_channels: Collection[str]) -> CreditPolicy | None:
    data: dict[str, Any] = located.data
    before = len(problems)
    spec: CreditSpec | None = None
    try:
        spec = CreditSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, located, model=CreditSpec))
    factors_raw = data.get("factors") if isinstance(data.get("factors"), list) else []
    expressions: dict[int, CompiledExpression | None] = {}
    seen: dict[str, int] = {}
    for index, factor in enumerate(factors_raw):
        if not isinstance(factor, dict):
            continue
        name = factor.get("name")
        _once(located, problems, seen, ("factors", index), name, "factor")
        has_measure, has_expression = "measure" in factor, "expression" in factor
        if has_measure == has_expression:
            problems.append(
                located.problem(
                    ("factors", index),
                    f"factor {show_value(name)} needs exactly one of measure: or expression:",
                    at="key",
                )
            )
        if has_expression:
            expressions[index] = _compile(
                located, ("factors", index, "expression"), problems, f"factor {show_value(name)}"
            )
        bands = factor.get("points") if isinstance(factor.get("points"), list) else []
        for b, band in enumerate(bands):
            if isinstance(band, dict) and "upto" in band and "atleast" in band:
                problems.append(
                    located.problem(("factors", index, "points", b), "a band has upto: or atleast:, not both", at="key")
                )
    grades_raw = data.get("grades") if isinstance(data.get("grades"), list) else []
    names: list[str] = []
    last_min: int | None = None
    for index, grade in enumerate(grades_raw):
        if not isinstance(grade, dict):
            continue
        name, min_score = grade.get("grade"), grade.get("min_score")
        if isinstance(name, str):
            if name in names:
                problems.append(located.problem(("grades", index, "grade"), f"grade '{name}' is listed twice"))
            names.append(name)
        if isinstance(min_score, int) and not isinstance(min_score, bool):
            if last_min is not None and min_score >= last_min:
                problems.append(
                    located.problem(
                        ("grades", index, "min_score"),
                        (
                            f"min_score {min_score} must be lower than the grade above's ({last_min}): grades go from "
                            "best to worst and the first whose min_score the score reaches applies"
                        ),
                    )
                )
            last_min = min_score
    if grades_raw and last_min not in (None, 0):
        problems.append(
            located.problem(
                ("grades", len(grades_raw) - 1, "min_score"),
                "the last grade's min_score should be 0, so that every score gets a grade",
                severity="warning",
            )
        )
    fallback = data.get("no_history_grade")
    if isinstance(fallback, str) and names and fallback not in names:
        hint = did_you_mean(fallback, names)
        problems.append(
            located.problem(
                ("no_history_grade",),
                f"no_history_grade '{fallback}' is not one of the grades ({', '.join(names)}){hint}",
            )
        )
    holds = data.get("holds") if isinstance(data.get("holds"), dict) else None
    hold_when = hold_release = None
    if holds is not None:
        hold_when = _compile(located, ("holds", "when"), problems, "holds.when")
        hold_release = _compile(located, ("holds", "release_when"), problems, "holds.release_when")
        _notify_problems(located, ("holds", "notify"), holds.get("notify"), known_channels, problems)

    if spec is None or any(p.severity == "error" for p in problems[before:]):
        return None
    factors = tuple(
        Factor(
            name=f.name,
            bands=tuple(Band(b.points, _decimal(b.upto), _decimal(b.atleast)) for b in f.points),
            measure=f.measure,
            expression=expressions.get(i),
        )
        for i, f in enumerate(spec.factors)
    )
    grades = tuple(
        Grade(g.grade, g.min_score, _decimal(g.limit) or Decimal(0), g.payment_terms_days) for g in spec.grades
    )
    hold = None
    if spec.holds is not None and hold_when is not None:
        hold = Holds(hold_when, hold_release, tuple(spec.holds.notify))
    raw = located.raw if located.raw is not None else located.text.encode("utf-8")
    return CreditPolicy(
        window_days=spec.window_days,
        factors=factors,
        grades=grades,
        no_history_grade=spec.no_history_grade,
        currency=spec.currency,
        holds=hold,
        path=located.file,
        hash=hashlib.sha256(raw).hexdigest(),
    )


def _warnings(located: Located, problems: list[Problem], known_channels: Collection[str]) -> tuple[WarningRule, ...]:
    data: dict[str, Any] = located.data
    before = len(problems)
    spec: WarningsSpec | None = None
    try:
        spec = WarningsSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, located, model=WarningsSpec))
    raw = data.get("warnings") if isinstance(data.get("warnings"), list) else []
    compiled: dict[int, CompiledExpression | None] = {}
    seen: dict[str, int] = {}
    for index, rule in enumerate(raw):
        if not isinstance(rule, dict):
            continue
        name = rule.get("name")
        _once(located, problems, seen, ("warnings", index), name, "warning")
        compiled[index] = _compile(located, ("warnings", index, "when"), problems, f"warning {show_value(name)}")
        _notify_problems(located, ("warnings", index, "notify"), rule.get("notify"), known_channels, problems)
    if spec is None or any(p.severity == "error" for p in problems[before:]):
        return ()
    return tuple(
        WarningRule(w.name, compiled[i], w.severity, tuple(w.notify))  # type: ignore[arg-type]
        for i, w in enumerate(spec.warnings)
    )


def _reasons(located: Located, problems: list[Problem]) -> dict[str, str] | None:
    before = len(problems)
    try:
        spec = ReasonsSpec.model_validate(located.data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, located, model=ReasonsSpec))
        return None
    seen: dict[str, str] = {}
    for group, codes in spec.groups.items():
        for code in codes:
            if not re.match(NAME_PATTERN, code):
                problems.append(
                    located.problem(
                        ("groups", group, code),
                        f"reason code {show_value(code)} must be one word of letters, digits and underscores",
                        at="key",
                    )
                )
            elif code in seen:
                problems.append(
                    located.problem(
                        ("groups", group, code), f"reason code '{code}' is already in group '{seen[code]}'", at="key"
                    )
                )
            seen[code] = group
    return None if len(problems) > before else seen


def _incentives(located: Located, problems: list[Problem]) -> Incentives | None:
    before = len(problems)
    spec: IncentivesSpec | None = None
    try:
        spec = IncentivesSpec.model_validate(located.data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, located, model=IncentivesSpec))
    bands = located.data.get("bands") if isinstance(located.data.get("bands"), list) else []
    last: int | None = None
    for index, band in enumerate(bands):
        if not isinstance(band, dict):
            continue
        upto = band.get("upto_days")
        if upto is None and index < len(bands) - 1:
            problems.append(
                located.problem(
                    ("bands", index),
                    "only the last band may leave out upto_days (it takes every later payment)",
                    at="key",
                )
            )
        if isinstance(upto, int) and not isinstance(upto, bool):
            if last is not None and upto <= last:
                problems.append(
                    located.problem(
                        ("bands", index, "upto_days"), f"upto_days {upto} must be more than the band above's ({last})"
                    )
                )
            last = upto
    if bands and isinstance(bands[-1], dict) and bands[-1].get("upto_days") is not None:
        problems.append(
            located.problem(
                ("bands", len(bands) - 1),
                "the last band should leave out upto_days, so that payments later than every band still earn its rate",
                severity="warning",
                at="key",
            )
        )
    if spec is None or any(p.severity == "error" for p in problems[before:]):
        return None
    raw = located.raw if located.raw is not None else located.text.encode("utf-8")
    return Incentives(
        bands=tuple(LatenessBand(b.name, b.upto_days, _decimal(b.rate) or Decimal(0)) for b in spec.bands),
        bonus_target=_decimal(spec.bonus.on_time_share_atleast) if spec.bonus else None,
        bonus_rate=(_decimal(spec.bonus.rate) or Decimal(0)) if spec.bonus else Decimal(0),
        cap=_decimal(spec.cap),
        clawback=spec.clawback,
        path=located.file,
        hash=hashlib.sha256(raw).hexdigest(),
    )


def _decimal(value: float | int | None) -> Decimal | None:
    # YAML gives 0.1 as a float; its shortest repr is the number the user wrote.
    return None if value is None else Decimal(repr(value)) if isinstance(value, float) else Decimal(value)

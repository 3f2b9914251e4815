"""A policy's `charges:` key: its schema, its checks (located, with "did you mean") and the `ChargeTerms` it means.

    charges:
      interest: {basis: statutory, jurisdiction: EU}     # or {rate_per_year: 0.08} or {rate_per_day: 0.0005}
      compensation: statutory                            # or {amount: 40}
      fees:
        - {stage: letter, amount: 25}                    # a fixed fee when the invoice enters that stage
      allocation: principal_first                        # or fees_interest_principal
      interest_during_dispute: true                      # false: days in dispute bear no interest
      jurisdiction: EU                                   # for compensation: statutory without statutory interest

The policy loader validates `charges` with `ChargesSpec` as part of the policy file (so unknown keys get its
"did you mean"), then calls `charges_problems` and `build_terms` from here. Rates are fractions in the file
(0.08 = 8% a year) and percent everywhere after. The rate files are checked where the policy lies:
`<policy folder>/rates/<file>.yaml`.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.charges.jurisdictions import JURISDICTIONS, LPR_FILE
from engine.charges.model import Allocation, ChargeTerms, CompensationRule, InterestRule, RateUnit
from engine.charges.rates import check_rate_file
from engine.errors import Problem
from engine.yamlsource import Expect, Limit, Located, did_you_mean, show_value

__all__ = ["ChargesSpec", "RATES_FOLDER", "build_terms", "charges_problems"]

RATES_FOLDER = "rates"
_STRICT = ConfigDict(extra="forbid", strict=True)
Jurisdiction = Literal["EU", "UK", "DE", "CN"]
#: Bounds (README, Policies: "Bounds"): an agreed rate as a fraction, and a fee or fixed compensation.
MAX_RATE_PER_YEAR = 10
MAX_RATE_PER_DAY = 0.1
MAX_CHARGE = 1_000_000_000


class InterestSpec(BaseModel):
    """Interest on the open principal: the statutory rate of a jurisdiction, or an agreed rate."""

    model_config = ConfigDict(**_STRICT, title="Interest")

    basis: Literal["statutory"] | None = Field(
        default=None, description="statutory: the jurisdiction's reference rate plus its margin (needs jurisdiction)."
    )
    jurisdiction: Jurisdiction | None = Field(
        default=None,
        description="EU (ECB rate + 8), UK (Bank of England base rate + 8), DE (Basiszinssatz + 9), CN (0.05% a day; "
        "an agreed rate a year is never below the 1-year LPR).",
    )
    rate_per_year: Annotated[
        float | int | None, Expect("a number such as 0.08 (8% a year)"), Limit("", "1,000% a year")
    ] = Field(
        default=None,
        ge=0,
        le=MAX_RATE_PER_YEAR,
        allow_inf_nan=False,
        description="An agreed yearly rate as a fraction: 0.08 is 8% a year.",
        examples=[0.08],
    )
    rate_per_day: Annotated[
        float | int | None, Expect("a number such as 0.0005 (0.05% a day)"), Limit("", "10% a day")
    ] = Field(
        default=None,
        ge=0,
        le=MAX_RATE_PER_DAY,
        allow_inf_nan=False,
        description="An agreed daily rate as a fraction: 0.0005 is 0.05% a day.",
        examples=[0.0005],
    )


class FeeSpec(BaseModel):
    """A fixed fee charged when an invoice enters a stage."""

    model_config = ConfigDict(**_STRICT, title="Fee")

    stage: Annotated[str, Expect("a stage name of this policy")] = Field(description="The stage that adds the fee.")
    amount: Annotated[float | int, Expect("an amount such as 25"), Limit("in the invoice's currency")] = Field(
        gt=0, le=MAX_CHARGE, allow_inf_nan=False, description="The fee, in the invoice's currency.", examples=[25]
    )


class ChargesSpec(BaseModel):
    """What the law (or the contract) lets the creditor claim on top of the principal. Nothing by default."""

    model_config = ConfigDict(**_STRICT, title="Charges")

    interest: Annotated[InterestSpec | None, Expect("a mapping such as {basis: statutory, jurisdiction: EU}")] = Field(
        default=None, description="Interest from the day after the due date on the principal open each day."
    )
    compensation: Any = Field(
        default=None,
        description="statutory (the jurisdiction's fixed sum: EU/DE 40, UK 40/70/100) or {amount: 40}; once per "
        "overdue invoice, in its currency.",
        examples=["statutory", {"amount": 40}],
    )
    fees: Annotated[list[FeeSpec], Expect("a list such as [{stage: letter, amount: 25}]")] = Field(
        default_factory=list, description="Fixed fees added when an invoice enters a stage."
    )
    allocation: Literal["principal_first", "fees_interest_principal"] = Field(
        default="principal_first",
        description="How a payment is applied: to the principal first (default), or to compensation and fees, "
        "then interest, then principal.",
    )
    jurisdiction: Jurisdiction | None = Field(
        default=None, description="The law of `compensation: statutory` when interest names none."
    )
    interest_during_dispute: Annotated[bool, Expect("true or false")] = Field(
        default=True, description="false: days an invoice spends in dispute bear no interest."
    )


def charges_problems(located: Located, stage_names: list[str]) -> list[Problem]:
    """Checks of `charges` the schema cannot express: one interest form, a law for statutory sums, fee stages
    that exist, compensation's shape and the rate files the policy will need."""
    charges = located.data.get("charges") if isinstance(located.data, dict) else None
    if not isinstance(charges, dict):
        return []
    problems: list[Problem] = []
    at = ("charges",)
    interest = charges.get("interest")
    law = charges.get("jurisdiction") if isinstance(charges.get("jurisdiction"), str) else None
    if isinstance(interest, dict):
        forms = [k for k in ("basis", "rate_per_year", "rate_per_day") if interest.get(k) is not None]
        if len(forms) != 1:
            problems.append(
                located.problem(
                    (*at, "interest"),
                    "interest needs exactly one of basis: statutory, rate_per_year or rate_per_day"
                    + (f", got {' and '.join(forms)}" if forms else ""),
                )
            )
        if interest.get("basis") == "statutory" and interest.get("jurisdiction") is None:
            problems.append(
                located.problem(
                    (*at, "interest", "basis"),
                    "statutory interest needs a jurisdiction: EU, UK, DE or CN, "
                    "e.g. {basis: statutory, jurisdiction: EU}",
                )
            )
        if isinstance(interest.get("jurisdiction"), str):
            law = law or interest["jurisdiction"]
        problems.extend(_rate_file_problems(located, interest))
    compensation = charges.get("compensation")
    if compensation == "statutory":
        if law is None:
            problems.append(
                located.problem(
                    (*at, "compensation"),
                    "compensation: statutory needs a jurisdiction: give interest one or set "
                    "charges.jurisdiction (EU, UK or DE)",
                )
            )
        elif law in JURISDICTIONS and JURISDICTIONS[law].compensation is None:
            problems.append(
                located.problem(
                    (*at, "compensation"),
                    f"the law of {law} sets no fixed compensation; give an agreed sum such as "
                    "{amount: 40} or remove compensation",
                )
            )
    elif isinstance(compensation, dict):
        amount = compensation.get("amount")
        for key in compensation:
            if key != "amount":
                problems.append(
                    located.problem(
                        (*at, "compensation", key),
                        f"unknown key '{key}' in charges.compensation"
                        f"{did_you_mean(key, ['amount']) or '; the only key is amount'}",
                        at="key",
                    )
                )
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 < amount <= MAX_CHARGE:
            problems.append(
                located.problem(
                    (*at, "compensation", "amount") if "amount" in compensation else (*at, "compensation"),
                    f"charges.compensation.amount must be an amount above 0 and at most {MAX_CHARGE:,} such as 40, "
                    f"got {show_value(amount)}",
                )
            )
    elif compensation is not None:
        hint = did_you_mean(compensation, ["statutory"]) if isinstance(compensation, str) else ""
        problems.append(
            located.problem(
                (*at, "compensation"),
                f"charges.compensation must be statutory or {{amount: 40}}, got {show_value(compensation)}{hint}",
            )
        )
    fees = charges.get("fees")
    if isinstance(fees, list):
        for index, fee in enumerate(fees):
            stage = fee.get("stage") if isinstance(fee, dict) else None
            if isinstance(stage, str) and stage not in stage_names:
                hint = did_you_mean(stage, stage_names) or f"; stages of this policy: {', '.join(stage_names)}"
                problems.append(
                    located.problem((*at, "fees", index, "stage"), f"fee for unknown stage '{stage}'{hint}")
                )
    return problems


def _rate_file_problems(located: Located, interest: dict[Any, Any]) -> list[Problem]:
    law = interest.get("jurisdiction")
    if interest.get("basis") == "statutory" and law in JURISDICTIONS:
        needed = JURISDICTIONS[law].rate_file
    elif law == "CN" and interest.get("rate_per_year") is not None:
        needed = LPR_FILE
    else:
        return []
    if needed is None:
        return []
    path = rates_dir(located.file) / needed
    if not path.is_file():
        return [
            located.problem(
                ("charges", "interest", "jurisdiction"),
                f"{law} interest needs the reference rates in {path}, which "
                "does not exist; copy it from dunning's rules/rates/ folder",
            )
        ]
    return _table_problems(path)


def _table_problems(path: Path) -> list[Problem]:
    _table, problems = check_rate_file(path)
    return problems


def rates_dir(policy_file: str) -> Path:
    """The folder of rate files for a policy: `rates/` beside the policy file."""
    return Path(policy_file).parent / RATES_FOLDER


def build_terms(spec: ChargesSpec | None, policy_file: str) -> ChargeTerms | None:
    """The terms of a valid `charges:` (None when the policy has none)."""
    if spec is None:
        return None
    interest = None
    law = spec.jurisdiction
    if spec.interest is not None:
        i = spec.interest
        law = law or i.jurisdiction
        if i.basis == "statutory":
            interest = InterestRule(statutory=True, jurisdiction=i.jurisdiction)
        elif i.rate_per_day is not None:
            interest = InterestRule(False, i.jurisdiction, _percent(i.rate_per_day), RateUnit.PER_DAY)
        elif i.rate_per_year is not None:
            interest = InterestRule(False, i.jurisdiction, _percent(i.rate_per_year), RateUnit.PER_YEAR)
    compensation = None
    if spec.compensation == "statutory":
        compensation = CompensationRule(statutory=True, jurisdiction=law)
    elif isinstance(spec.compensation, dict):
        compensation = CompensationRule(statutory=False, amount=Decimal(str(spec.compensation["amount"])))
    return ChargeTerms(
        interest=interest,
        compensation=compensation,
        fees=tuple((fee.stage, Decimal(str(fee.amount))) for fee in spec.fees),
        allocation=Allocation(spec.allocation),
        interest_during_dispute=spec.interest_during_dispute,
        rates_dir=rates_dir(policy_file),
    )


def _percent(fraction: float | int) -> Decimal:
    return (Decimal(str(fraction)) * 100).normalize()

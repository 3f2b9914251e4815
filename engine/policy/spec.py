"""The schema of one policy file: what keys it has, their types and documentation, as pydantic models.

`PolicySpec.model_validate` checks a parsed file's shape (the loader turns each finding into a located
`Problem`); `policy_json_schema()` is the same schema for editors, with every field's description and the
reference policy (`CANONICAL_EXAMPLE`) as its example. Checks a schema cannot express live in
`engine.policy.checks`.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.charges.spec import ChargesSpec
from engine.policy.expressions import FIELDS
from engine.policy.model import (
    MAX_DAYS,
    MAX_REPEATS,
    MAX_STAGES,
    POLICY_NAME_LENGTH,
    RESERVED_STATE_NAMES,
    STAGE_NAME_LENGTH,
)
from engine.yamlsource import (
    Expect,
    Limit,
)

__all__ = ["CANONICAL_EXAMPLE", "PolicySpec", "StageSpec", "policy_json_schema"]

STAGE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
#: A language tag as customers' `language` carries it: en, zh, zh-CN, zh_Hant_TW.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$"

_STRICT = ConfigDict(extra="forbid", strict=True)
#: How a day count over its bound reads: "after_days 99999 is over the limit of 36,500 days (100 years)".
_DAYS = Limit("days", "100 years", "the bounds are listed in the README (Policies, Bounds)")


class RepeatSpec(BaseModel):
    """Send the stage's notifications again while the invoice stays in the stage."""

    model_config = ConfigDict(**_STRICT, title="Repeat")

    every_days: Annotated[int, Expect("a whole number of days"), _DAYS] = Field(
        ge=1,
        le=MAX_DAYS,
        description="Days between one sending and the next while the invoice stays in this stage.",
        examples=[7],
    )
    max: Annotated[int, Expect("a whole number"), Limit("repeats")] = Field(
        ge=1,
        le=MAX_REPEATS,
        description="How many extra sendings at most, not counting the first one on entering the stage.",
        examples=[2],
    )


class CalendarSpec(BaseModel):
    """Which public holidays `days: business` skips."""

    model_config = ConfigDict(**_STRICT, title="Calendar")

    country: Annotated[str | None, Expect("a country code such as DE")] = Field(
        default=None,
        description=(
            "ISO 3166 country code whose public holidays are not business days (e.g. DE, FR, GB, US). "
            "When omitted, the country from the configuration is used; with none there, only weekends are skipped."
        ),
        examples=["DE"],
    )


class StageSpec(BaseModel):
    """One step of the escalation ladder. Stages are listed in the order invoices move through them."""

    model_config = ConfigDict(**_STRICT, title="Stage")

    name: Annotated[
        str,
        Expect("a single word of letters, digits and underscores, starting with a letter"),
        Limit("characters", "the length of the database's stage column"),
    ] = Field(
        pattern=STAGE_NAME_PATTERN,
        max_length=STAGE_NAME_LENGTH,
        description=(
            "Unique name of the stage within the policy; shown in reports and picks the notification template. "
            f"Reserved: {', '.join(sorted(RESERVED_STATE_NAMES))}."
        ),
        examples=["reminder", "final_notice"],
    )
    after_days: Annotated[int, Expect("a whole number of days"), _DAYS] = Field(
        ge=-MAX_DAYS,
        le=MAX_DAYS,
        description=(
            "Days overdue (counted after the due date) at which the invoice enters this stage. "
            "Negative for a courtesy reminder before the due date. Must not decrease from one stage to the next."
        ),
        examples=[-3, 3, 30],
    )
    channels: Annotated[list[str], Expect("a list of channel names such as [email]")] = Field(
        min_length=1,
        description="How the customer is contacted on entering the stage, e.g. [email] or [letter, email].",
        examples=[["email"], ["letter", "email"]],
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", "examples": ["email", "phone", "letter"]}},
    )
    when: Annotated[str | None, Expect("a condition in quotes")] = Field(
        default=None,
        description=(
            "Optional condition: the stage is skipped for invoices where it does not hold. "
            "May use invoice.* and customer.* fields."
        ),
        examples=["invoice.open_amount >= 10000"],
    )
    repeat: Annotated[RepeatSpec | None, Expect("a mapping such as {every_days: 7, max: 2}")] = Field(
        default=None,
        description="Optional: send again every `every_days` days, at most `max` times, while the invoice stays here.",
        examples=[{"every_days": 7, "max": 2}],
    )
    template: Annotated[str | None, Expect("a template name: letters, digits, '_' and '-'")] = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description=(
            "Optional template name used instead of the stage name to find the stage's templates in "
            "rules/templates (`<template>.<channel>[.<lang>].txt`, `<template>[.<lang>].txt`, then the channel "
            "and default templates)."
        ),
        examples=["friendly_reminder"],
    )
    title: Annotated[
        str
        | dict[Annotated[str, Field(pattern=LANGUAGE_PATTERN)], Annotated[str, Field(min_length=1, max_length=120)]]
        | None,
        Expect("a title, or a mapping of languages to titles such as {en: Reminder, zh-CN: 付款提醒}"),
    ] = Field(
        default=None,
        description=(
            "Optional: the stage's title in messages (`stage_title` in templates, e.g. the subject of the default "
            "template), per customer language: {en: Final notice, zh-CN: 最后催告}. A plain text is the title for "
            "customers without a language of their own. Without it: a built-in title per language for the usual "
            "stage names (reminder, letter, phone, ...), else the stage name."
        ),
        examples=["Final notice", {"en": "Final notice", "zh-CN": "最后催告"}],
    )
    description: Annotated[str | None, Expect("text")] = Field(
        default=None, description="Optional note for readers; not sent to customers."
    )
    fallback: Annotated[dict[str, str] | None, Expect("a mapping such as {email: letter}")] = Field(
        default=None,
        description=(
            "Optional: when a notification on a channel fails for good (e.g. the email bounced), send it on "
            "another channel instead, e.g. {email: letter}. Keys must be channels of this stage."
        ),
        examples=[{"email": "letter"}],
    )
    attach: Annotated[list[Literal["letter", "statement"]] | None, Expect("a list such as [statement]")] = Field(
        default=None,
        description=(
            "Optional: the PDFs this stage's e-mails carry (letter, statement), instead of the email channel's "
            "attach: list; [] attaches nothing. A pre-due stage never attaches a letter."
        ),
        examples=[["statement"], []],
    )
    approval: Literal["required", "none"] = Field(
        default="none",
        description=(
            "required: an invoice due for this stage waits in 'awaiting approval' (no notifications) until "
            "someone runs `dunning approve NUMBER`; none (default): entered automatically."
        ),
    )


class PolicySpec(BaseModel):
    """One collection policy: which customers it governs and the ladder of stages their overdue invoices climb."""

    model_config = ConfigDict(**_STRICT, title="Dunning policy")

    name: Annotated[str, Expect("a name"), Limit("characters", "the length of the database's policy column")] = Field(
        min_length=1,
        max_length=POLICY_NAME_LENGTH,
        description="Unique name of the policy across all policy files.",
        examples=["standard"],
    )
    applies_to: Annotated[str | None, Expect("a condition in quotes")] = Field(
        default=None,
        description=(
            "Which customers/invoices this policy governs, as a condition on invoice.* and customer.* fields. "
            "Policies are tried in file-name order; leave this key out in exactly one policy: the default, "
            "which governs everyone else."
        ),
        examples=["customer.credit_grade in ['A', 'B']"],
    )
    days: Literal["calendar", "business"] = Field(
        default="calendar",
        description=(
            "How after_days are counted: calendar (every day) or business (weekends and the public holidays "
            "of calendar.country don't count)."
        ),
    )
    calendar: Annotated[CalendarSpec | None, Expect("a mapping such as {country: DE}")] = Field(
        default=None, description="Holiday calendar for `days: business`."
    )
    min_days_between_stages: Annotated[int, Expect("a whole number of days"), _DAYS] = Field(
        default=0,
        ge=0,
        le=MAX_DAYS,
        description="An invoice stays at least this many days in a stage before moving on to the next one.",
        examples=[5],
    )
    catch_up: Literal["step", "jump"] = Field(
        default="step",
        description=(
            "When an invoice is several stages behind (e.g. imported late): step = one stage per sweep, "
            "each one notified; jump = straight to the highest due stage, only that one notified."
        ),
    )
    description: Annotated[str | None, Expect("text")] = Field(
        default=None, description="Optional note for readers: what this policy is for."
    )
    group_by: Literal["invoice", "customer"] = Field(
        default="invoice",
        description=(
            "invoice (default): one message per invoice; customer: one message per customer, stage and repeat "
            "listing all of that customer's invoices due for it (each invoice keeps its own state and history)."
        ),
    )
    grace_days: Annotated[int, Expect("a whole number of days"), _DAYS] = Field(
        default=3,
        ge=0,
        le=MAX_DAYS,
        description=(
            "Days after a promise-to-pay date (or a plan installment's date) before an unpaid promise counts "
            "as broken and escalation resumes at once."
        ),
        examples=[3],
    )
    stages: Annotated[list[StageSpec], Expect("a list of stages"), Limit("stages")] = Field(
        min_length=1,
        max_length=MAX_STAGES,
        description="The escalation ladder, in order: after_days must not decrease from one stage to the next.",
    )
    charges: Annotated[
        ChargesSpec | None, Expect("a mapping such as {interest: {basis: statutory, jurisdiction: EU}}")
    ] = Field(default=None, description="Optional: interest, fixed compensation and fees (engine.charges.spec).")


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one policy file, for editors: descriptions, enums and examples."""
    schema = PolicySpec.model_json_schema()
    fields = ", ".join(sorted(FIELDS))
    holders = [schema.get("properties", {})] + [d.get("properties", {}) for d in schema.get("$defs", {}).values()]
    for holder in holders:
        for key in ("when", "applies_to"):
            if key in holder:
                # The loader rejects an explicitly empty `when:` / `applies_to:`; don't offer null.
                holder[key] = _without_null(holder[key])
                holder[key]["description"] += f" Fields: {fields}."
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "examples": [copy.deepcopy(CANONICAL_EXAMPLE)],
    }


#: The reference policy; also the schema's example.
CANONICAL_EXAMPLE: dict[str, Any] = {
    "name": "standard",
    "applies_to": "customer.credit_grade in ['A', 'B']",
    "days": "calendar",
    "calendar": {"country": "DE"},
    "min_days_between_stages": 5,
    "catch_up": "step",
    "stages": [
        {"name": "courtesy", "after_days": -3, "channels": ["email"]},
        {"name": "reminder", "after_days": 3, "channels": ["email"], "repeat": {"every_days": 7, "max": 2}},
        {"name": "phone", "after_days": 15, "channels": ["phone"]},
        {"name": "letter", "after_days": 30, "channels": ["letter", "email"]},
        {"name": "visit", "after_days": 60, "when": "invoice.open_amount >= 50000", "channels": ["visit"]},
        {"name": "legal", "after_days": 90, "when": "invoice.open_amount >= 10000", "channels": ["legal"]},
    ],
}


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in prop.get("anyOf", []) if o != {"type": "null"}]
    if len(options) != 1:
        return prop
    cleaned = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**options[0], **cleaned}

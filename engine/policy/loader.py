"""Policy files (YAML that finance edits) → `engine.policy.model.PolicySet`.

Everything a finance user can get wrong in a policy file becomes a `Problem` pointing at the offending
token (`rules/10-standard.yaml:14:18: unknown channel 'emial' in stage 'reminder'; did you mean 'email'?`),
and *all* problems are reported at once, so one round of edits fixes them. Nothing here lets a traceback
reach the user for bad input.

Shape of one policy file (see `policy_json_schema()` for the per-key documentation):

    name: standard
    applies_to: "customer.credit_grade in ['A', 'B']"   # omit in exactly one policy: the default
    days: calendar                  # or business
    calendar: {country: DE}
    min_days_between_stages: 5
    catch_up: step                  # or jump
    stages:
      - {name: reminder, after_days: 3, channels: [email], repeat: {every_days: 7, max: 2}}
      - {name: legal, after_days: 90, when: "invoice.open_amount >= 10000", channels: [legal]}
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import ExpressionError, PolicyError, Problem
from engine.policy.calendar import is_known_country, known_countries
from engine.policy.expressions import FIELDS, compile_expression
from engine.policy.model import (
    RESERVED_STATE_NAMES,
    CatchUp,
    DayCount,
    Expression,
    Policy,
    PolicySet,
    PolicySource,
    Repeat,
    Stage,
)
from engine.yamlsource import (
    Expect,
    Located,
    YamlPath,
    did_you_mean,
    load_located_file,
    show_value,
    validation_problems,
)

__all__ = ["check_policies", "is_known_country", "load_policies", "policy_json_schema"]

#: File name patterns read from a rules folder (directly inside it; subfolders such as templates/ are not).
POLICY_SUFFIXES = (".yaml", ".yml")
STAGE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
#: Both expression kinds may look at the invoice and at its customer.
EXPRESSION_ROOTS = ("invoice", "customer")

# --------------------------------------------------------------------------- the file schema

_STRICT = ConfigDict(extra="forbid", strict=True)


class RepeatSpec(BaseModel):
    """Send the stage's notifications again while the invoice stays in the stage."""

    model_config = ConfigDict(**_STRICT, title="Repeat")

    every_days: Annotated[int, Expect("a whole number of days")] = Field(
        ge=1,
        description="Days between one sending and the next while the invoice stays in this stage.",
        examples=[7],
    )
    max: Annotated[int, Expect("a whole number")] = Field(
        ge=1,
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

    name: Annotated[str, Expect("a single word of letters, digits and underscores, starting with a letter")] = Field(
        pattern=STAGE_NAME_PATTERN,
        description=(
            "Unique name of the stage within the policy; shown in reports and picks the notification template. "
            f"Reserved: {', '.join(sorted(RESERVED_STATE_NAMES))}."
        ),
        examples=["reminder", "final_notice"],
    )
    after_days: Annotated[int, Expect("a whole number of days")] = Field(
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

    name: Annotated[str, Expect("a name")] = Field(
        min_length=1,
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
    min_days_between_stages: Annotated[int, Expect("a whole number of days")] = Field(
        default=0,
        ge=0,
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
    grace_days: Annotated[int, Expect("a whole number of days")] = Field(
        default=3,
        ge=0,
        description=(
            "Days after a promise-to-pay date (or a plan installment's date) before an unpaid promise counts "
            "as broken and escalation resumes at once."
        ),
        examples=[3],
    )
    stages: Annotated[list[StageSpec], Expect("a list of stages")] = Field(
        min_length=1,
        description="The escalation ladder, in order: after_days must not decrease from one stage to the next.",
    )


# --------------------------------------------------------------------------- public API


def load_policies(
    path: str | Path, *, known_channels: Collection[str], default_country: str | None = None
) -> PolicySet:
    """Load every policy under `path` (a file or a folder of *.yaml / *.yml) into a PolicySet.

    Evaluation order is file-name order with the default policy (the one without applies_to) last.
    `default_country` is used by policies that don't name `calendar.country`.
    Raises PolicyError listing every problem (errors and warnings) if any error was found;
    warnings alone don't stop loading (get them from `check_policies`).
    """
    result = _analyse(Path(path), known_channels, default_country)
    if any(p.severity == "error" for p in result.problems):
        raise PolicyError(result.problems)
    ordered = [p for p in result.policies if not p.is_default] + [p for p in result.policies if p.is_default]
    return PolicySet(tuple(ordered))


def check_policies(path: str | Path, *, known_channels: Collection[str]) -> list[Problem]:
    """Every error and warning in the policies under `path`, sorted by file, line and column."""
    return sorted(_analyse(Path(path), known_channels, None).problems)


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


# --------------------------------------------------------------------------- analysis


@dataclass
class _FileResult:
    located: Located
    policy: Policy | None = None


@dataclass
class _Analysis:
    policies: list[Policy] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _analyse(path: Path, known_channels: Collection[str], default_country: str | None) -> _Analysis:
    analysis = _Analysis()
    files, problem = _policy_files(path)
    if problem is not None:
        analysis.problems.append(problem)
        return analysis
    channels = frozenset(known_channels)  # callers pass dict keys, sets, lists...
    results = [_load_file(file, channels, default_country) for file in files]
    for result in results:
        analysis.problems.extend(result.located.problems)
    analysis.problems.extend(_cross_file_problems([r.located for r in results]))
    analysis.policies = [r.policy for r in results if r.policy is not None]
    return analysis


def _policy_files(path: Path) -> tuple[list[Path], Problem | None]:
    if path.is_dir():
        try:
            files = sorted(
                (p for p in path.iterdir() if _is_policy_file(p)),
                key=lambda p: p.name,
            )
        except OSError as exc:
            return [], Problem(str(path), 1, 1, f"cannot read the folder: {exc.strerror or exc}")
        if not files:
            return [], Problem(
                str(path), 1, 1, "no policy files (*.yaml or *.yml) in this folder; add at least a default policy"
            )
        return files, None
    if path.is_file():
        return [path], None
    return [], Problem(str(path), 1, 1, "no such policy file or folder; check the rules path")


def _load_file(file: Path, known_channels: Collection[str], default_country: str | None) -> _FileResult:
    located = load_located_file(file)
    result = _FileResult(located)
    if not located.parsed:
        return result
    data = located.data
    if data is None:
        located.problems.append(
            Problem(located.file, 1, 1, "the file is empty; a policy needs at least 'name' and 'stages'")
        )
        return result
    if not isinstance(data, dict):
        located.problems.append(
            located.problem(
                (), f"a policy file must be a mapping of keys such as name: and stages:, got {show_value(data)}"
            )
        )
        return result

    spec: PolicySpec | None = None
    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        located.problems.extend(validation_problems(exc, located, model=PolicySpec, item_label=_stage_label))
    # The semantic checks run on the raw data even when the schema failed, so one pass reports
    # everything; each check only looks at values of the right type (the schema reports the rest).
    expressions = _semantic_problems(located, known_channels)

    if spec is not None and not any(p.severity == "error" for p in located.problems):
        result.policy = _build(spec, expressions, located, default_country)
    return result


def _stage_label(path: YamlPath, item: Any) -> str | None:
    if len(path) == 2 and path[0] == "stages" and isinstance(path[1], int):
        name = item.get("name") if isinstance(item, Mapping) else None
        return f"stage '{name}'" if isinstance(name, str) and name else f"stage {path[1] + 1}"
    return None


def _semantic_problems(located: Located, known_channels: Collection[str]) -> dict[YamlPath, Expression]:
    """Checks a schema can't express; appends to located.problems; returns the compiled expressions."""
    data: dict[Any, Any] = located.data
    problems = located.problems
    expressions: dict[YamlPath, Expression] = {}

    def compile_at(path: YamlPath, what: str) -> None:
        source = _get(data, path)
        if source is None and _has(data, path):
            # `applies_to:` with nothing after it is YAML null; silently turning the policy into
            # the default would be the worst reading of a half-finished edit.
            effect = " to make this the default policy" if path == ("applies_to",) else ""
            problems.append(located.problem(path, f"{what} is empty; write a condition or remove the key{effect}"))
            return
        if not isinstance(source, str):
            return  # missing (fine) or a wrong type (reported by the schema)
        try:
            expressions[path] = compile_expression(source, roots=EXPRESSION_ROOTS)
        except ExpressionError as exc:
            problems.append(located.problem(path, f"invalid expression in {what}: {exc.message}", offset=exc.offset))
        except Exception as exc:  # a checker bug must not become a traceback for finance
            problems.append(located.problem(path, f"could not check the expression in {what} ({exc})"))

    compile_at(("applies_to",), "applies_to")

    calendar = data.get("calendar")
    country = calendar.get("country") if isinstance(calendar, dict) else None
    if isinstance(country, str) and not is_known_country(country):
        hint = did_you_mean(country, known_countries()) or did_you_mean(country.upper(), known_countries())
        problems.append(
            located.problem(
                ("calendar", "country"),
                f"unknown country '{country}' in calendar.country{hint}; use an ISO 3166 code such as DE, FR, GB or US",
            )
        )

    stages = data.get("stages")
    if not isinstance(stages, list):
        return expressions
    known = sorted(known_channels)
    first_by_name: dict[str, int] = {}
    previous: tuple[str, int] | None = None  # (label, after_days) of the last stage with valid after_days
    timeline: list[tuple[int, dict[Any, Any]]] = []  # stages with valid after_days, for the repeat warning
    for index, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        at: YamlPath = ("stages", index)
        label = _stage_label(at, stage) or f"stage {index + 1}"
        name = stage.get("name")
        if isinstance(name, str) and re.match(STAGE_NAME_PATTERN, name):
            if name in RESERVED_STATE_NAMES:
                problems.append(
                    located.problem(
                        (*at, "name"),
                        f"stage name '{name}' is reserved (used for {', '.join(sorted(RESERVED_STATE_NAMES))}); "
                        "choose another name",
                    )
                )
            elif name in first_by_name:
                first_line = located.value_mark(("stages", first_by_name[name], "name")).line
                problems.append(
                    located.problem((*at, "name"), f"duplicate stage name '{name}' (first used at line {first_line})")
                )
            else:
                first_by_name[name] = index

        after = stage.get("after_days")
        if _is_int(after):
            if previous is not None and after < previous[1]:
                problems.append(
                    located.problem(
                        (*at, "after_days"),
                        f"stages out of order: {label} (after_days {after}) comes after "
                        f"{previous[0]} (after_days {previous[1]}); after_days must not decrease "
                        "from one stage to the next",
                    )
                )
            previous = (label, after)
            timeline.append((index, stage))

        channels = stage.get("channels")
        if isinstance(channels, list):
            seen: set[str] = set()
            for position, channel in enumerate(channels):
                if not isinstance(channel, str):
                    continue
                where = (*at, "channels", position)
                if channel in seen:
                    problems.append(located.problem(where, f"channel '{channel}' is listed twice in {label}"))
                elif channel not in known_channels:
                    hint = did_you_mean(channel, known) or f"; known channels: {', '.join(known)}"
                    problems.append(located.problem(where, f"unknown channel '{channel}' in {label}{hint}"))
                seen.add(channel)

        fallback = stage.get("fallback")
        if isinstance(fallback, dict):
            listed = channels if isinstance(channels, list) else []
            for source, target in fallback.items():
                where = (*at, "fallback", source)
                if isinstance(source, str) and source not in listed:
                    problems.append(
                        located.problem(
                            where,
                            f"fallback for '{source}' in {label}, but the stage does not send on '{source}'; "
                            f"use one of its channels: {', '.join(str(c) for c in listed)}",
                        )
                    )
                if isinstance(target, str):
                    if target not in known_channels:
                        hint = did_you_mean(target, known) or f"; known channels: {', '.join(known)}"
                        problems.append(located.problem(where, f"unknown fallback channel '{target}' in {label}{hint}"))
                    elif target == source:
                        problems.append(located.problem(where, f"channel '{source}' cannot be its own fallback"))

        compile_at((*at, "when"), f"when of {label}")

    problems.extend(_repeat_warnings(located, timeline))
    problems.extend(_stage_warnings(located, timeline, expressions, data.get("catch_up")))
    return expressions


#: Fields that put an amount floor under a stage.
AMOUNT_FIELDS = frozenset({"invoice.amount", "invoice.open_amount", "customer.total_open", "customer.total_overdue"})
#: How far past a stage's after_days a days_overdue-only condition is tried before calling it never true.
_DAYS_PROBED = 3660


def _stage_warnings(
    located: Located,
    timeline: list[tuple[int, dict[Any, Any]]],
    expressions: Mapping[YamlPath, Expression],
    catch_up: Any,
) -> list[Problem]:
    """Legal but suspicious stages: ones no invoice can ever enter, and legal steps without an amount floor."""
    warnings: list[Problem] = []
    for position, (index, stage) in enumerate(timeline):
        label = _stage_label(("stages", index), stage)
        after = stage["after_days"]
        when = expressions.get(("stages", index, "when"))
        if when is not None and _never_true(when, after):
            warnings.append(
                located.problem(
                    ("stages", index, "when"),
                    f'{label} can never be entered: its when "{when.source}" is false on every day from '
                    f"after_days {after} on (a stage is only checked once it is due); fix the condition or after_days",
                    severity="warning",
                )
            )
        if catch_up == "jump":
            # Under jump the highest due stage wins; an unconditional later stage due on the same day
            # always outranks this one.
            winner = next(
                (s for _, s in timeline[position + 1 :] if s["after_days"] == after and "when" not in s), None
            )
            if winner is not None:
                warnings.append(
                    located.problem(
                        ("stages", index, "after_days"),
                        f"{label} can never be entered: with catch_up: jump, {_stage_label(('stages', 0), winner)} "
                        f"is due on the same day (after_days {after}) with no when, so it always wins; give this "
                        "stage a smaller after_days or use catch_up: step",
                        severity="warning",
                    )
                )
        channels = stage.get("channels")
        name = stage.get("name")
        legal = (isinstance(name, str) and "legal" in name.lower()) or (
            isinstance(channels, list) and "legal" in channels
        )
        broken = "when" in stage and when is None  # an invalid condition is reported as an error already
        if legal and not broken and not (when is not None and when.fields & AMOUNT_FIELDS):
            warnings.append(
                located.problem(
                    ("stages", index, "when") if "when" in stage else ("stages", index, "name"),
                    f"{label} is a legal step with no amount floor: every overdue invoice reaches it, however small; "
                    'add a condition such as when: "invoice.open_amount >= 5000"',
                    severity="warning",
                )
            )
    return warnings


def _never_true(when: Expression, after_days: int) -> bool:
    """Whether a condition that depends on nothing but the days overdue (or on nothing at all) is false on
    every day the stage can be checked. Conditions on other fields are never judged: their values vary."""
    if when.fields - {"invoice.days_overdue"}:
        return False
    days = range(after_days, 0) if after_days < 0 else range(after_days, after_days + _DAYS_PROBED)
    try:
        return not any(when.evaluate({"invoice.days_overdue": day}) for day in days)
    except Exception:  # a diagnostic must never break loading
        return False


def _repeat_warnings(located: Located, timeline: list[tuple[int, dict[Any, Any]]]) -> list[Problem]:
    """Warn about repeats that can never all be sent because a later stage always takes over first."""
    warnings: list[Problem] = []
    for position, (index, stage) in enumerate(timeline):
        repeat = stage.get("repeat")
        if not isinstance(repeat, dict):
            continue
        every, most = repeat.get("every_days"), repeat.get("max")
        if not (_is_int(every) and _is_int(most) and every >= 1 and most >= 1):
            continue
        # A later stage with `when` is skipped for some invoices, which then stay here and keep
        # repeating; only a stage without `when` is sure to take over.
        takeover = next((s for _, s in timeline[position + 1 :] if "when" not in s), None)
        if takeover is None:
            continue
        start, stop = stage["after_days"], takeover["after_days"]
        if every * most >= stop - start:
            label = _stage_label(("stages", index), stage)
            last = start + every * most
            warnings.append(
                located.problem(
                    ("stages", index, "repeat"),
                    f"repeat of {label} (every {every} days, up to {most} times) would run until day {last}, "
                    f"but {_stage_label(('stages', 0), takeover)} takes over on day {stop}; "
                    f"repeats on or after day {stop} are never sent (lower every_days or max)",
                    severity="warning",
                )
            )
    return warnings


def _cross_file_problems(files: list[Located]) -> list[Problem]:
    problems: list[Problem] = []
    names: dict[str, Located] = {}
    defaults: list[Located] = []
    all_mappings = True
    for located in files:
        data = located.data
        if not located.parsed or not isinstance(data, dict):
            all_mappings = False
            continue
        name = data.get("name")
        if isinstance(name, str) and name:
            if name in names:
                first = names[name]
                problems.append(
                    located.problem(
                        ("name",),
                        f"duplicate policy name '{name}': already used in {first.file} "
                        f"(line {first.value_mark(('name',)).line}); policy names must be unique",
                    )
                )
            else:
                names[name] = located
        if "applies_to" not in data:
            defaults.append(located)
    if defaults:
        first = defaults[0]
        first_name = first.data.get("name")
        for extra in defaults[1:]:
            problems.append(
                extra.problem(
                    (),
                    f"a second default policy: this policy has no applies_to, and neither has "
                    f"{_quoted_name(first_name)}in {first.file}; only one policy may leave out applies_to",
                )
            )
    elif all_mappings and files:
        # Only when every file could be read: an unreadable file might well be the default.
        problems.append(
            Problem(
                files[0].file,
                1,
                1,
                "no default policy: add a policy without applies_to; it governs every customer "
                "no other policy applies to",
            )
        )
    return problems


def _quoted_name(name: Any) -> str:
    return f"'{name}' " if isinstance(name, str) and name else ""


# --------------------------------------------------------------------------- building


def _build(
    spec: PolicySpec, expressions: Mapping[YamlPath, Expression], located: Located, default_country: str | None
) -> Policy:
    stages = tuple(
        Stage(
            name=stage.name,
            after_days=stage.after_days,
            channels=tuple(stage.channels),
            when=expressions.get(("stages", index, "when")),
            repeat=Repeat(stage.repeat.every_days, stage.repeat.max) if stage.repeat else None,
            template=stage.template,
            description=stage.description,
            approval_required=stage.approval == "required",
            fallback=tuple((stage.fallback or {}).items()),
        )
        for index, stage in enumerate(spec.stages)
    )
    raw = located.raw if located.raw is not None else located.text.encode("utf-8")
    country = spec.calendar.country if spec.calendar and spec.calendar.country else default_country
    return Policy(
        name=spec.name,
        stages=stages,
        applies_to=expressions.get(("applies_to",)),
        days=DayCount(spec.days),
        country=country,
        min_days_between_stages=spec.min_days_between_stages,
        catch_up=CatchUp(spec.catch_up),
        grace_days=spec.grace_days,
        group_by=spec.group_by,
        description=spec.description,
        source=PolicySource(path=located.file, text=located.text, sha256=hashlib.sha256(raw).hexdigest()),
    )


# --------------------------------------------------------------------------- helpers


def _is_policy_file(path: Path) -> bool:
    # Dot files are editor backups and lock files, never policies.
    return path.suffix in POLICY_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _has(data: Any, path: YamlPath) -> bool:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


def _get(data: Any, path: YamlPath) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in prop.get("anyOf", []) if o != {"type": "null"}]
    if len(options) != 1:
        return prop
    cleaned = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**options[0], **cleaned}

"""What a policy schema cannot say: the semantic checks of one file and across the files of a rules folder.

Every finding is a located `Problem` appended to the file's list — an error (unknown channel, a stage
name used twice, an expression that does not compile, an unknown country, `after_days` going down) or a
warning (a condition false on every day a stage is due, a stage catch_up: jump always passes over,
repeats a later stage always cuts short). The checks look only at values of the right type, so they run
even when the schema failed and one pass reports everything.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, TypeGuard

from engine.errors import ExpressionError, Problem
from engine.policy.calendar import is_known_country, known_countries
from engine.policy.expressions import compile_expression
from engine.policy.model import (
    RESERVED_STATE_NAMES,
    Expression,
)
from engine.policy.spec import STAGE_NAME_PATTERN
from engine.yamlsource import (
    Located,
    YamlPath,
    did_you_mean,
)

#: Both expression kinds may look at the invoice and at its customer.
EXPRESSION_ROOTS = ("invoice", "customer")


def stage_label(path: YamlPath, item: Any) -> str | None:
    if len(path) == 2 and path[0] == "stages" and isinstance(path[1], int):
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name:
            return f"stage '{name}'" if len(name) <= 40 else f"stage '{name[:39]}…'"
        return f"stage {path[1] + 1}"
    return None


def semantic_problems(located: Located, known_channels: Collection[str]) -> dict[YamlPath, Expression]:
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
            mark = located.value_mark(path)
            origin = f"{located.file}:{mark.line}:{mark.column}"
            expressions[path] = compile_expression(source, roots=EXPRESSION_ROOTS, origin=origin)
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
        label = stage_label(at, stage) or f"stage {index + 1}"
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
        label = stage_label(("stages", index), stage)
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
                        f"{label} can never be entered: with catch_up: jump, {stage_label(('stages', 0), winner)} "
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
            label = stage_label(("stages", index), stage)
            last = start + every * most
            warnings.append(
                located.problem(
                    ("stages", index, "repeat"),
                    f"repeat of {label} (every {every} days, up to {most} times) would run until day {last}, "
                    f"but {stage_label(('stages', 0), takeover)} takes over on day {stop}; "
                    f"repeats on or after day {stop} are never sent (lower every_days or max)",
                    severity="warning",
                )
            )
    return warnings


def cross_file_problems(files: list[Located]) -> list[Problem]:
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

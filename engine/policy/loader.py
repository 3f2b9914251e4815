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

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from engine.charges.spec import build_terms, charges_problems
from engine.errors import PolicyError, Problem
from engine.policy.calendar import is_known_country
from engine.policy.checks import cross_file_problems, semantic_problems, stage_label
from engine.policy.model import (
    CatchUp,
    DayCount,
    Expression,
    Policy,
    PolicySet,
    PolicySource,
    Repeat,
    Stage,
)
from engine.policy.spec import CANONICAL_EXAMPLE, PolicySpec, policy_json_schema
from engine.yamlsource import (
    Located,
    YamlPath,
    load_located_file,
    show_value,
    validation_problems,
)

__all__ = ["CANONICAL_EXAMPLE", "check_policies", "is_known_country", "load_policies", "policy_json_schema"]

#: File name patterns read from a rules folder (directly inside it; subfolders such as templates/ are not).
POLICY_SUFFIXES = (".yaml", ".yml")
#: Rule files of the credit desk (engine.credit.rules.RULE_FILES), recognised by name: never dunning policies.
CREDIT_RULE_FILES = frozenset(
    {
        "credit.yaml",
        "warnings.yaml",
        "incentives.yaml",
        "reasons.yaml",
        "credit.yml",
        "warnings.yml",
        "incentives.yml",
        "reasons.yml",
    }
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
    """Every error and warning in the policies under `path`, sorted by file, line and column.

    The credit rule files beside them (CREDIT_RULE_FILES) are not policies; `dunning policy check` checks them
    with engine.credit.rules.check_rule_files."""
    if Path(path).is_file() and Path(path).name in CREDIT_RULE_FILES:
        return []
    return sorted(_analyse(Path(path), known_channels, None).problems)


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
    analysis.problems.extend(cross_file_problems([r.located for r in results]))
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
        located.problems.extend(validation_problems(exc, located, model=PolicySpec, item_label=stage_label))
    # The semantic checks run on the raw data even when the schema failed, so one pass reports
    # everything; each check only looks at values of the right type (the schema reports the rest).
    expressions = semantic_problems(located, known_channels)
    stage_names = [st.get("name") for st in data.get("stages") or [] if isinstance(st, dict)]
    located.problems.extend(charges_problems(located, [n for n in stage_names if isinstance(n, str)]))

    if spec is not None and not any(p.severity == "error" for p in located.problems):
        result.policy = _build(spec, expressions, located, default_country)
    return result


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
            titles=_titles(stage.title),
            approval_required=stage.approval == "required",
            fallback=tuple((stage.fallback or {}).items()),
            attach=tuple(stage.attach) if stage.attach is not None else None,
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
        charges=build_terms(spec.charges, located.file),
        source=PolicySource(path=located.file, text=located.text, sha256=hashlib.sha256(raw).hexdigest()),
    )


def _is_policy_file(path: Path) -> bool:
    # Dot files are editor backups and lock files, never policies; credit.yaml & co. have their own schema.
    return (
        path.suffix in POLICY_SUFFIXES
        and not path.name.startswith(".")
        and path.name not in CREDIT_RULE_FILES
        and path.is_file()
    )


def _titles(title: str | dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    """`title:` as (language tag, title) pairs, tags written with `_` (zh-CN -> zh_CN); "" for a plain title."""
    if title is None:
        return ()
    if isinstance(title, str):
        return (("", title),)
    return tuple((tag.replace("-", "_"), text) for tag, text in title.items())

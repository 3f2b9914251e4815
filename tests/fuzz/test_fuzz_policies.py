"""Fuzzed policy files: whatever the text, `policy check` and loading never raise anything but PolicyError,
and every problem is located `FILE:LINE:COLUMN` inside the file it is about."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import PolicyError, Problem
from engine.policy.loader import CREDIT_RULE_FILES, check_policies, load_policies
from tests.fuzz.conftest import examples
from tests.fuzz.hostile import NASTY, nasty_text

RULES = Path(__file__).resolve().parents[2] / "rules"
#: The shipped dunning policies (credit.yaml and the other credit rule files have their own schema and fuzzing
#: them alone in a folder tests only "no policy files here").
SHIPPED = {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted(RULES.glob("*.yaml"))
    if path.name not in CREDIT_RULE_FILES
}
CHANNELS = {"email", "phone", "letter", "visit", "legal", "log", "memory", "webhook", "sms"}
LOCATED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): ")

#: Values a finance editor (or an attacker) may put where a policy expects something else.
VALUES = [
    "0",
    "-1",
    "1",
    "999999999999999999999",
    "36501",
    "-36501",
    "10000000000",
    "s" * 65,
    "1e999",
    "-1e999",
    ".nan",
    ".inf",
    "1" * 4400,
    "''",
    "null",
    "~",
    "[]",
    "{}",
    "[[[[[[[[[[]]]]]]]]]]",
    "true",
    "yes",
    "no",
    "0x1F",
    "0o17",
    "1_000",
    "2026-01-01",
    "'invoice.open_amount >'",
    "'invoice.amount * 1e999999999 > 1'",
    "'customer.tags in invoice.tags'",
    "!!python/object/apply:os.system ['id']",
    "!!binary aGVsbG8=",
    "&a [*a]",
    "*undefined",
    '"\\ud800"',
    "'{{ 7*7 }}'",
    '"a\\nb"',
    "business",
    "calendar",
    "step",
    "jump",
    "required",
    "[email, email]",
]


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fuzz-policies-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def check_text(folder: Path, text: str | bytes, name: str = "fuzzed.yaml") -> None:
    """Write one policy file (alone in its folder) and hold both entry points to the contract."""
    for old in folder.iterdir():
        old.unlink()
    target = folder / name
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8", errors="surrogatepass")
    problems = check_policies(folder, known_channels=CHANNELS)
    assert all(isinstance(p, Problem) for p in problems)
    for problem in problems:
        located = LOCATED.match(str(problem))
        assert located, f"not located FILE:LINE:COLUMN: {problem}"
        assert Path(problem.file).name == name, problem
        # YAML breaks lines at \r and \u2028 too: splitlines() counts at least as many
        lines = max(
            1, len(text.decode("utf-8", "replace").splitlines() if isinstance(text, bytes) else text.splitlines()) + 1
        )
        assert 1 <= problem.line <= lines + 1 and problem.column >= 1, problem
        assert problem.message.strip(), problem
    try:
        load_policies(folder, known_channels=CHANNELS)
    except PolicyError as error:
        assert error.problems and all(LOCATED.match(str(p)) for p in error.problems)
    else:
        assert not [p for p in problems if p.severity == "error"], "loaded although check found errors"


yaml_scalars = st.one_of(st.sampled_from(VALUES), nasty_text.map(repr))
yaml_lines = st.one_of(
    st.sampled_from(
        [
            "name: x",
            "stages:",
            "  - name: a",
            "    after_days: 1",
            "    channels: [email]",
            "applies_to: \"customer.credit_grade == 'A'\"",
            "days: business",
            "calendar: {country: DE}",
            "min_days_between_stages: 5",
            "    repeat: {every_days: 7, max: 2}",
            '    when: "true"',
            "catch_up: jump",
            "group_by: customer",
            "    approval: required",
            "---",
            "- x",
            "\t- y",
        ]
    ),
    st.tuples(
        st.sampled_from(
            [
                "name",
                "stages",
                "after_days",
                "channels",
                "when",
                "applies_to",
                "days",
                "repeat",
                "every_days",
                "max",
                "calendar",
                "country",
                "unknown_key",
                "  - name",
                "    after_days",
                "    channels",
                "    when",
                "    repeat",
            ]
        ),
        yaml_scalars,
    ).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    nasty_text,
)


@settings(max_examples=examples(150))
@given(st.lists(yaml_lines, max_size=12).map("\n".join))
def test_random_yaml_is_a_located_problem_never_a_traceback(folder: Path, text: str) -> None:
    check_text(folder, text)


@settings(max_examples=examples(40))
@given(st.binary(max_size=200))
def test_random_bytes_are_a_located_problem(folder: Path, data: bytes) -> None:
    check_text(folder, data)


@st.composite
def mutated_policy(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(SHIPPED)))
    lines = SHIPPED[name].split("\n")
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, max(0, len(lines) - 1)))
        line = lines[index]
        how = draw(st.sampled_from(["value", "delete", "duplicate", "indent", "dedent", "truncate", "insert"]))
        if how == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[index] = f"{key}: {draw(yaml_scalars)}"
        elif how == "delete":
            del lines[index]
        elif how == "duplicate":
            lines.insert(index, line)
        elif how == "indent":
            lines[index] = "  " + line
        elif how == "dedent":
            lines[index] = line.lstrip()
        elif how == "truncate":
            lines[index] = line[: draw(st.integers(0, len(line)))]
        else:
            lines.insert(index, draw(st.sampled_from(NASTY)))
        if not lines:
            lines = [""]
    return name, "\n".join(lines)


@settings(max_examples=examples(150))
@given(mutated_policy())
def test_mutated_shipped_policies_are_located_problems(folder: Path, case: tuple[str, str]) -> None:
    name, text = case
    check_text(folder, text, name)


def test_the_shipped_policies_load() -> None:
    # The mutations start from these: they must be valid as shipped, or every mutation tests nothing new.
    assert [p for p in check_policies(RULES, known_channels=CHANNELS) if p.severity == "error"] == []

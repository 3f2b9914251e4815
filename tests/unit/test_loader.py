"""Policy loading: every bad input becomes `FILE:LINE:COLUMN: message`, the contract the CLI prints."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import PolicyError, Problem
from engine.policy.loader import CANONICAL_EXAMPLE, CREDIT_RULE_FILES, check_policies, load_policies, policy_json_schema
from engine.policy.model import CatchUp, DayCount, Repeat
from engine.yamlsource import Mark, load_located, validation_problems

CHANNELS = {"email", "phone", "letter", "visit", "legal", "log", "memory"}
RULES = Path(__file__).resolve().parents[2] / "rules"

CANONICAL = """\
name: standard
applies_to: "customer.credit_grade in ['A', 'B']"   # omit in exactly one policy: the default
days: calendar                  # or: business (weekends and holidays of `calendar.country` don't count)
calendar: {country: DE}         # optional; ISO country code known to the `holidays` package
min_days_between_stages: 5
catch_up: step                  # step | jump
description: optional text
stages:
  - name: courtesy              # a pre-due reminder
    after_days: -3
    channels: [email]
  - name: reminder
    after_days: 3
    channels: [email]
    repeat: {every_days: 7, max: 2}
  - name: phone
    after_days: 15
    channels: [phone]
  - name: letter
    after_days: 30
    channels: [letter, email]
  - name: visit
    after_days: 60
    when: "invoice.open_amount >= 50000"
    channels: [visit]
  - name: legal
    after_days: 90
    when: "invoice.open_amount >= 10000"
    channels: [legal]
"""

DEFAULT = """\
name: default
stages:
  - name: reminder
    after_days: 7
    channels: [email]
"""


def guarded(name: str, applies_to: str) -> str:
    """DEFAULT renamed and given an applies_to, so it is no longer a default policy."""
    return DEFAULT.replace("name: default", f'name: {name}\napplies_to: "{applies_to}"')


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def check(tmp_path: Path, text: str, name: str = "p.yaml") -> tuple[str, list[Problem]]:
    """Check one policy file on its own (so it should be a default policy: no applies_to)."""
    path = write(tmp_path, name, text)
    return str(path), check_policies(path, known_channels=CHANNELS)


def find(problems: list[Problem], where: str, phrase: str, severity: str = "error") -> Problem:
    """The problem printed as `where: ...` whose message contains `phrase`; fails listing them all."""
    for problem in problems:
        if str(problem).startswith(where + ": ") and phrase in problem.message and problem.severity == severity:
            return problem
    listing = "\n".join(str(p) for p in problems) or "(no problems)"
    raise AssertionError(f"no {severity} at {where} containing {phrase!r} in:\n{listing}")


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# ------------------------------------------------------------------------------------------ valid input


def test_canonical_example_loads_into_policy_values(tmp_path: Path) -> None:
    path = write(tmp_path, "10-standard.yaml", CANONICAL)
    write(tmp_path, "90-default.yaml", DEFAULT)
    policies = load_policies(tmp_path, known_channels=CHANNELS)
    policy = policies.by_name("standard")
    assert policy is not None
    assert policy.days is DayCount.CALENDAR
    assert policy.catch_up is CatchUp.STEP
    assert policy.country == "DE"
    assert policy.min_days_between_stages == 5
    assert policy.description == "optional text"
    assert policy.applies_to is not None
    assert policy.applies_to.source == "customer.credit_grade in ['A', 'B']"
    assert policy.applies_to.evaluate({"customer.credit_grade": "B"}) is True
    assert policy.applies_to.evaluate({"customer.credit_grade": "C"}) is False
    assert [s.name for s in policy.stages] == ["courtesy", "reminder", "phone", "letter", "visit", "legal"]
    assert [s.after_days for s in policy.stages] == [-3, 3, 15, 30, 60, 90]
    assert policy.stages[0].pre_due
    reminder = policy.stage("reminder")
    assert reminder.repeat == Repeat(every_days=7, max=2)
    assert reminder.when is None
    assert policy.stage("letter").channels == ("letter", "email")
    assert isinstance(policy.stage("letter").channels, tuple)
    visit = policy.stage("visit")
    assert visit.when is not None and visit.when.source == "invoice.open_amount >= 50000"
    assert visit.template is None
    assert policy.source is not None
    assert policy.source.path == str(path)
    assert policy.source.text == path.read_text(encoding="utf-8")
    assert policy.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.hash == policy.source.sha256


def test_canonical_example_only_warns_about_its_unreachable_repeat(tmp_path: Path) -> None:
    write(tmp_path, "10-standard.yaml", CANONICAL)
    write(tmp_path, "90-default.yaml", DEFAULT)
    problems = check_policies(tmp_path, known_channels=CHANNELS)
    assert errors(problems) == []
    # reminder at day 3 repeating every 7 days twice reaches day 17; phone takes over on day 15.
    find(problems, f"{tmp_path / '10-standard.yaml'}:15:13", "never sent", severity="warning")


def test_defaults_and_default_country(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", DEFAULT)
    policy = load_policies(tmp_path / "p.yaml", known_channels=CHANNELS, default_country="FR").default
    assert policy.days is DayCount.CALENDAR
    assert policy.catch_up is CatchUp.STEP
    assert policy.min_days_between_stages == 0
    assert policy.country == "FR"
    assert policy.is_default


def test_business_days_jump_template_and_own_country_win(tmp_path: Path) -> None:
    write(
        tmp_path,
        "p.yaml",
        """\
        name: default
        days: business
        catch_up: jump
        calendar:
          country: AT
        stages:
          - name: reminder
            after_days: 7
            channels: [email]
            template: friendly
            description: first nudge
        """,
    )
    policy = load_policies(tmp_path / "p.yaml", known_channels=CHANNELS, default_country="FR").default
    assert policy.days is DayCount.BUSINESS
    assert policy.catch_up is CatchUp.JUMP
    assert policy.country == "AT"
    assert policy.stages[0].template == "friendly"
    assert policy.stages[0].description == "first nudge"


def test_directory_order_is_file_name_order_with_default_last(tmp_path: Path) -> None:
    write(tmp_path, "05-default.yaml", DEFAULT)
    write(tmp_path, "30-c.yml", DEFAULT.replace("name: default", "name: c\napplies_to: \"customer.segment == 'c'\""))
    write(tmp_path, "10-b.yaml", DEFAULT.replace("name: default", "name: b\napplies_to: \"customer.segment == 'b'\""))
    # Neither subfolders (rules/templates/) nor other files are policies.
    (tmp_path / "templates").mkdir()
    write(tmp_path / "templates", "x.yaml", "not: a policy\n")
    write(tmp_path, "README.txt", "notes")
    policies = load_policies(tmp_path, known_channels=CHANNELS)
    assert [p.name for p in policies.policies] == ["b", "c", "default"]
    assert policies.default.name == "default"
    assert policies.governing({"customer.segment": "c"}).name == "c"
    assert policies.governing({"customer.segment": "z"}).name == "default"


def test_shipped_rules_load_without_any_problem() -> None:
    assert check_policies(RULES, known_channels=CHANNELS) == []
    policies = load_policies(RULES, known_channels=CHANNELS)
    assert [p.name for p in policies.policies] == ["standard", "strict", "default"]
    assert policies.governing({"customer.credit_grade": "A"}).name == "standard"
    assert policies.governing({"customer.credit_grade": "D"}).name == "strict"
    assert policies.governing({"customer.credit_grade": None}).name == "default"
    assert policies.channels <= {"email", "phone", "letter", "visit", "legal"}
    strict = policies.by_name("strict")
    assert strict is not None and strict.min_days_between_stages == 3
    assert any(stage.repeat for stage in strict.stages)


def test_applies_to_may_use_invoice_and_customer_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "10-big.yaml",
        DEFAULT.replace(
            "name: default", "name: big\napplies_to: \"invoice.open_amount > 1000 and customer.segment == 'x'\""
        ),
    )
    write(tmp_path, "90-default.yaml", DEFAULT)
    assert check_policies(tmp_path, known_channels=CHANNELS) == []


# ------------------------------------------------------------------------------------------ file-level errors


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    file, problems = check(tmp_path, "name: x\nstages: [a, b\n")
    find(problems, f"{file}:3:1", "YAML syntax error")


def test_yaml_mapping_value_error_is_located(tmp_path: Path) -> None:
    file, problems = check(tmp_path, "name: x\nstages:\n  - name: a: b\n")
    find(problems, f"{file}:3:12", "mapping values are not allowed")


def test_tab_indentation_gets_a_hint(tmp_path: Path) -> None:
    file, problems = check(tmp_path, "name: x\nstages:\n\t- name: a\n")
    find(problems, f"{file}:3:1", "spaces, not tabs")


def test_python_tags_are_refused(tmp_path: Path) -> None:
    file, problems = check(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\nstages: []\n")
    find(problems, f"{file}:1:7", "not allowed")


def test_file_must_be_a_mapping(tmp_path: Path) -> None:
    file, problems = check(tmp_path, "- name: x\n- name: y\n")
    find(problems, f"{file}:1:1", "must be a mapping")


def test_empty_file(tmp_path: Path) -> None:
    file, problems = check(tmp_path, "# nothing yet\n")
    find(problems, f"{file}:1:1", "the file is empty")


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert [str(p) for p in check_policies(missing, known_channels=CHANNELS)] == [
        f"{missing}:1:1: no such policy file or folder; check the rules path"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    (problem,) = check_policies(empty, known_channels=CHANNELS)
    assert str(problem).startswith(f"{empty}:1:1: no policy files")
    with pytest.raises(PolicyError):
        load_policies(empty, known_channels=CHANNELS)


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: default
        stages:
          - name: a
            after_days: 1
            channels: [email]
            after_days: 2
        """,
    )
    find(problems, f"{file}:6:5", "duplicate key 'after_days' (first at line 4)")


# ------------------------------------------------------------------------------------------ schema errors


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: default
        stages:
          - name: reminder
            afterdays: 3
            channels: [email]
        """,
    )
    problem = find(problems, f"{file}:4:5", "unknown key 'afterdays'")
    assert problem.message == "unknown key 'afterdays' in stage 'reminder'; did you mean 'after_days'?"


def test_unknown_top_level_key_without_a_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT + "colour: red\n")
    find(problems, f"{file}:6:1", "unknown key 'colour'; allowed keys: name, applies_to")


def test_unknown_key_in_repeat(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT + "    repeat: {every: 3, max: 2}\n")
    find(problems, f"{file}:6:14", "unknown key 'every' in repeat of stage 'reminder'; did you mean 'every_days'?")
    find(problems, f"{file}:6:13", "missing required key 'every_days' in repeat of stage 'reminder'")


@pytest.mark.parametrize(
    ("value", "column", "shown"),
    [("ten", 17, "'ten'"), ("true", 17, "true"), ("1.5", 17, "1.5"), ("'10'", 17, "'10'")],
)
def test_after_days_must_be_an_integer(tmp_path: Path, value: str, column: int, shown: str) -> None:
    file, problems = check(tmp_path, DEFAULT.replace("after_days: 7", f"after_days: {value}"))
    problem = find(problems, f"{file}:4:{column}", "after_days must be a whole number of days")
    assert problem.message == f"after_days must be a whole number of days, got {shown} (in stage 'reminder')"


def test_wrong_types_elsewhere(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: 42
        min_days_between_stages: soon
        calendar: DE
        stages:
          - name: reminder
            after_days: 7
            channels: email
            repeat: weekly
        """,
    )
    find(problems, f"{file}:1:7", "name must be a name, got 42")
    find(problems, f"{file}:2:26", "min_days_between_stages must be a whole number of days, got 'soon'")
    find(problems, f"{file}:3:11", "calendar must be a mapping such as {country: DE}")
    find(problems, f"{file}:7:15", "channels must be a list of channel names")
    find(problems, f"{file}:8:13", "repeat must be a mapping such as {every_days: 7, max: 2}")


def test_missing_required_keys(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        # a comment first
        description: no name, no stages
        """,
    )
    find(problems, f"{file}:2:1", "missing required key 'name'")
    find(problems, f"{file}:2:1", "missing required key 'stages'")


def test_missing_required_stage_keys(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: default
        stages:
          - name: reminder
          - after_days: 3
            channels: [email]
        """,
    )
    find(problems, f"{file}:3:5", "missing required key 'after_days' in stage 'reminder'")
    find(problems, f"{file}:3:5", "missing required key 'channels' in stage 'reminder'")
    find(problems, f"{file}:4:5", "missing required key 'name' in stage 2")


@pytest.mark.parametrize(("stages", "column"), [("[]", 9), ("", 8)])
def test_empty_stages(tmp_path: Path, stages: str, column: int) -> None:
    file, problems = check(tmp_path, f"name: default\nstages: {stages}\n".replace(": \n", ":\n"))
    problem = find(problems, f"{file}:2:{column}", "stages")
    assert "empty" in problem.message


def test_empty_channels(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT.replace("[email]", "[]"))
    find(problems, f"{file}:5:15", "channels must not be empty (in stage 'reminder')")


def test_repeat_and_spacing_bounds(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        DEFAULT.replace("name: default", "name: default\nmin_days_between_stages: -1")
        + "    repeat: {every_days: 0, max: 0}\n",
    )
    find(problems, f"{file}:2:26", "min_days_between_stages must be at least 0, got -1")
    find(problems, f"{file}:7:26", "repeat.every_days must be at least 1, got 0 (in stage 'reminder')")
    find(problems, f"{file}:7:34", "repeat.max must be at least 1, got 0")


def test_unknown_days_and_catch_up_values_list_the_allowed_ones(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT + "days: busines\ncatch_up: leap\n")
    find(problems, f"{file}:6:7", "days must be one of: calendar, business, got 'busines'; did you mean 'business'?")
    find(problems, f"{file}:7:11", "catch_up must be one of: step, jump, got 'leap'")


def test_unknown_country(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT + "calendar: {country: XX}\n")
    find(problems, f"{file}:6:21", "unknown country 'XX'")
    file, problems = check(tmp_path, DEFAULT + "calendar:\n  country: de\n", name="q.yaml")
    find(problems, f"{file}:7:12", "unknown country 'de' in calendar.country; did you mean 'DE'?")


# ------------------------------------------------------------------------------------------ stage rules


def test_duplicate_stage_name_points_at_the_second(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: default
        stages:
          - name: reminder
            after_days: 3
            channels: [email]
          - name: reminder
            after_days: 10
            channels: [email]
        """,
    )
    find(problems, f"{file}:6:11", "duplicate stage name 'reminder' (first used at line 3)")


@pytest.mark.parametrize("name", ["first reminder", "2nd", "_x", "final-notice"])
def test_stage_name_must_be_an_identifier(tmp_path: Path, name: str) -> None:
    file, problems = check(tmp_path, DEFAULT.replace("name: reminder", f"name: '{name}'"))
    find(problems, f"{file}:3:11", "letters, digits and underscores, starting with a letter")


@pytest.mark.parametrize("name", ["current", "paid", "written_off", "disputed", "promised"])
def test_reserved_stage_names(tmp_path: Path, name: str) -> None:
    file, problems = check(tmp_path, DEFAULT.replace("name: reminder", f"name: {name}"))
    find(problems, f"{file}:3:11", f"stage name '{name}' is reserved")


def test_stages_out_of_order_names_both(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: default
        stages:
          - name: reminder
            after_days: 15
            channels: [email]
          - name: phone
            after_days: 10
            channels: [phone]
          - name: letter
            after_days: 10
            channels: [letter]
        """,
    )
    problem = find(problems, f"{file}:7:17", "stages out of order")
    assert "'phone' (after_days 10)" in problem.message
    assert "'reminder' (after_days 15)" in problem.message
    assert len(errors(problems)) == 1  # equal after_days (phone, letter) are fine


def test_unknown_and_repeated_channels(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT.replace("[email]", "[emial, sms, phone, phone]"))
    find(problems, f"{file}:5:16", "unknown channel 'emial' in stage 'reminder'; did you mean 'email'?")
    find(problems, f"{file}:5:23", "unknown channel 'sms' in stage 'reminder'; known channels: email, legal")
    find(problems, f"{file}:5:35", "channel 'phone' is listed twice in stage 'reminder'")


# ------------------------------------------------------------------------------------------ expressions


@pytest.mark.parametrize(
    ("written", "column"),
    [
        ('"invoice.open_amout >= 5"', 12),  # double quoted: +1 for the quote
        ("'invoice.open_amout >= 5'", 12),  # single quoted
        ("invoice.open_amout >= 5", 11),  # plain
    ],
)
def test_bad_when_is_located_inside_the_expression(tmp_path: Path, written: str, column: int) -> None:
    file, problems = check(tmp_path, DEFAULT + f"    when: {written}\n")
    find(problems, f"{file}:6:{column}", "invalid expression in when of stage 'reminder'")
    find(problems, f"{file}:6:{column}", "invoice.open_amount")  # the did-you-mean of expressions


def test_expression_offset_past_escapes_and_doubled_quotes(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT + "    when: 'customer.segment == ''it'' and customer.nme == 1'\n")
    # customer.nme starts at offset 29 of the value; each '' pair takes one column more than it yields.
    find(problems, f"{file}:6:{11 + 1 + 29 + 2}", "customer.nme")


def test_bad_applies_to_points_at_the_offset(tmp_path: Path) -> None:
    write(tmp_path, "90-default.yaml", DEFAULT)
    path = write(
        tmp_path,
        "10-a.yaml",
        DEFAULT.replace(
            "name: default", "name: a\napplies_to: \"customer.credit_grade in ['A'] and invoice.bogus > 1\""
        ),
    )
    problems = check_policies(tmp_path, known_channels=CHANNELS)
    find(problems, f"{path}:2:{13 + 1 + 35}", "invalid expression in applies_to")


def test_bad_expression_in_block_scalar(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        DEFAULT + "    when: >\n      invoice.open_amount > 5\n      and customer.nme == 1\n",
    )
    find(problems, f"{file}:8:11", "customer.nme")


def test_incomplete_expression(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT + "    when: invoice.open_amount >=\n")
    find(problems, f"{file}:6:33", "invalid expression in when")  # the offset is the end of the text


def test_empty_applies_to_is_not_silently_a_default(tmp_path: Path) -> None:
    file, problems = check(tmp_path, DEFAULT.replace("name: default", "name: default\napplies_to:"))
    find(problems, f"{file}:2:12", "applies_to is empty")


# ------------------------------------------------------------------------------------------ across files


def test_duplicate_policy_name_points_at_the_second(tmp_path: Path) -> None:
    write(tmp_path, "10-a.yaml", guarded("default", "customer.segment == 'a'"))
    second = write(tmp_path, "90-b.yaml", DEFAULT)
    problems = check_policies(tmp_path, known_channels=CHANNELS)
    find(problems, f"{second}:1:7", f"duplicate policy name 'default': already used in {tmp_path / '10-a.yaml'}")


def test_more_than_one_default_names_the_other_file(tmp_path: Path) -> None:
    first = write(tmp_path, "10-a.yaml", DEFAULT.replace("name: default", "name: a"))
    second = write(tmp_path, "20-b.yaml", DEFAULT.replace("name: default", "name: b"))
    third = write(tmp_path, "30-c.yaml", "# third\n" + DEFAULT.replace("name: default", "name: c"))
    problems = check_policies(tmp_path, known_channels=CHANNELS)
    find(problems, f"{second}:1:1", f"'a' in {first}")
    find(problems, f"{third}:2:1", f"'a' in {first}")
    assert not [p for p in problems if p.file == str(first)]


def test_no_default_policy_is_reported_at_the_first_file(tmp_path: Path) -> None:
    first = write(tmp_path, "10-a.yaml", guarded("a", "customer.segment == 'a'"))
    write(tmp_path, "20-b.yaml", guarded("b", "customer.segment == 'b'"))
    problems = check_policies(tmp_path, known_channels=CHANNELS)
    find(problems, f"{first}:1:1", "add a policy without applies_to")


# ------------------------------------------------------------------------------------------ reporting


def test_all_problems_are_reported_at_once_and_sorted(tmp_path: Path) -> None:
    file, problems = check(
        tmp_path,
        """\
        name: default
        catch_up: sometimes
        stages:
          - name: paid
            after_days: ten
            channels: [emial]
          - name: phone
            after_days: 5
            channels: [phone]
            when: invoice.nope > 1
        """,
    )
    assert len(errors(problems)) == 5
    assert problems == sorted(problems)
    with pytest.raises(PolicyError) as caught:
        load_policies(file, known_channels=CHANNELS)
    message = str(caught.value)
    assert "5 problem(s)" in message
    assert f"{file}:5:17: after_days must be a whole number of days" in message
    assert caught.value.problems == problems


def test_repeat_warning_does_not_prevent_loading(tmp_path: Path) -> None:
    text = DEFAULT + (
        "    repeat: {every_days: 5, max: 3}\n"
        "  - name: maybe\n    after_days: 10\n    when: invoice.open_amount > 1\n    channels: [phone]\n"
        "  - name: phone\n    after_days: 20\n    channels: [phone]\n"
    )
    file, problems = check(tmp_path, text)
    # 7 + 5 * 3 = 22 >= 20: the last repeat never fires. The conditional stage at day 10 doesn't take
    # over for every invoice, so it is not the one the warning compares with.
    warning = find(problems, f"{file}:6:13", "stage 'phone' takes over on day 20", severity="warning")
    assert str(warning).startswith(f"{file}:6:13: warning: ")
    assert errors(problems) == []
    assert load_policies(file, known_channels=CHANNELS).default.stage("reminder").repeat == Repeat(5, 3)


def test_repeat_that_fits_gives_no_warning(tmp_path: Path) -> None:
    text = DEFAULT + "    repeat: {every_days: 4, max: 3}\n  - name: phone\n    after_days: 20\n    channels: [phone]\n"
    _, problems = check(tmp_path, text)
    assert problems == []


# ------------------------------------------------------------------------------------------ JSON schema


def test_json_schema_documents_every_key() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "stages"}
    objects = [schema, *schema["$defs"].values()]
    for obj in objects:
        for key, prop in obj["properties"].items():
            assert prop.get("description"), key
    props = schema["properties"]
    assert props["days"]["enum"] == ["calendar", "business"]
    assert props["catch_up"]["enum"] == ["step", "jump"]
    assert props["applies_to"]["examples"]
    assert "invoice.open_amount" in props["applies_to"]["description"]
    stage = next(d for d in schema["$defs"].values() if "after_days" in d["properties"])
    assert stage["properties"]["channels"]["uniqueItems"] is True
    assert stage["properties"]["name"]["pattern"] == "^[A-Za-z][A-Za-z0-9_]*$"
    assert schema["examples"] == [CANONICAL_EXAMPLE]


def test_json_schema_validates_the_shipped_rules() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = policy_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    for file in sorted(RULES.glob("*.yaml")):
        if file.name in CREDIT_RULE_FILES:  # their own schemas (engine.credit.rules)
            continue
        validator.validate(yaml.safe_load(file.read_text(encoding="utf-8")))
    validator.validate(yaml.safe_load(CANONICAL))
    assert not validator.is_valid({"name": "x", "stages": [{"name": "a", "after_days": "ten", "channels": ["email"]}]})


# ------------------------------------------------------------------------------------------ yamlsource


def test_located_marks_for_keys_values_and_missing_paths() -> None:
    located = load_located("a: 1\nb:\n  - x: 'q'\n    y: [1, 2]\n", "f.yaml")
    assert located.data == {"a": 1, "b": [{"x": "q", "y": [1, 2]}]}
    assert located.value_mark(("a",)) == Mark(1, 4)
    assert located.key_mark(("b", 0, "y")) == Mark(4, 5)
    assert located.value_mark(("b", 0, "y", 1)) == Mark(4, 12)
    assert located.value_mark(("b", 0, "missing")) == Mark(3, 5)  # the mapping that lacks it
    assert located.position_in_scalar(("b", 0, "x"), 0) == Mark(3, 9)


def test_position_in_double_quoted_scalar_with_escapes() -> None:
    located = load_located('k: "a\\tb \\u00e9 target"\n', "f.yaml")
    assert located.data["k"] == "a\tb \u00e9 target"
    assert located.position_in_scalar(("k",), 6) == Mark(1, 17)  # \\t and \\u00e9 take 2 and 6 columns


def test_validation_problems_work_for_any_model() -> None:
    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = Field(1, ge=1)

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        timezone: str = "UTC"
        inner: Inner = Inner()

    located = load_located("timezne: UTC\ninner:\n  size: 0\n", "config.yaml")
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(located.data)
    problems = [str(p) for p in validation_problems(caught.value, located, model=Settings)]
    assert "config.yaml:1:1: unknown key 'timezne'; did you mean 'timezone'?" in problems
    assert "config.yaml:3:9: inner.size must be at least 1, got 0" in problems

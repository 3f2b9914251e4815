"""A webhook notice whose key is not ASCII or holds CR is still delivered once (issue 11, defect 10), and a
YAML integer of thousands of digits is a located problem, not a traceback (defect 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from channels.webhook import header_safe_key
from engine.yamlsource import load_located
from tests.integration.test_email import message
from tests.integration.test_webhook import Receiver, _secret, receiver, send, webhook  # noqa: F401  (fixtures)

DUNNING = Path(sys.executable).parent / "dunning"


@pytest.mark.parametrize("key", ["发票7/reminder@20260310T090000Z/0/email", "INV-7\r\nX-Evil: 1/letter@x/0/webhook"])
def test_keys_that_are_no_header_value_are_encoded_and_delivered(
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811
    key: str,
) -> None:
    receipt = send(webhook(tmp_path, receiver.url), message(key=key))
    assert receipt.reference == "req-1"
    (request,) = receiver.requests
    assert request["valid"]
    sent = request["headers"]["Idempotency-Key"]
    assert sent.isascii() and "\r" not in sent and "\n" not in sent
    assert unquote(sent) == key
    assert "X-Evil" not in request["headers"]
    assert json.loads(request["body"])["key"] == key


def test_the_encoding_keeps_plain_keys_and_is_injective() -> None:
    assert header_safe_key("INV-7/reminder@20260310T090000Z/0/email") == "INV-7/reminder@20260310T090000Z/0/email"
    keys = ["发票7", "收据7", "INV%20", "INV 20", "INV\r20", "INV\n20"]
    assert len({header_safe_key(k) for k in keys}) == len(keys)


def test_a_huge_yaml_integer_is_a_located_problem() -> None:
    located = load_located(
        "name: big\nstages:\n  - name: reminder\n    after_days: " + "9" * 5000 + "\n", "policy.yaml"
    )
    assert not located.parsed
    (problem,) = located.problems
    assert (problem.line, problem.column) == (4, 17)
    assert "5000 digits" in problem.message


def test_policy_check_reports_the_huge_integer(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yaml").write_text("name: big\nstages:\n  - name: reminder\n    after_days: " + "1" * 4400 + "\n")
    result = subprocess.run(
        [str(DUNNING), "policy", "check", str(rules)], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{rules / 'p.yaml'}:4:17: unsupported YAML: this number has 4400 digits" in result.stderr


def test_a_huge_integer_in_the_config_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("dispatch:\n  batch_size: " + "7" * 4500 + "\n")
    result = subprocess.run([str(DUNNING), "status"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "config.yaml:2:15: unsupported YAML: this number has 4500 digits" in result.stderr

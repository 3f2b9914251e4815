"""The README's first command runs `dunning demo` from the project folder with the default relative --dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.acceptance.test_cli import DUNNING

PROJECT = Path(__file__).resolve().parents[2]


def test_demo_runs_forward_and_leaves_an_explorable_book(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "rules", tmp_path / "rules")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUNNING_")}
    result = subprocess.run(
        [DUNNING, "demo", "--days", "21", "--start", "2026-03-02"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Week by week" in result.stdout and "Where the book stands" in result.stdout
    assert (tmp_path / "demo" / "dunning.db").is_file()
    log = (tmp_path / "demo" / "out" / "notifications.log").read_text(encoding="utf-8")
    assert log.count("=== ") > 50  # every notification was rendered and recorded
    status = subprocess.run(
        [DUNNING, "--config", "demo/config.yaml", "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert '"stage"' in status.stdout
    assert "Web workspace: run" in result.stdout and "http://127.0.0.1:8080/" in result.stdout
    password = result.stdout.split("with password ", 1)[1].split()[0]
    users = subprocess.run(
        [DUNNING, "--config", "demo/config.yaml", "users", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [(u["name"], u["role"]) for u in json.loads(users.stdout)] == [("demo-admin", "admin")]
    assert len(password) >= 12

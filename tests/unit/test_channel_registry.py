"""The channel registry: the `dunning.channels` entry points, resolved lazily, built-ins first."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from channels.registry import BUILTIN, ENTRY_POINT_GROUP, channel_names, channel_type
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_built_ins_are_exactly_the_entry_points_pyproject_registers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"][ENTRY_POINT_GROUP] == BUILTIN
    for name in BUILTIN:
        assert channel_type(name).type_name == name


def run_python(code: str, *paths: Path) -> str:
    env_path = ":".join([*(str(p) for p in paths), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_naming_a_type_imports_that_channel_only() -> None:
    loaded = run_python("""
        import sys
        from channels.registry import channel_names, channel_type
        channel_names()
        channel_type("log")
        print(sorted(m for m in ("aiosmtplib", "httpx", "reportlab", "channels.email", "channels.webhook") if m in sys.modules))
    """)
    assert loaded == "[]"


def plugin(tmp_path: Path, name: str, target: str, module: str = "") -> Path:
    """A distribution installed into a folder of its own: a module and its entry point metadata."""
    site = tmp_path / "site"
    info = site / f"dunning_plugin_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dunning-plugin-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n")
    if module:
        (site / "dunning_sms.py").write_text(textwrap.dedent(module))
    return site


SMS = """
    from channels.base import Channel, Receipt

    class SmsChannel(Channel):
        type_name = "sms"

        async def send(self, message):
            return Receipt("sms-1")
"""


def test_a_package_adds_a_channel_type_through_its_entry_point(tmp_path: Path) -> None:
    site = plugin(tmp_path, "sms", "dunning_sms:SmsChannel", SMS)
    found = run_python(
        """
        import sys
        from channels.registry import channel_names, channel_type
        names = channel_names()
        print(names[-1], "dunning_sms" in sys.modules, channel_type("sms").__name__)
    """,
        site,
    )
    assert found == "sms False SmsChannel"  # listed without importing it; loaded when asked for


def test_a_package_cannot_replace_a_built_in(tmp_path: Path) -> None:
    site = plugin(tmp_path, "email", "dunning_sms:SmsChannel", SMS)
    found = run_python(
        """
        from channels.registry import channel_names, channel_type
        print(channel_names().count("email"), channel_type("email").__module__)
    """,
        site,
    )
    assert found == "1 channels.email"


def test_a_broken_package_is_named_with_what_to_do(tmp_path: Path) -> None:
    site = plugin(tmp_path, "fax", "dunning_fax_missing:FaxChannel")
    message = run_python(
        """
        from channels.registry import channel_type
        from engine.errors import ConfigError
        try:
            channel_type("fax")
        except ConfigError as exc:
            print(exc)
    """,
        site,
    )
    assert "'fax'" in message and "dunning_fax_missing" in message and "reinstall or remove that package" in message


def test_an_unknown_type_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown channel type 'pigeon'; available: .*email.*webhook"):
        channel_type("pigeon")
    assert channel_names()[: len(BUILTIN)] == list(BUILTIN)

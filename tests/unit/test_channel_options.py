"""Channel options are checked when the configuration loads: a misspelt one is a located error with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import settings_from_text
from engine.errors import ConfigError


def test_a_misspelt_channel_option_is_a_located_error(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    text = """\
channels:
  email:
    type: email
    form: billing@example.com
    atach: [statement]
  sms: {type: webhook, recipient: phone, url: "https://sms.example/send", timout: 5}
  fax: {type: memory, colour: true}
"""
    with pytest.raises(ConfigError) as caught:
        settings_from_text(text, file)
    assert str(caught.value).splitlines()[1:] == [
        f"{file}:4:5: unknown option 'form' for the email channel 'email'; did you mean 'from'?",
        f"{file}:5:5: unknown option 'atach' for the email channel 'email'; did you mean 'attach'?",
        f"{file}:6:75: unknown option 'timout' for the webhook channel 'sms'; did you mean 'timeout'?",
        f"{file}:7:23: unknown option 'colour' for the memory channel 'fax'; memory options are: fail, fail_recipients",
    ]


def test_known_options_and_package_channel_types_pass(tmp_path: Path) -> None:
    settings = settings_from_text(
        """\
channels:
  email: {type: email, from: billing@example.com, attach: [statement], eml_dir: out/mail}
  fax: {type: fax, resolution: fine}
""",
        tmp_path / "config.yaml",
    )
    assert settings.channels["email"].options["from"] == "billing@example.com"
    assert settings.channels["fax"].options == {"resolution": "fine"}  # a package's own options: not ours to judge

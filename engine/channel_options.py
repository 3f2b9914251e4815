"""The options each built-in channel type understands, so a misspelt one is an error, not a silent default.

`settings_from_text` (the configuration loader) and `policy check` call `channel_option_problems`: an unknown
key under a channel (`form:` for `from:`) becomes `config.yaml:LINE:COLUMN: unknown option 'form' for the
email channel 'email'; did you mean 'from'?`. Channel types from packages are not checked (their options are
their own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import Problem
from engine.yamlsource import Located, did_you_mean

__all__ = ["KNOWN_OPTIONS", "channel_option_problems"]

#: Keys every channel has (read by the configuration itself).
COMMON = frozenset({"type", "recipient"})
#: What each built-in type reads from its options (see each module's docstring in channels/).
KNOWN_OPTIONS: dict[str, frozenset[str]] = {
    "email": frozenset(
        {
            "host",
            "port",
            "security",
            "username",
            "username_env",
            "password",
            "password_env",
            "from",
            "from_name",
            "reply_to",
            "connections",
            "rate_per_minute",
            "timeout",
            "verify",
            "ca_file",
            "message_id_domain",
            "attach",
            "eml_dir",
        }
    ),
    "letter": frozenset({"output_dir"}),
    "log": frozenset({"path"}),
    "memory": frozenset({"fail", "fail_recipients"}),
    "phone": frozenset({"kind"}),
    "visit": frozenset({"kind"}),
    "task": frozenset({"kind"}),
    "legal": frozenset({"output_dir", "email_to", "via"}),
    "webhook": frozenset({"url", "secret_env", "signature_header", "timeout", "retries", "headers"}),
}


def channel_option_problems(located: Located, channels: Mapping[str, Any]) -> list[Problem]:
    """Problems for options no built-in channel type reads, located at the key in the configuration file."""
    problems: list[Problem] = []
    for name, spec in channels.items():
        kind = getattr(spec, "type", None)
        known = KNOWN_OPTIONS.get(str(kind))
        if known is None:
            continue
        for option in getattr(spec, "model_extra", None) or {}:
            if option in known:
                continue
            choices = sorted(known)
            hint = did_you_mean(option, choices) or f"; {kind} options are: {', '.join(choices)}"
            problems.append(
                located.problem(
                    ("channels", name, option),
                    f"unknown option '{option}' for the {kind} channel '{name}'{hint}",
                    at="key",
                )
            )
    return problems

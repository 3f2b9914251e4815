"""Channel types by name: the built-ins plus any package registering the `dunning.channels` entry point."""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points

from channels.base import Channel
from channels.log import LogChannel
from channels.memory import MemoryChannel
from engine.errors import ConfigError

BUILTIN: dict[str, type[Channel]] = {"log": LogChannel, "memory": MemoryChannel}
#: Built-ins whose libraries (aiosmtplib, httpx, reportlab) load only when a configuration uses them.
LAZY_BUILTIN: dict[str, str] = {
    "email": "channels.email:EmailChannel",
    "letter": "channels.letter:LetterChannel",
    "phone": "channels.task:PhoneChannel",
    "visit": "channels.task:VisitChannel",
    "task": "channels.task:TaskChannel",
    "legal": "channels.legal:LegalChannel",
    "webhook": "channels.webhook:WebhookChannel",
}
ENTRY_POINT_GROUP = "dunning.channels"


def _load(path: str) -> type[Channel]:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def channel_types() -> dict[str, type[Channel]]:
    types = dict(BUILTIN)
    for name, path in LAZY_BUILTIN.items():
        types[name] = _load(path)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in types:
            continue
        try:
            types[entry.name] = entry.load()
        except Exception as exc:  # a broken plugin must not take the engine down
            raise ConfigError(
                f"channel package entry point {entry.name!r} ({entry.value}) failed to load: {exc}; "
                "reinstall or remove that package"
            ) from exc
    return types


def channel_type(name: str) -> type[Channel]:
    if name in BUILTIN:
        return BUILTIN[name]
    if name in LAZY_BUILTIN:
        return _load(LAZY_BUILTIN[name])
    types = channel_types()
    try:
        return types[name]
    except KeyError:
        raise ConfigError(
            f"unknown channel type {name!r}; available: {', '.join(sorted(types))}"
        ) from None

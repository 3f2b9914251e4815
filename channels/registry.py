"""Channel types by name: the built-ins plus any package registering the `dunning.channels` entry point."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from channels.base import Channel
from channels.log import LogChannel
from channels.memory import MemoryChannel
from engine.errors import ConfigError

BUILTIN: dict[str, type[Channel]] = {"log": LogChannel, "memory": MemoryChannel}
ENTRY_POINT_GROUP = "dunning.channels"


@lru_cache(maxsize=1)
def channel_types() -> dict[str, type[Channel]]:
    types = dict(BUILTIN)
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
    types = channel_types()
    try:
        return types[name]
    except KeyError:
        raise ConfigError(
            f"unknown channel type {name!r}; available: {', '.join(sorted(types))}"
        ) from None

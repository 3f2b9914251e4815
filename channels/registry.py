"""Channel types by name: the `dunning.channels` entry points, built-ins first.

Every channel type is registered under the entry-point group `dunning.channels` — the built-ins by this
package's own pyproject.toml, others by whatever package adds one. Names resolve lazily: asking for one
type imports that type's module only, so a configuration without e-mail never loads aiosmtplib (nor httpx,
nor reportlab). `BUILTIN` repeats the built-in entries so that a source tree works without installed
metadata; a built-in name always means the built-in class (a package cannot replace `email` behind the
user's back), and tests check `BUILTIN` against pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points

from channels.base import Channel
from engine.errors import ConfigError

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "channel_names", "channel_type", "channel_types"]

ENTRY_POINT_GROUP = "dunning.channels"
#: The built-in channel types as `module:Class`, exactly as pyproject.toml registers them.
BUILTIN: dict[str, str] = {
    "log": "channels.log:LogChannel",
    "memory": "channels.memory:MemoryChannel",
    "email": "channels.email:EmailChannel",
    "letter": "channels.letter:LetterChannel",
    "phone": "channels.task:PhoneChannel",
    "visit": "channels.task:VisitChannel",
    "task": "channels.task:TaskChannel",
    "legal": "channels.legal:LegalChannel",
    "webhook": "channels.webhook:WebhookChannel",
}
_loaded: dict[str, type[Channel]] = {}


def _plugins() -> dict[str, EntryPoint]:
    """The registered entry points that are not built-ins, by name (read anew each call: cheap, and a
    package installed meanwhile is seen)."""
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name not in BUILTIN}


def _builtin(path: str) -> type[Channel]:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def _plugin(entry: EntryPoint) -> type[Channel]:
    try:
        loaded = entry.load()
    except Exception as exc:  # a broken plugin must not take the engine down with an obscure traceback
        raise ConfigError(
            f"channel package entry point {entry.name!r} ({entry.value}) failed to load: {exc}; "
            "reinstall or remove that package"
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Channel)):
        raise ConfigError(
            f"channel package entry point {entry.name!r} ({entry.value}) is not a subclass of "
            "channels.base.Channel; fix or remove that package"
        )
    return loaded


def channel_names() -> list[str]:
    """Every channel type name that can be configured, built-ins first (nothing is imported)."""
    return [*BUILTIN, *sorted(_plugins())]


def channel_type(name: str) -> type[Channel]:
    """The class of channel type `name`, importing its module (only) on first use."""
    found = _loaded.get(name)
    if found is not None:
        return found
    if name in BUILTIN:
        found = _builtin(BUILTIN[name])
    else:
        plugins = _plugins()
        if name not in plugins:
            raise ConfigError(f"unknown channel type {name!r}; available: {', '.join(sorted(channel_names()))}")
        found = _plugin(plugins[name])
    _loaded[name] = found
    return found


def channel_types(names: Iterable[str] | None = None) -> dict[str, type[Channel]]:
    """The classes of `names` (default: every registered type — which imports them all)."""
    return {name: channel_type(name) for name in (channel_names() if names is None else names)}

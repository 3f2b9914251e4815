"""dunning: a rules-driven collections engine.

The public face for code that drives dunning directly (tests, scripts, the daemon)::

    from engine import Dunning, load_settings

    dunning = Dunning(load_settings("dunning.yaml"))
    dunning.run()

`Dunning` (engine.app) wires the parts; `Settings` / `load_settings` (engine.config) read the
configuration; every error dunning raises on purpose is a `DunningError` (engine.errors, where the
whole tree is drawn). `Dunning` and the settings are imported on first use, so `import engine` (or any
`engine.…` module) does not pull in the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import (
    AccountError,
    ActionRefused,
    AuditKeyMissing,
    ChargesError,
    ClaimRefused,
    ConfigError,
    CreditRefused,
    DaemonAlreadyRunning,
    DaemonError,
    DatabaseBusy,
    DeliveryError,
    DunningError,
    EvaluationError,
    ExpressionError,
    IllegalTransition,
    ImportRejected,
    InboundError,
    LinkRefused,
    NoDatabase,
    NotFound,
    PermanentDeliveryError,
    PermissionRefused,
    PolicyError,
    Problem,
    ReportError,
    RowProblem,
    SimulationError,
    SweepBusy,
    SweepRefused,
    TaskRefused,
    TemplateProblem,
    TransientDeliveryError,
)

if TYPE_CHECKING:
    from engine.app import Dunning
    from engine.config import Settings, load_settings

__all__ = [
    "AccountError",
    "ActionRefused",
    "AuditKeyMissing",
    "ChargesError",
    "ClaimRefused",
    "ConfigError",
    "CreditRefused",
    "DaemonAlreadyRunning",
    "DaemonError",
    "DatabaseBusy",
    "DeliveryError",
    "Dunning",
    "DunningError",
    "EvaluationError",
    "ExpressionError",
    "IllegalTransition",
    "ImportRejected",
    "InboundError",
    "LinkRefused",
    "NoDatabase",
    "NotFound",
    "PermanentDeliveryError",
    "PermissionRefused",
    "PolicyError",
    "Problem",
    "ReportError",
    "RowProblem",
    "Settings",
    "SimulationError",
    "SweepBusy",
    "SweepRefused",
    "TaskRefused",
    "TemplateProblem",
    "TransientDeliveryError",
    "load_settings",
]

#: Names imported on first use: module that defines each.
_LAZY = {"Dunning": "engine.app", "Settings": "engine.config", "load_settings": "engine.config"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""`engine`'s public face: `__all__` names what exists, and the error tree in errors.py is complete."""

from __future__ import annotations

import subprocess
import sys

import engine
import engine.errors as errors


def test_every_public_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    assert engine.Dunning.__module__ == "engine.app"
    assert engine.load_settings.__module__ == "engine.config"


def test_every_error_is_public_and_drawn_in_the_tree() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.DunningError)
    }
    assert classes <= set(engine.__all__)
    tree = errors.__doc__ or ""
    assert "\n    DunningError\n" in tree
    for name in classes - {"DunningError"}:
        assert f"── {name} " in tree, f"{name} is missing from the tree in engine/errors.py's docstring"


def test_moved_errors_keep_their_old_import_paths() -> None:
    from engine.actions import ActionRefused
    from engine.reports.figures import ReportError
    from engine.service.daemon import DaemonAlreadyRunning, DaemonError
    from engine.tasks import TaskRefused
    from engine.templates import TemplateProblem

    assert (ActionRefused, ReportError, DaemonError, DaemonAlreadyRunning, TaskRefused, TemplateProblem) == (
        errors.ActionRefused,
        errors.ReportError,
        errors.DaemonError,
        errors.DaemonAlreadyRunning,
        errors.TaskRefused,
        errors.TemplateProblem,
    )


def test_importing_engine_does_not_load_the_database_layer() -> None:
    code = "import sys, engine; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

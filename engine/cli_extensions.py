"""Imports the modules that add command families to the `dunning` CLI (each registers on engine.cli.app).

One import line per module; keeping them here means adding a family never touches engine/cli.py.
"""

from __future__ import annotations

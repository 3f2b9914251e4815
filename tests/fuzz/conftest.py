"""Property-based fuzzing (hypothesis), bounded for CI.

Profiles, chosen by $DUNNING_FUZZ:
- unset / `ci`: few examples per property, derandomised (the same inputs on every run, so CI is
  reproducible), no example database; the whole folder runs in well under 90 s.
- `long`: ten times the examples, random inputs, hypothesis's example database in `.hypothesis/` —
  for a night run, or after touching a parser: `DUNNING_FUZZ=long .venv/bin/python -m pytest tests/fuzz`.

Each property says its budget with `examples(n)` (n under the CI profile).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("DUNNING_FUZZ", "ci")
SCALE = 10 if PROFILE == "long" else 1

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("long" if PROFILE == "long" else "ci")


def examples(n: int) -> int:
    """How many examples a property gets under the active profile."""
    return n * SCALE

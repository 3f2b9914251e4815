"""The `rules/` watcher and the fingerprint of a policy set (what the daemon reloads, and when)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.policy.loader import POLICY_SUFFIXES
from engine.policy.model import PolicySet

__all__ = ["PolicyWatcher", "describe_policies", "policy_fingerprint"]


class PolicyWatcher:
    """Notices edits to the policy files by polling their names, sizes and mtimes (no extra dependency).

    A change is acted on only once it has held still for one poll, so an editor's half-written save is
    not mistaken for a broken policy.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._seen = self.snapshot()
        self._acted = self._seen

    def snapshot(self) -> tuple[tuple[str, int, int], ...]:
        try:
            entries = sorted(self.folder.iterdir()) if self.folder.is_dir() else [self.folder]
        except OSError:
            return ()
        found = []
        for entry in entries:
            if entry.suffix not in POLICY_SUFFIXES:
                continue
            try:
                info = entry.stat()
            except OSError:
                continue
            found.append((entry.name, info.st_mtime_ns, info.st_size))
        return tuple(found)

    def settled_change(self) -> bool:
        """True once per change, after the files stopped changing for one poll."""
        now = self.snapshot()
        if now != self._seen:
            self._seen = now
            return False
        if now == self._acted:
            return False
        self._acted = now
        return True

    def mark_current(self) -> None:
        self._seen = self._acted = self.snapshot()


def policy_fingerprint(policies: PolicySet) -> str:
    return hashlib.sha256("\n".join(sorted(f"{p.name}:{p.hash}" for p in policies.policies)).encode()).hexdigest()


def describe_policies(policies: PolicySet) -> list[dict[str, str]]:
    return [{"name": p.name, "sha256": p.hash, "path": p.source.path if p.source else ""} for p in policies.policies]

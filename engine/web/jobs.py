"""Background jobs of the web workspace: simulations and policy diffs take seconds to minutes, so the API
starts them (202 with the job's URL) and the client asks for progress until the result is there.

Jobs run one at a time in a worker thread of the server process that started them and are kept in its
memory (the latest `KEEP` of them); a server restart forgets them. A server of several worker processes
(`dunning serve --workers N`) also writes each job's state to a folder they share, so a progress request
answered by another worker finds it there. Each job's result is exactly the CLI's JSON
(`dunning simulate --json`, `dunning policy diff --json`).

Edited policies come as file texts (`{"files": {"standard.yaml": "..."}}`): they are laid over a copy of
the configured rules folder in a temporary folder, so a job never reads a path the client names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time as wall
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from engine.app import Dunning, json_ready
from engine.clock import iso, local_day, parse_instant
from engine.errors import DunningError, NotFound

KEEP = 50
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.ya?ml$")
MAX_FILE_CHARS = 200_000


class JobRefused(DunningError):
    """A job that cannot start as asked (bad dates, unknown model, bad file names)."""


@dataclass
class Job:
    id: str
    kind: str  # "simulation" or "policy-diff"
    owner: str
    created_at: datetime
    status: str = "queued"  # queued, running, done, failed
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        now = wall.monotonic()
        elapsed = None if self.started is None else round((self.finished or now) - self.started, 3)
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "created_by": self.owner,
            "created_at": iso(self.created_at),
            "elapsed_seconds": elapsed,
            "progress": {"queued": 0.0, "running": 0.5}.get(self.status, 1.0),
            "parameters": self.parameters,
            "result": self.result,
            "error": self.error,
        }


class JobBook:
    """The jobs of one server process; thread-safe. With `shared`, a folder the worker processes of one
    server share, every change of a job's state is also written there (and read from there when another
    worker started the job)."""

    def __init__(self, shared: Path | None = None) -> None:
        self._shared = shared
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dunning-job")

    def start(self, kind: str, owner: str, now: datetime, parameters: dict[str, Any], work: Callable[[], Any]) -> Job:
        job = Job(uuid.uuid4().hex, kind, owner, now, parameters=parameters)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                _, dropped = self._jobs.popitem(last=False)
                if self._shared is not None:
                    (self._shared / f"{dropped.id}.json").unlink(missing_ok=True)
        self._save(job)
        self._pool.submit(self._run, job, work)
        return job

    def _save(self, job: Job) -> None:
        if self._shared is None:
            return
        record = {
            "id": job.id,
            "kind": job.kind,
            "owner": job.owner,
            "created_at": iso(job.created_at),
            "status": job.status,
            "started": job.started,  # time.monotonic() is one clock for every process of the machine
            "finished": job.finished,
            "result": job.result,
            "error": job.error,
            "parameters": job.parameters,
        }
        partial = self._shared / f".{job.id}.{os.getpid()}"
        partial.write_text(json.dumps(record), encoding="utf-8")
        partial.replace(self._shared / f"{job.id}.json")  # readers never see half a file

    def _load(self, job_id: str) -> Job | None:
        """A job another worker process started, as it last wrote it."""
        if self._shared is None or not JOB_ID.match(job_id):  # the id names a file: only ids we make
            return None
        try:
            record = json.loads((self._shared / f"{job_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        record["created_at"] = datetime.fromisoformat(record["created_at"])
        return Job(**record)

    def _run(self, job: Job, work: Callable[[], Any]) -> None:
        job.status, job.started = "running", wall.monotonic()
        self._save(job)
        try:
            job.result = json_ready(work())
            job.status = "done"
        except DunningError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:
            job.status, job.error = "failed", f"the job crashed: {type(exc).__name__}: {exc}"
        finally:
            job.finished = wall.monotonic()
            self._save(job)

    def get(self, job_id: str, kind: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            job = self._load(job_id)
        if job is None or job.kind != kind:
            raise NotFound(
                f"no {kind} job {job_id!r} on this server (jobs are kept in the memory of the server that "
                "started them, the latest 50); start it again"
            )
        return job

    def wait(self, job_id: str, kind: str, timeout: float = 60) -> Job:
        """For tests and scripts: the job once it has ended (or as it is after `timeout` seconds)."""
        deadline = wall.monotonic() + timeout
        job = self.get(job_id, kind)
        while job.status in ("queued", "running") and wall.monotonic() < deadline:
            wall.sleep(0.05)
            job = self.get(job_id, kind)  # another worker's job is read again
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- the work ------------------------------------------------------------------------------------------------


def _day(value: Any, option: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise JobRefused(f"{option} {value!r} is not a date; use ISO 8601 such as 2026-03-31") from None


def _hour(value: Any) -> time:
    try:
        return time.fromisoformat(str(value or "09:00").strip())
    except ValueError:
        raise JobRefused(f"--at {value!r} is not a time of day; use HH:MM such as 09:00") from None


def edited_rules(dunning: Dunning, files: Mapping[str, str], folder: Path) -> Path:
    """The configured rules folder copied into `folder`, with `files` (name → YAML text) laid over it."""
    target = folder / "rules"
    source = dunning.settings.rules_path
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir(parents=True)
    for name, text in files.items():
        if not FILE_NAME.match(name):
            raise JobRefused(f"policy file name {name!r} is not allowed; use a plain name such as standard.yaml")
        if len(text) > MAX_FILE_CHARS:
            raise JobRefused(f"policy file {name} is longer than {MAX_FILE_CHARS} characters")
        (target / name).write_text(text, encoding="utf-8")
    return target


def _load(dunning: Dunning, path: Path) -> Any:
    from engine.policy.loader import load_policies

    return load_policies(
        path, known_channels=dunning.settings.channel_settings().keys(), default_country=dunning.settings.country
    )


def check_simulation(options: Mapping[str, Any]) -> None:
    """Refuse bad parameters before the job starts (so the client gets 422, not a failed job)."""
    from engine.authoring.simulate import PaymentsModel

    try:
        PaymentsModel(options.get("payments_model", "none"))
    except ValueError:
        raise JobRefused(
            f"--payments-model {options.get('payments_model')!r} is unknown; use none or historical"
        ) from None
    if int(options.get("window", 14)) < 1:
        raise JobRefused(f"--window must be at least 1 day, got {options.get('window')}")
    if options.get("by") not in (None, "day", "week"):
        raise JobRefused(f"--by {options.get('by')!r} is unknown; use day or week")
    _day(options.get("from"), "--from")
    _day(options.get("to"), "--to")
    _hour(options.get("at"))


def simulation(dunning: Dunning, options: Mapping[str, Any]) -> Callable[[], Any]:
    """`dunning simulate --json` with the CLI's options (from, to, payments_model, seed, window, at, by) and
    optionally edited policy `files`."""
    from engine.authoring.simulate import PaymentsModel, Simulator

    check_simulation(options)

    def work() -> Any:
        with tempfile.TemporaryDirectory(prefix="dunning-sim-") as folder:
            files = options.get("files") or {}
            chosen = _load(dunning, edited_rules(dunning, files, Path(folder))) if files else None
            simulator = Simulator(
                dunning,
                policies=chosen,
                at=_hour(options.get("at")),
                payments_model=PaymentsModel(options.get("payments_model", "none")),
                seed=int(options.get("seed", 0)),
                window_days=int(options.get("window", 14)),
                keep_timelines=True,
            )
            first = _day(options.get("from"), "--from") or simulator.first_free_day()
            last = _day(options.get("to"), "--to") or first + timedelta(days=29)
            result = simulator.run(first, last)
            grouping = options.get("by") or ("day" if (last - first).days < 31 else "week")
            return result.as_dict(by=grouping)

    return work


def policy_diff(dunning: Dunning, options: Mapping[str, Any]) -> Callable[[], Any]:
    """`dunning policy diff RULES EDITED --json`: the configured rules against them with `files` laid over."""
    from engine.authoring.policy_diff import diff_policies
    from engine.authoring.simulate import Simulator

    horizon = int(options.get("horizon", 90))
    if horizon < 1:
        raise JobRefused(f"--horizon must be at least 1 day, got {horizon}")
    if not options.get("files"):
        raise JobRefused('a policy diff needs the edited policy files: {"files": {"standard.yaml": "..."}}')
    hour = _hour(options.get("at"))
    start = parse_instant(str(options["as_of"]), dunning.settings.zone) if options.get("as_of") else None

    def work() -> Any:
        with tempfile.TemporaryDirectory(prefix="dunning-diff-") as folder:
            new = _load(dunning, edited_rules(dunning, options["files"], Path(folder)))
            old = _load(dunning, dunning.settings.rules_path)
            simulator = Simulator(dunning, at=hour)
            first = local_day(start, dunning.settings.zone) if start else simulator.first_free_day()
            if start is not None and simulator.instant(first) < start:
                first += timedelta(days=1)
            return diff_policies(dunning, old, new, first=first, days=horizon, at=hour).as_dict()

    return work

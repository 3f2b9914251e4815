"""`dunning daemon`: scheduled sweeps, outbox dispatch, hot-reloaded policies — unattended, for months.

Lifecycle (one `ExitStack`; each part registers its own cleanup, so shutdown is one call):

1. Take the single-daemon lock (SQLite: an exclusive `flock` on `<database>.daemon.lock`, engine.service.lock),
   so a second daemon on the same file refuses to start instead of racing the first.
2. Open the database, load the policies (invalid ones: refuse to start, with `FILE:LINE:COLUMN` messages),
   put notifications a dead sender left `sending` back to `pending` when no live sender holds claims
   (engine.store.senders: every dispatcher on a SQLite file holds its sender lock), start `/healthz` + `/metrics` if asked.
3. Jobs on `engine.service.scheduler.JobScheduler`: the sweep check (is a scheduled instant past the latest sweep
   in the database? then one sweep as of that instant), dispatch, the `rules/` watcher (engine.service.watcher),
   housekeeping. What the jobs ask of the database is in `engine.store.service`.
   Sweep and dispatch take one work lock, so they never write over each other and never run twice at once.
4. SIGHUP reloads the policies at once. SIGTERM/SIGINT stop new work, let the running batch finish and
   commit (bounded by `schedule.shutdown_timeout_seconds`), and exit 0; a second signal exits at once.

Crash safety comes from the storage, not from here: a sweep is one transaction, every send is recorded
with its outcome, and a claim is a lease. After `kill -9` a restart resumes the outbox where it stood.

Time comes from a `Clock`. For tests and rehearsals `ScaledClock` runs virtual time from a chosen start at
N times real speed (`--clock-start`, `--clock-rate`): the schedule is evaluated against that clock, so a
week of daily sweeps passes in seconds. It is a testing aid; production uses the system clock.
"""

from __future__ import annotations

import logging
import os
import select as io_select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.app import Dunning
from engine.clock import Clock, SystemClock, iso
from engine.config import Settings
from engine.dispatch import DispatchReport
from engine.errors import DaemonAlreadyRunning, DaemonError, PolicyError, SweepBusy, SweepRefused
from engine.policy.loader import load_policies
from engine.policy.model import PolicySet
from engine.service.health import HealthServer, HealthStatus, Metrics
from engine.service.idle import MailWaiter
from engine.service.lock import DaemonLock, lock_path_for
from engine.service.logs import JsonLinesFormatter, configure_logging
from engine.service.scheduler import CronSchedule, JobScheduler
from engine.service.watcher import PolicyWatcher, describe_policies, policy_fingerprint
from engine.statement import queue_statements_if_due
from engine.store import queries, senders
from engine.store import service as store
from engine.store.engines import display_url
from engine.store.events import new_event
from engine.sweep import SweepReport

__all__ = [
    "Daemon",
    "DaemonAlreadyRunning",
    "DaemonError",
    "DaemonLock",
    "JsonLinesFormatter",
    "OnceReport",
    "PolicyWatcher",
    "ScaledClock",
    "configure_logging",
    "describe_policies",
    "iter_policy_events",
    "lock_path_for",
    "policy_fingerprint",
]

logger = logging.getLogger("dunning.daemon")

ACTOR = "daemon"
#: At most this many inbound messages per read, so a full mailbox does not hold sweeps and dispatch for long.
INBOUND_BATCH = 200


# -- time --------------------------------------------------------------------------------------------


class ScaledClock:
    """Virtual time: `start` plus real elapsed time times `rate` (a testing and rehearsal aid).

    Made with `running=False` it stands at `start` until `restart()`: the daemon starts it once its jobs
    are ready, so a slow start-up neither eats virtual hours nor leaves start-up events after the first
    scheduled ones.
    """

    def __init__(self, start: datetime, rate: float = 1.0, *, running: bool = True):
        if start.tzinfo is None:
            raise DaemonError("the virtual clock's start needs a time zone, e.g. 2026-03-06T08:00+01:00")
        if rate <= 0:
            raise DaemonError(f"--clock-rate must be positive, got {rate}")
        self.start = start.astimezone(timezone.utc)
        self.rate = rate
        self._origin: float | None = time.monotonic() if running else None

    def now(self) -> datetime:
        if self._origin is None:
            return self.start
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.rate)

    def restart(self) -> None:
        """Run from `start` again, beginning at this real moment."""
        self._origin = time.monotonic()


# -- the daemon --------------------------------------------------------------------------------------


@dataclass
class OnceReport:
    """What `dunning daemon --once` did."""

    swept_as_of: datetime | None = None
    sweep: SweepReport | None = None
    dispatch: DispatchReport = field(default_factory=DispatchReport)
    recovered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "swept_as_of": iso(self.swept_as_of),
            "sweep": self.sweep.as_dict() if self.sweep else None,
            "dispatch": self.dispatch.as_dict(),
            "recovered": self.recovered,
        }


class Daemon:
    """The long-running service over one `Dunning` installation."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        health_host: str = "127.0.0.1",
        health_port: int | None = None,
        servers: Sequence[Callable[[Clock], Callable[[], None]]] = (),
    ):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.health_host = health_host
        self.health_port = health_port
        #: More servers to run with the daemon, on its clock (the CLI's `--web-port`: the web workspace);
        #: each starter returns the function that stops it.
        self.servers = tuple(servers)
        self.schedule = CronSchedule(settings.schedule.sweep, settings.zone)
        self.metrics = Metrics()
        self.dunning: Dunning | None = None
        self.jobs: JobScheduler | None = None
        self.health: HealthServer | None = None
        self.watcher = PolicyWatcher(settings.rules_path)
        # Sweep and dispatch both write; one at a time, and shutdown waits for whichever holds this.
        self._work = threading.Lock()
        self._policy_lock = threading.Lock()
        self._stopping = threading.Event()
        self._first_stop_at: float | None = None
        self._reload_requested = False
        self._next_check: datetime | None = None
        self._next_review: datetime | None = None  # the next scheduled credit review (schedule.credit_review)
        self._wake_r, self._wake_w = -1, -1
        self._told_of_live_sender = False
        self.mail_waiter: MailWaiter | None = None
        #: The latest rejected change of rules/ (see HealthStatus.policy_rejection), None while in force.
        self.policy_rejection: dict[str, Any] | None = None

    # -- entry points ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
        with ExitStack() as stack:
            self._start(stack)
            jobs = JobScheduler()
            schedule = self.settings.schedule
            jobs.every("sweep-check", schedule.tick_seconds, self._guard("sweep", self.sweep_if_due), start_now=True)
            jobs.every(
                "dispatch", schedule.dispatch_every_seconds, self._guard("dispatch", self.dispatch_due), start_now=True
            )
            jobs.every("watch-rules", schedule.watch_rules_seconds, self._guard("watch", self.watch_rules))
            jobs.every(
                "housekeeping", schedule.housekeeping_every_seconds, self._guard("housekeeping", self.housekeeping)
            )
            if schedule.credit_review:
                jobs.every("credit-review", schedule.tick_seconds, self._guard("credit", self.review_if_due))
            if self.settings.inbound is not None:
                jobs.every(
                    "inbound",
                    self.settings.inbound.every_seconds,
                    self._guard("inbound", self.read_inbound),
                    start_now=True,
                )
            self.jobs = jobs
            self._install_signals(stack)
            self._start_mail_waiter(stack)
            if self.health_port is not None:
                self._start_health(stack)
            for start in self.servers:
                stack.callback(start(self.clock))
            if isinstance(self.clock, ScaledClock):
                self.clock.restart()
            jobs.start()
            stack.callback(jobs.shutdown)
            logger.info(
                "dunning daemon started (pid %d): database %s, rules %s, sweeps %r in %s, next at %s%s",
                os.getpid(),
                self._database_label(),
                self.settings.rules_path,
                self.schedule.expression,
                self.settings.timezone,
                iso(self.schedule.next_after(self.clock.now())),
                f", health on http://{self.health.address[0]}:{self.health.address[1]}" if self.health else "",
                extra={"event": "started", "pid": os.getpid()},
            )
            if isinstance(self.clock, ScaledClock):
                logger.warning(
                    "running on a virtual clock from %s at %gx real speed (a testing aid)",
                    iso(self.clock.start),
                    self.clock.rate,
                    extra={"event": "virtual_clock"},
                )
            self._main_loop()
            return self._stop(stack)
        return 0  # pragma: no cover (the with-block always returns)

    def run_once(self) -> OnceReport:
        """One full cycle — catch up a due sweep, send what is due, housekeeping — then return."""
        with ExitStack() as stack:
            report = OnceReport()
            report.recovered = self._start(stack)
            report.swept_as_of, report.sweep = self._sweep_if_due_locked()
            report.dispatch = self._dispatch_locked()
            self.review_if_due()
            self.housekeeping()
            return report

    # -- start and stop ----------------------------------------------------------------------------

    def _start(self, stack: ExitStack) -> int:
        lock_path = lock_path_for(self.settings.database_url)
        if lock_path is not None:
            stack.enter_context(DaemonLock(lock_path, self._database_label()))
        elif self.settings.database_url.startswith("postgresql"):
            logger.info("PostgreSQL: no single-daemon lock is taken; dispatch claims rows with SKIP LOCKED")
        self.dunning = Dunning(self.settings, clock=self.clock)
        stack.callback(self.dunning.repo.dispose)
        policies = self.dunning.policies  # PolicyError: refuse to start; the CLI prints FILE:LINE:COLUMN
        self.watcher.mark_current()
        self._record_loaded(policies, reason="start", only_if_new=True)
        recovered = self._recover_in_flight()
        self._warn_about_dst()
        return recovered

    def _start_health(self, stack: ExitStack) -> None:
        assert self.health_port is not None
        try:
            server = HealthServer(self.health_host, self.health_port, self.health_status, self.render_metrics)
        except OSError as exc:
            raise DaemonError(
                f"cannot serve health checks on {self.health_host}:{self.health_port}: {exc.strerror}; "
                "pick another --health-port"
            ) from None
        server.start()
        stack.callback(server.stop)
        self.health = server

    def _start_mail_waiter(self, stack: ExitStack) -> None:
        """IMAP IDLE on a thread of its own (engine.service.idle), where an IMAP mailbox is configured."""
        inbound = self.settings.inbound
        if inbound is None or inbound.imap is None or not inbound.imap.idle:
            return
        waiter = MailWaiter(
            inbound.imap,
            self.settings.base_dir,
            self._guard("inbound", self.read_inbound),
            self._stopping,
            inbound.every_seconds,
        )
        waiter.start()
        stack.callback(waiter.stop)
        self.mail_waiter = waiter

    def _install_signals(self, stack: ExitStack) -> None:
        # Handlers only set flags and poke a pipe; the main thread does the work, outside signal context.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        previous_fd = signal.set_wakeup_fd(self._wake_w)
        stack.callback(os.close, self._wake_r)
        stack.callback(os.close, self._wake_w)
        stack.callback(signal.set_wakeup_fd, previous_fd)
        for signum, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_hup),
        ):
            previous = signal.signal(signum, handler)
            stack.callback(signal.signal, signum, previous)

    def _on_stop(self, signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if self._first_stop_at is None:
            self._first_stop_at = now
        elif now - self._first_stop_at > 1.0:
            # A duplicate delivery (a supervisor signalling the process and then its group) is not a
            # second request; a second signal a moment later is.
            # Asked twice: leave now. Unfinished sends stay `sending` and are retried at the next start.
            os.write(2, b"dunning daemon: second stop signal, exiting without waiting\n")
            os._exit(1)
        self._stopping.set()

    def _on_hup(self, _signum: int, _frame: Any) -> None:
        self._reload_requested = True

    def _main_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                ready, _, _ = io_select.select([self._wake_r], [], [], 60.0)
            except InterruptedError:  # pragma: no cover (PEP 475 retries for us)
                continue
            if ready:
                try:
                    os.read(self._wake_r, 512)
                except BlockingIOError:
                    pass
            if self._reload_requested and not self._stopping.is_set():
                self._reload_requested = False
                logger.info("SIGHUP: reloading the policies")
                self.reload_policies(reason="SIGHUP")

    def _stop(self, stack: ExitStack) -> int:
        timeout = self.settings.schedule.shutdown_timeout_seconds
        logger.info("stopping: no new work; waiting up to %gs for work in flight", timeout, extra={"event": "stopping"})
        if self.jobs is not None:
            self.jobs.shutdown()
        if not self._work.acquire(timeout=timeout):
            logger.error(
                "work in flight did not finish within %gs; exiting anyway: the open transaction is rolled back "
                "and notifications still marked sending are sent again at the next start",
                timeout,
                extra={"event": "stop_timeout"},
            )
            logging.shutdown()
            os._exit(1)
        self._work.release()
        stack.close()
        logger.info("dunning daemon stopped cleanly", extra={"event": "stopped"})
        return 0

    # -- jobs --------------------------------------------------------------------------------------

    def _guard(self, name: str, action: Callable[[], Any]) -> Callable[[], None]:
        def job() -> None:
            try:
                action()
            except Exception:  # one failing run must not stop the schedule; the next run tries again
                self.metrics.job_error(name)
                logger.exception("%s job failed; it runs again at its next tick", name, extra={"job": name})

        return job

    def review_if_due(self) -> None:
        """The credit review (schedule.credit_review), once, as of the latest scheduled instant since the last one."""
        expression = self.settings.schedule.credit_review
        if self._stopping.is_set() or not expression or self.dunning is None:
            return
        now = self.clock.now()
        if self._next_review is not None and now < self._next_review:
            return  # nothing scheduled yet: no database round trip
        with self._work:
            desk = self.dunning.credit
            schedule = CronSchedule(expression, self.settings.zone)
            latest = desk.latest_review()
            due = schedule.latest_due(now, latest)
            self._next_review = schedule.next_after(due or max(latest or now, now))
            if due is not None:
                changes = desk.review(due, apply=True, actor="daemon")
                logger.info(
                    "credit review as of %s: %d customer(s) regraded",
                    iso(due),
                    len(changes),
                    extra={"event": "credit_review", "as_of": iso(due), "regraded": len(changes)},
                )

    def sweep_if_due(self) -> None:
        """Sweep once, as of the latest scheduled instant since the latest sweep, if one has come."""
        if self._stopping.is_set():
            return
        now = self.clock.now()
        if self._next_check is not None and now < self._next_check:
            return  # the common case: nothing scheduled yet, and no database round trip to learn it
        with self._work:
            if self._stopping.is_set():
                return
            self._sweep_if_due_locked()
            self._dispatch_locked()

    def _sweep_if_due_locked(self) -> tuple[datetime | None, SweepReport | None]:
        assert self.dunning is not None
        now = self.clock.now()
        latest = self.dunning.latest_sweep()
        due = self.schedule.latest_due(now, latest)
        if due is None:
            upcoming = self.schedule.next_after(max(latest, now) if latest else now)
            self._next_check = upcoming
            return None, None
        started = time.monotonic()
        try:
            report = self.dunning.sweeper().run(due)
        except SweepBusy:  # another daemon on this PostgreSQL is sweeping; its sweep is the cluster's
            logger.info(
                "scheduled sweep as of %s: another daemon is sweeping it",
                iso(due),
                extra={"event": "sweep_elsewhere", "as_of": iso(due)},
            )
            self._next_check = None
            return None, None
        except SweepRefused as exc:  # someone swept later meanwhile (`dunning run`); nothing to catch up
            logger.warning("scheduled sweep as of %s skipped: %s", iso(due), exc)
            self._next_check = None
            return None, None
        seconds = time.monotonic() - started
        self.metrics.sweep_done(seconds, report.entered)
        self._next_check = self.schedule.next_after(due)
        catch_up = " (catching up a missed run)" if now - due > timedelta(minutes=5) else ""
        logger.info(
            "swept %d open invoice(s) as of %s%s: %d transition(s), %d repeat(s), %d notification(s) queued in %.2fs%s",
            report.invoices_seen,
            iso(due),
            catch_up,
            report.transitions,
            sum(report.repeats.values()),
            sum(report.notifications.values()),
            seconds,
            f"; {report.held_summary()}" if report.held else "",
            extra={
                "event": "swept",
                "as_of": iso(due),
                "transitions": report.transitions,
                "entered": dict(report.entered),
                "held": report.held,
                "held_invoices": list(report.held_invoices),
                "duration_seconds": round(seconds, 4),
            },
        )
        queued = queue_statements_if_due(self.dunning, due)  # `statements: {schedule: monthly}` in the config
        if queued:
            logger.info(
                "queued %d statement(s) of account", queued, extra={"event": "statements_queued", "count": queued}
            )
        return due, report

    def dispatch_due(self) -> None:
        """Send the outbox rows that are due (new, retries, leases of a dead sender), batch by batch."""
        if self._stopping.is_set() or not self._work.acquire(blocking=False):
            return  # a sweep is writing; it dispatches itself when done
        try:
            self._dispatch_locked()
        finally:
            self._work.release()

    def _dispatch_locked(self) -> DispatchReport:
        assert self.dunning is not None
        total = DispatchReport()
        self._recover_in_flight()  # a `dunning dispatch` killed meanwhile: its claims need not wait for their lease
        if not self._outbox_due(self.clock.now()):
            return total
        dispatcher = self.dunning.dispatcher()
        batch = self.settings.dispatch.batch_size
        while True:
            # One batch per round so a stop request is honoured between batches, never inside one.
            report = dispatcher.run(self.clock.now(), limit=batch)
            handled = sum(report.sent.values()) + sum(report.failed.values()) + sum(report.retrying.values())
            if handled:
                total.merge(report)
                self.metrics.dispatch_done(report.sent, report.failed, report.retrying)
                logger.info(
                    "dispatched: %d sent, %d failed, %d to retry",
                    sum(report.sent.values()),
                    sum(report.failed.values()),
                    sum(report.retrying.values()),
                    extra={"event": "dispatched", **report.as_dict()},
                )
            if not handled or self._stopping.is_set():
                return total

    def _outbox_due(self, now: datetime) -> bool:
        """A read-only look first: an idle daemon never takes the write lock just to find nothing."""
        assert self.dunning is not None
        return store.notifications_due(self.dunning.repo, now, SystemClock().now())

    def watch_rules(self) -> None:
        if not self._stopping.is_set() and self.watcher.settled_change():
            logger.info("rules changed on disk: reloading the policies")
            self.reload_policies(reason="file change")

    def read_inbound(self) -> None:
        """Read the inbound sources once (engine.replies); each message commits on its own, so a stop between
        two messages loses nothing."""
        from engine.replies import Mailroom

        assert self.dunning is not None
        with self._work:
            if self._stopping.is_set():
                return
            report = Mailroom(self.dunning).fetch(limit=INBOUND_BATCH)
        if report.processed:
            logger.info(
                "inbound: %d processed (%s), %d unmatched",
                report.processed,
                ", ".join(f"{n} {kind}" for kind, n in sorted(report.by_kind.items())),
                report.unmatched,
                extra={"event": "inbound", "processed": report.processed, "by_kind": report.by_kind},
            )

    def housekeeping(self) -> None:
        assert self.dunning is not None
        store.checkpoint(self.dunning.repo)
        depth = self.outbox_depth()
        logger.info(
            "housekeeping: outbox %s",
            ", ".join(f"{k} {v}" for k, v in depth.items()) or "empty",
            extra={"event": "housekeeping", "outbox": depth},
        )

    # -- policies ----------------------------------------------------------------------------------

    def reload_policies(self, reason: str) -> bool | None:
        """Load rules/ again. True: a new set is in force from the next sweep; False: rejected (the last
        good set stays); None: nothing changed."""
        assert self.dunning is not None
        with self._policy_lock:
            self.watcher.mark_current()
            try:
                policies = load_policies(
                    self.settings.rules_path,
                    known_channels=self.settings.channel_settings().keys(),
                    default_country=self.settings.country,
                )
            except PolicyError as exc:
                problems = [str(p) for p in exc.problems if p.severity == "error"]
                self._reject(problems, reason)
                return False
            except (OSError, UnicodeDecodeError) as exc:
                self._reject([f"{self.settings.rules_path}: cannot read the policies: {exc}"], reason)
                return False
            self.policy_rejection = None  # what is on disk is good again (changed or not)
            current = self.dunning.policies
            if policy_fingerprint(policies) == policy_fingerprint(current):
                logger.info("policies unchanged (%s)", reason)
                return None
            self.dunning.policies = policies  # the next sweep decides under the new set
            self._record_loaded(policies, reason=reason, previous=current)
            return True

    def _reject(self, problems: list[str], reason: str) -> None:
        for problem in problems:
            logger.error("%s", problem, extra={"event": "policy_problem"})
        logger.error(
            "policy change rejected (%d problem(s)); still running on the last good policies. Fix the file(s); "
            "`dunning policy check` shows the same messages",
            len(problems),
            extra={"event": "policy_rejected", "problems": problems},
        )
        self.metrics.policy_reload("rejected")
        self.policy_rejection = {
            "at": iso(self.clock.now()),
            "reason": reason,
            "rules": str(self.settings.rules_path),
            "problems": problems,
        }
        self._append_event(
            "policy_rejected", {"reason": reason, "problems": problems, "rules": str(self.settings.rules_path)}
        )

    def _record_loaded(
        self, policies: PolicySet, *, reason: str, previous: PolicySet | None = None, only_if_new: bool = False
    ) -> None:
        fingerprint = policy_fingerprint(policies)
        if only_if_new and self._last_loaded_fingerprint() == fingerprint:
            return
        changed = []
        if previous is not None:
            before = {p.name: p.hash for p in previous.policies}
            changed = [p.name for p in policies.policies if before.get(p.name) != p.hash]
            changed += [name for name in before if policies.by_name(name) is None]
        logger.info(
            "policies loaded (%s): %s; in force from the next sweep",
            reason,
            ", ".join(f"{p.name}@{p.hash[:12]}" for p in policies.policies),
            extra={"event": "policy_loaded", "changed": changed},
        )
        self.metrics.policy_reload("loaded")
        self._append_event(
            "policy_loaded",
            {
                "reason": reason,
                "fingerprint": fingerprint,
                "policies": describe_policies(policies),
                "changed": changed,
            },
        )

    def _last_loaded_fingerprint(self) -> str | None:
        assert self.dunning is not None
        return store.last_policy_fingerprint(self.dunning.repo)

    def _append_event(self, kind: str, data: dict[str, Any]) -> None:
        assert self.dunning is not None
        now = self.clock.now()
        store.record_event(self.dunning.repo, new_event(kind, at=now, recorded_at=now, data=data, actor=ACTOR))

    # -- recovery ----------------------------------------------------------------------------------

    def _recover_in_flight(self) -> int:
        """Put back at once what dead senders left `sending` (a killed daemon, `dunning dispatch` or `run`),
        instead of waiting out their lease — only when no live sender holds claims on this SQLite file
        (engine.store.senders); a live one's rows are never touched."""
        assert self.dunning is not None
        count = senders.recover_dead_claims(self.dunning.repo)
        if count is None:
            if not self._told_of_live_sender:
                logger.info(
                    "another process is sending on this database; its notifications marked sending are left to it "
                    "(those of a sender that died come free when their lease ends)",
                    extra={"event": "live_sender"},
                )
                self._told_of_live_sender = True
            return 0
        self._told_of_live_sender = False
        if count:
            logger.warning(
                "recovered %d notification(s) a dead sender left mid-send; they are sent again now (one handed "
                "to its channel just before the crash may arrive twice)",
                count,
                extra={"event": "recovered", "count": count},
            )
        return count

    def _warn_about_dst(self) -> None:
        zone = self.settings.zone
        year = self.clock.now().year
        offsets = {datetime(year, month, 1, tzinfo=zone).utcoffset() for month in (1, 7)}
        if len(offsets) > 1 and self.schedule.fires_in_hour(2, self.clock.now()):
            logger.warning(
                "schedule.sweep %r fires between 02:00 and 03:00 in %s, an hour daylight saving skips or repeats; "
                "sweeps stay correct (one per scheduled instant) but move it outside that hour to avoid surprises",
                self.schedule.expression,
                self.settings.timezone,
            )

    # -- health ------------------------------------------------------------------------------------

    def health_status(self) -> HealthStatus:
        assert self.dunning is not None
        running = bool(self.jobs and self.jobs.running) and not self._stopping.is_set()
        rejection = self.policy_rejection
        try:
            as_of, finished_at = store.health_probe(self.dunning.repo)
        except Exception as exc:
            return HealthStatus(running, False, None, None, database_error=_first_line(exc), policy_rejection=rejection)
        policies = describe_policies(self.dunning.policies)
        return HealthStatus(running, True, as_of, finished_at, policies=policies, policy_rejection=rejection)

    def outbox_depth(self) -> dict[str, int]:
        assert self.dunning is not None
        return store.outbox_depth(self.dunning.repo)

    def render_metrics(self) -> str:
        """The metrics; while the database does not answer, still served, with `dunning_database_up 0` and
        without the gauges read from it."""
        assert self.dunning is not None
        gate = self.dunning.contact_gate
        gauges: dict[str, Any] = {
            "scheduler_running": bool(self.jobs and self.jobs.running),
            "held": dict(gate.held) if gate else {},
            "policy_rejected": self.policy_rejection is not None,
        }
        try:
            gauges.update(outbox=self.outbox_depth(), last_sweep_as_of=self.dunning.latest_sweep())
        except Exception as exc:
            logger.warning(
                "metrics: the database does not answer (%s)", _first_line(exc), extra={"event": "database_down"}
            )
            gauges["database_up"] = False
        return self.metrics.render(gauges)

    def _database_label(self) -> str:
        return display_url(self.settings.database_url)


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def iter_policy_events(dunning: Dunning) -> Iterator[dict[str, Any]]:
    """The policy_loaded / policy_rejected events, oldest first."""
    for row in queries.policy_events(dunning.repo):
        yield {"kind": row["kind"], "at": iso(row["at"]), "actor": row["actor"], **(row["data"] or {})}

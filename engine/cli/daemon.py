"""`dunning daemon` (the long-running service) and `dunning policy versions` / `dunning policy events`."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.shared import app, emit_json, guarded, out, policy_app, state
from engine.clock import Clock, iso, parse_instant

__all__ = ["daemon", "policy_events", "policy_versions"]


@app.command()
def daemon(
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Run one full cycle (catch up a due sweep, send what is due, housekeeping) and exit."
        ),
    ] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", envvar="DUNNING_LOG_FORMAT", help="human or json (one JSON object per line).")
    ] = "human",
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="DUNNING_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port",
            envvar="DUNNING_HEALTH_PORT",
            help="Serve /healthz and /metrics on this port (0: any free port, logged).",
        ),
    ] = None,
    health_host: Annotated[
        str, typer.Option("--health-host", envvar="DUNNING_HEALTH_HOST", help="Address the health server binds.")
    ] = "127.0.0.1",
    web_port: Annotated[
        int | None,
        typer.Option(
            "--web-port",
            envvar="DUNNING_WEB_PORT",
            help="Also serve the web workspace and REST API on this port (as `dunning serve`; needs $DUNNING_WEB_SECRET off 127.0.0.1).",
        ),
    ] = None,
    web_host: Annotated[
        str, typer.Option("--web-host", envvar="DUNNING_WEB_HOST", help="Address the web workspace binds.")
    ] = "127.0.0.1",
    clock_start: Annotated[
        str | None,
        typer.Option(
            "--clock-start",
            envvar="DUNNING_CLOCK_START",
            help="Testing aid: run on virtual time starting at this ISO instant (a naive time is company-local).",
        ),
    ] = None,
    clock_rate: Annotated[
        float | None,
        typer.Option(
            "--clock-rate",
            envvar="DUNNING_CLOCK_RATE",
            help="Testing aid: virtual seconds per real second (e.g. 3600: an hour per second).",
        ),
    ] = None,
) -> None:
    """Run the service: scheduled sweeps, outbox dispatch, hot-reloaded policies, /healthz and /metrics.

    Signals: SIGTERM/SIGINT stop cleanly (in-flight sends finish), SIGHUP reloads the policies.
    """
    from engine.service.daemon import Daemon, configure_logging

    def action() -> int:
        configure_logging(log_format, log_level)
        settings = state.settings()
        clock = _clock(clock_start, clock_rate, settings.zone)
        servers = []
        if web_port is not None:
            from engine.web.server import serve_in_background

            servers.append(functools.partial(serve_in_background, settings, web_host, web_port))
        service = Daemon(settings, clock=clock, health_host=health_host, health_port=health_port, servers=servers)
        if once:
            report = service.run_once()
            if report.swept_as_of is None:
                out.print("no scheduled sweep was due", markup=False)
            else:
                assert report.sweep is not None
                out.print(
                    f"swept as of {iso(report.swept_as_of)}: {report.sweep.transitions} transition(s), "
                    f"{sum(report.sweep.notifications.values())} notification(s) queued",
                    markup=False,
                )
            d = report.dispatch
            out.print(
                f"dispatched: {sum(d.sent.values())} sent, {sum(d.failed.values())} failed, "
                f"{sum(d.retrying.values())} to retry",
                markup=False,
            )
            return 0
        return service.run()

    code = guarded(action)
    if code:
        raise typer.Exit(code)


def _clock(start: str | None, rate: float | None, zone: Any) -> Clock | None:
    if start is None and rate is None:
        return None
    from datetime import datetime, timezone

    from engine.service.daemon import ScaledClock

    begin = parse_instant(start, zone) if start else datetime.now(timezone.utc)
    return ScaledClock(begin, rate or 1.0, running=False)  # the daemon starts it when its jobs are ready


@policy_app.command("versions")
def policy_versions(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON, including each version's full text.")] = False,
) -> None:
    """Every policy version ever in force: name, SHA-256, file, and when it took effect (its first sweep)."""
    from engine.service.daemon import iter_policy_events
    from engine.store.queries import policy_versions as stored_versions

    def action() -> None:
        dunning = state.reader()
        rows = stored_versions(dunning.repo)
        loaded: dict[str, str] = {}
        for event in iter_policy_events(dunning):
            if event["kind"] == "policy_loaded":
                for policy in event.get("policies", []):
                    loaded.setdefault(policy.get("sha256", ""), event["at"])
        versions = [
            {
                "name": r["name"],
                "sha256": r["sha256"],
                "path": r["path"],
                "took_effect_at": iso(r["first_used_at"]),
                "loaded_at": loaded.get(r["sha256"]),
                "text": r["text"],
            }
            for r in rows
        ]
        if json_out:
            emit_json(versions)
            return
        table = Table(title=f"{len(versions)} policy version(s)")
        for column in ("policy", "sha256", "took effect", "loaded by the daemon", "file"):
            table.add_column(column)
        for v in versions:
            table.add_row(v["name"], v["sha256"][:16], v["took_effect_at"] or "", v["loaded_at"] or "", v["path"])
        out.print(table)

    guarded(action)


@policy_app.command("events")
def policy_events(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Policy reloads by the daemon: changes loaded, and rejected edits with their problems."""
    from engine.service.daemon import iter_policy_events

    def action() -> None:
        events = list(iter_policy_events(state.reader()))
        if json_out:
            emit_json(events)
            return
        for event in events:
            if event["kind"] == "policy_loaded":
                names = ", ".join(f"{p['name']}@{p['sha256'][:12]}" for p in event.get("policies", []))
                out.print(f"{event['at']}  loaded ({event.get('reason')}): {names}", markup=False)
            else:
                out.print(f"{event['at']}  rejected ({event.get('reason')}):", markup=False)
                for problem in event.get("problems", []):
                    out.print(f"    {problem}", markup=False)

    guarded(action)

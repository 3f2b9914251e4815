"""Reports, the audit log, the policies, and the background simulations and policy diffs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.app import json_ready
from engine.clock import iso, local_day
from engine.errors import DunningError
from engine.spreadsheet import SafeDictWriter
from engine.store import browse
from engine.web.api.common import AUTH, FOUND, Item, Page, Responses, page, reader
from engine.web.auth import WebUser, api_user
from engine.web.jobs import JobBook, policy_diff, simulation
from engine.web.services import dunning, require

router = APIRouter()


class BadOption(DunningError):
    pass


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadOption(f"{option} {text!r} is not an ISO date; write e.g. 2026-03-31") from None


# -- reports -------------------------------------------------------------------------------------------------


@router.get("/reports/{name}", response_model=Item, responses={**AUTH}, tags=["reports"])
def report(
    request: Request,
    name: Literal["aging", "kpis", "effectiveness", "owners", "forecast"],
    as_of: str | None = Query(None, max_length=10, description="The day the report describes (default: today)."),
    from_: str | None = Query(None, alias="from", max_length=10, description="kpis/owners: first day of the period."),
    buckets: str | None = Query(None, max_length=100, description="aging: upper bounds in days, e.g. 30,60,90,180."),
    weeks: int = Query(8, ge=1, le=52, description="forecast: weeks ahead."),
    user: WebUser = Depends(reader),
) -> dict[str, Any]:
    """`dunning report NAME --json` with the CLI's options as query parameters."""
    from engine.reports.figures import build, load_book, parse_buckets

    app = dunning(request)
    day = _date(as_of, "--as-of") or local_day(app.clock.now(), app.settings.zone)
    since = _date(from_, "--from")
    chosen = parse_buckets(buckets)
    book = load_book(app.repo, app.settings.zone, day, app.stage_order())
    return json_ready(build(name, book, since=since, buckets=chosen, weeks=weeks))


# -- audit ---------------------------------------------------------------------------------------------------


@router.get("/audit/verify", response_model=Item, responses={**AUTH}, tags=["audit"])
def audit_verify(
    request: Request, expect_head: str | None = Query(None, max_length=64), user: WebUser = Depends(reader)
) -> dict[str, Any]:
    """`dunning audit verify --json`: the hash chain recomputed; `ok` false names the first bad event."""
    from engine.store.events import verify_chain

    with dunning(request).repo.read() as session:
        report_ = verify_chain(session.connection(), expect_head)
    problem = report_.problem
    return {
        "ok": report_.ok,
        "events": report_.events,
        "head": report_.head,
        "first_bad_event": problem.event_id if problem else None,
        "position": problem.position if problem else None,
        "reason": problem.reason if problem else None,
    }


@router.get(
    "/audit/export",
    responses={**AUTH, 200: {"content": {"text/csv": {}, "application/jsonl": {}}}},
    tags=["audit"],
    response_class=StreamingResponse,
)
def audit_export(
    request: Request,
    format: Literal["csv", "jsonl"] = "jsonl",
    from_: str | None = Query(None, alias="from", max_length=10),
    to: str | None = Query(None, max_length=10),
    customer: str | None = Query(None, max_length=64),
    stage: str | None = Query(None, max_length=64),
    channel: str | None = Query(None, max_length=64),
    actor: str | None = Query(None, max_length=64),
    kind: str | None = Query(None, max_length=64),
    user: WebUser = Depends(reader),
) -> StreamingResponse:
    """`dunning audit export` as a download (CSV cells that would start a formula get a leading apostrophe)."""
    from engine.store.events import EXPORT_COLUMNS, ExportFilter, export_events

    app = dunning(request)
    filters = ExportFilter(
        since=_date(from_, "--from"),
        until=_date(to, "--to"),
        customer=customer,
        stage=stage,
        channel=channel,
        actor=actor,
        kind=kind,
    )

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = SafeDictWriter(buffer, fieldnames=EXPORT_COLUMNS) if format == "csv" else None
        if writer is not None:
            writer.writeheader()
        with app.repo.read() as session:
            for record in export_events(session.connection(), filters, app.settings.zone):
                if writer is not None:
                    writer.writerow(record)
                else:
                    buffer.write(json.dumps(record, ensure_ascii=False) + "\n")
                if buffer.tell() > 64_000:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    media = "text/csv; charset=utf-8" if format == "csv" else "application/jsonl; charset=utf-8"
    return StreamingResponse(
        lines(), media_type=media, headers={"Content-Disposition": f'attachment; filename="audit-export.{format}"'}
    )


# -- policies ------------------------------------------------------------------------------------------------


def _policy_json(policy: Any) -> dict[str, Any]:
    return {
        "name": policy.name,
        "sha256": policy.hash,
        "path": policy.source.path if policy.source else None,
        "applies_to": policy.applies_to.source
        if policy.applies_to is not None and hasattr(policy.applies_to, "source")
        else None,
        "default": policy.is_default,
        "days": str(getattr(policy.days, "value", policy.days)),
        "description": policy.description,
        "stages": [
            {
                "name": s.name,
                "after_days": s.after_days,
                "channels": list(s.channels),
                "approval_required": s.approval_required,
            }
            for s in policy.stages
        ],
        "text": policy.source.text if policy.source else None,
    }


@router.get("/policies", response_model=Page, responses={**AUTH}, tags=["policies"])
def policies(request: Request, user: WebUser = Depends(reader)) -> JSONResponse:
    """The policies in force, in evaluation order (the default last), with their stages and text."""
    from engine.policy.loader import load_policies

    settings = dunning(request).settings
    loaded = load_policies(
        settings.rules_path, known_channels=settings.channel_settings().keys(), default_country=settings.country
    )
    return page([_policy_json(p) for p in loaded.policies], 10**9, None)


@router.get("/policies/check", response_model=Page, responses={**AUTH}, tags=["policies"])
def policies_check(request: Request, user: WebUser = Depends(reader)) -> JSONResponse:
    """`dunning policy check --format json`: every problem (errors and warnings) with line and column."""
    from engine.policy.loader import check_policies

    settings = dunning(request).settings
    problems = check_policies(settings.rules_path, known_channels=settings.channel_settings().keys())
    return page(
        [
            {"file": p.file, "line": p.line, "column": p.column, "severity": p.severity, "message": p.message}
            for p in problems
        ],
        10**9,
        None,
    )


@router.get("/policies/versions", response_model=Page, responses={**AUTH}, tags=["policies"])
def policies_versions(request: Request, user: WebUser = Depends(reader)) -> JSONResponse:
    """`dunning policy versions --json`: every policy text ever in force and when it took effect."""
    rows = browse.policy_versions(dunning(request).repo)
    return page(
        [
            {
                "name": r["name"],
                "sha256": r["sha256"],
                "path": r["path"],
                "took_effect_at": iso(r["first_used_at"]),
                "text": r["text"],
            }
            for r in rows
        ],
        10**9,
        None,
    )


# -- background jobs -----------------------------------------------------------------------------------------

PolicyFiles = Field(None, description="Edited policy files (name → YAML text) laid over the configured rules.")


class SimulationRequest(BaseModel):
    """`dunning simulate`'s options."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(None, alias="from", max_length=10)
    to: str | None = Field(None, max_length=10)
    payments_model: Literal["none", "historical"] = "none"
    seed: int = Field(0, ge=0, le=2**31)
    window: int = Field(14, ge=1, le=3650)
    at: str = Field("09:00", max_length=8)
    by: Literal["day", "week"] | None = None
    files: dict[str, str] | None = PolicyFiles


class PolicyDiffRequest(BaseModel):
    """`dunning policy diff`'s options; the edited policies are `files`, compared with the configured rules."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, str] = Field(..., min_length=1, description="Edited policy files (name → YAML text).")
    as_of: str | None = Field(None, max_length=40)
    horizon: int = Field(90, ge=1, le=3650)
    at: str = Field("09:00", max_length=8)


def jobs(request: Request) -> JobBook:
    book = getattr(request.app.state, "jobs", None)
    if book is None:
        book = request.app.state.jobs = JobBook()
    return book


def _started(request: Request, job: Any, collection: str) -> JSONResponse:
    url = f"{request.scope.get('root_path', '')}/api/v1/{collection}/{job.id}"
    return JSONResponse(job.as_dict() | {"url": url}, status_code=202, headers={"Location": url})


JOB_STARTED: Responses = {
    202: {
        "description": "Started; GET the Location for progress and the result",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("/simulations", status_code=202, responses={**AUTH, **JOB_STARTED}, tags=["policies"], response_model=Item)
def start_simulation(
    request: Request, body: SimulationRequest | None = None, user: WebUser = Depends(api_user)
) -> JSONResponse:
    """Start `dunning simulate --json` in the background (nothing is written or sent)."""
    require(request, user, "policy_jobs", subject="a simulation")
    options = (body or SimulationRequest.model_validate({})).model_dump(by_alias=True, exclude_none=True)
    app = dunning(request)
    job = jobs(request).start(
        "simulation",
        user.name,
        app.clock.now(),
        {k: v for k, v in options.items() if k != "files"},
        simulation(app, options),
    )
    return _started(request, job, "simulations")


@router.post(
    "/policy-diffs", status_code=202, responses={**AUTH, **JOB_STARTED}, tags=["policies"], response_model=Item
)
def start_policy_diff(request: Request, body: PolicyDiffRequest, user: WebUser = Depends(api_user)) -> JSONResponse:
    """Start `dunning policy diff --json` (configured rules vs. the edited files) in the background."""
    require(request, user, "policy_jobs", subject="a policy diff")
    options = body.model_dump(exclude_none=True)
    app = dunning(request)
    job = jobs(request).start(
        "policy-diff",
        user.name,
        app.clock.now(),
        {k: v for k, v in options.items() if k != "files"} | {"files": sorted(body.files)},
        policy_diff(app, options),
    )
    return _started(request, job, "policy-diffs")


JobId = Path(..., min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")


@router.get("/simulations/{job_id}", response_model=Item, responses={**AUTH, **FOUND}, tags=["policies"])
def simulation_status(request: Request, job_id: str = JobId, user: WebUser = Depends(reader)) -> dict[str, Any]:
    """The job's status (queued, running, done, failed), elapsed time and, when done, the CLI's JSON result."""
    return jobs(request).get(job_id, "simulation").as_dict()


@router.get("/policy-diffs/{job_id}", response_model=Item, responses={**AUTH, **FOUND}, tags=["policies"])
def policy_diff_status(request: Request, job_id: str = JobId, user: WebUser = Depends(reader)) -> dict[str, Any]:
    """The job's status, elapsed time and, when done, `dunning policy diff --json`'s result."""
    return jobs(request).get(job_id, "policy-diff").as_dict()

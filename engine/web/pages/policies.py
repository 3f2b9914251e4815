"""The policies page: the files, `policy check` problems with line and column, every version ever used with
its text, and the simulate / diff forms (background jobs of engine.web.jobs; the result appears when done)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from engine.app import json_ready
from engine.errors import DunningError
from engine.policy.loader import check_policies
from engine.store import workspace
from engine.web.api.insight import jobs
from engine.web.auth import WebUser, page_user, verified_form
from engine.web.jobs import policy_diff, simulation
from engine.web.pages.common import app_of
from engine.web.pages.render import back, render
from engine.web.problems import status_for
from engine.web.services import require

router = APIRouter()
KINDS = {"simulation": "simulation", "policy-diff": "policy-diff"}


def policy_files(folder: Path) -> list[dict[str, str]]:
    if not folder.is_dir():
        return []
    return [
        {"name": f.name, "text": f.read_text(encoding="utf-8", errors="replace")}
        for f in sorted(folder.iterdir())
        if f.is_file() and f.suffix in (".yaml", ".yml")
    ]


@router.get("/policies", response_class=HTMLResponse)
def policies(request: Request, version: int | None = None, user: WebUser = Depends(page_user)) -> HTMLResponse:
    dunning = app_of(request)
    folder = dunning.settings.rules_path
    problems = check_policies(folder, known_channels=dunning.settings.channel_settings().keys())
    for problem in problems:  # show paths relative to the rules folder, as the files are listed
        try:
            object.__setattr__(problem, "file", str(Path(problem.file).resolve().relative_to(folder.resolve())))
        except (ValueError, OSError):
            pass
    shown = workspace.policy_version(dunning.repo, version) if version is not None else None
    return render(
        request,
        "policies.html",
        user=user,
        files=policy_files(folder),
        problems=problems,
        versions=workspace.policy_versions(dunning.repo),
        shown=shown,
        zone=dunning.settings.zone,
    )


def _edited(form: FormData) -> dict[str, str]:
    """The one edited policy file of the form (`file` names it, `text` is its new text)."""
    name, text = str(form.get("file") or "").strip(), str(form.get("text") or "")
    return {name: text} if name and text.strip() else {}


@router.post("/policies/simulate", response_class=HTMLResponse)
def start_simulation(
    request: Request, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    """Start a simulation job (the API's), then show its page; it refreshes itself until the result is in."""
    dunning = app_of(request)
    options: dict[str, Any] = {
        k: str(form[k]).strip() for k in ("from", "to", "payments_model", "at") if str(form.get(k) or "").strip()
    }
    if _edited(form):
        options["files"] = _edited(form)
    try:
        require(request, user, "policy_jobs", subject="a simulation")
        job = jobs(request).start(
            "simulation",
            user.name,
            dunning.clock.now(),
            {k: v for k, v in options.items() if k != "files"},
            simulation(dunning, options),
        )
    except DunningError as exc:
        return render(request, "error.html", user=user, status=status_for(exc), message=str(exc), next="/policies")
    return back(request, f"/policies/jobs/simulation/{job.id}", "/policies")


@router.post("/policies/diff", response_class=HTMLResponse)
def start_diff(
    request: Request, user: WebUser = Depends(page_user), form: FormData = Depends(verified_form)
) -> Response:
    """Start a policy diff job: the configured rules against them with the edited file laid over."""
    dunning = app_of(request)
    options: dict[str, Any] = {
        k: str(form[k]).strip() for k in ("as_of", "horizon", "at") if str(form.get(k) or "").strip()
    }
    options["files"] = _edited(form)
    try:
        require(request, user, "policy_jobs", subject="a policy diff")
        shown = {k: v for k, v in options.items() if k != "files"} | {"files": sorted(options["files"])}
        job = jobs(request).start("policy-diff", user.name, dunning.clock.now(), shown, policy_diff(dunning, options))
    except (DunningError, ValueError) as exc:
        message = str(exc)
        status = status_for(exc) if isinstance(exc, DunningError) else 422
        return render(request, "error.html", user=user, status=status, message=message, next="/policies")
    return back(request, f"/policies/jobs/policy-diff/{job.id}", "/policies")


@router.get("/policies/jobs/{kind}/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, kind: str, job_id: str, user: WebUser = Depends(page_user)) -> HTMLResponse:
    """A job's progress; while it runs the page reloads itself every 2 s, then shows the result."""
    try:
        if kind not in KINDS or not job_id.isalnum():
            raise KeyError(kind)
        job = jobs(request).get(job_id, KINDS[kind]).as_dict()
    except (DunningError, KeyError):
        return render(
            request, "error.html", user=user, status=404, message="no such job; start it again", next="/policies"
        )
    text = json.dumps(json_ready(job["result"]), indent=2, ensure_ascii=False) if job["result"] is not None else ""
    return render(request, "job.html", user=user, job=job, kind=kind, result_text=text)

"""The policies page: the files, `policy check` problems with line and column, every version ever used with
its text, and the simulate / diff forms (background jobs of engine.web.jobs; the result appears when done)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from engine.policy.loader import check_policies
from engine.store import workspace
from engine.web.auth import WebUser, page_user
from engine.web.pages.common import app_of
from engine.web.pages.render import render

router = APIRouter()


def policy_files(folder: Path) -> list[dict[str, str]]:
    if not folder.is_dir():
        return []
    return [{"name": f.name, "text": f.read_text(encoding="utf-8", errors="replace")}
            for f in sorted(folder.iterdir()) if f.is_file() and f.suffix in (".yaml", ".yml")]


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
    return render(request, "policies.html", user=user, files=policy_files(folder), problems=problems,
                  versions=workspace.policy_versions(dunning.repo), shown=shown, zone=dunning.settings.zone)

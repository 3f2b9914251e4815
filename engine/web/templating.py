"""The Jinja environment of the web pages, shared by the login page and engine.web.pages.

`render(request, name, **context)` adds what every page needs: the user (if any), the CSRF token, the
root path for links behind a reverse proxy, and `layout` (web-pages' base.html once it exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from engine.web.auth import csrf_token

TEMPLATES = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))


def layout() -> str:
    return "base.html" if (TEMPLATES / "base.html").is_file() else "plain.html"


def render(
    request: Request, name: str, status_code: int = 200, *, headers: dict[str, str] | None = None, **context: Any
) -> Response:
    context.setdefault("user", getattr(request.state, "user", None))
    context.update(
        request=request, csrf_token=csrf_token(request), root=request.scope.get("root_path", ""), layout=layout()
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)

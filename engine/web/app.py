"""The FastAPI application of the web workspace: the REST API under /api/v1, the pages, the login page.

    app = create_app(load_settings())           # DUNNING_WEB_SECRET signs the session cookies
    uvicorn.run(app, host="127.0.0.1", port=8080)

One `Dunning` facade per application (`app.state.dunning`): its repository's connection pool serves every
request. Handlers are plain functions, run in Starlette's thread pool, so a request waiting for SQLite's
write lock holds a worker thread, never the event loop — except the few reads whose work is small and
bounded (the authentication dependencies, one page of the invoice list, one invoice, the worklist and invoice
pages): they are `async def` and run on the event loop itself. A read never waits for a lock (SQLite's WAL),
and on two cores ten threads taking turns on the GIL, each hopping through the pool for every dependency,
cost a worker more than the reads themselves: 264 → 349 requests/s and about a fifth less CPU per request
in `benchmarks/web.py`. A handler that may write, scan the whole book or wait stays a plain function.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.app import Dunning
from engine.clock import Clock
from engine.config import Settings
from engine.errors import ConfigError
from engine.store.database import Repository
from engine.web import auth, problems
from engine.web.auth import LoginRequired
from engine.web.problems import ApiProblem
from engine.web.settings import SECRET_ENV
from engine.web.templating import render

API_PREFIX = "/api/v1"
SESSION_COOKIE = "dunning_session"
STATIC = Path(__file__).resolve().parent / "static"
MIN_SECRET_LENGTH = 32
#: How long a web write waits for SQLite's write lock (a sweeping daemon holds it) before answering 503.
WRITE_WAIT_SECONDS = 5.0


def create_app(
    settings: Settings,
    *,
    root_path: str = "",
    secret: str | None = None,
    dunning: Dunning | None = None,
    clock: Clock | None = None,
    jobs_folder: Path | None = None,
) -> FastAPI:
    """The application. `secret` (default `$DUNNING_WEB_SECRET`) signs session cookies; `dunning` lets
    tests hand in their own facade (e.g. with a fixed clock), `clock` the daemon its clock; `jobs_folder` is
    the folder the worker processes of one server share their background jobs through."""
    secret = secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise ConfigError(
            f"${SECRET_ENV} is not set; set it to a long random value (e.g. `openssl rand -hex 32`) "
            "so session cookies can be signed"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"${SECRET_ENV} is too short ({len(secret)} characters); use at least "
            f"{MIN_SECRET_LENGTH}, e.g. `openssl rand -hex 32`"
        )
    root_path = root_path.rstrip("/")
    app = FastAPI(
        title="dunning",
        version="1",
        description="The REST API of the dunning collections engine. Authenticate with `Authorization: Bearer "
        "TOKEN` (`dunning users token NAME`) or the session cookie of /login.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.dunning = dunning or Dunning(
        settings,
        clock=clock,
        repo=Repository.open(
            settings.database_url, busy_seconds=min(settings.database_busy_seconds, WRITE_WAIT_SECONDS)
        ),
    )
    if jobs_folder is not None:
        from engine.web.jobs import JobBook

        app.state.jobs = JobBook(jobs_folder)
    web = app.state.dunning.settings.web
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=int(web.session_max_hours * 3600),
        path=root_path or "/",
        same_site="lax",
        https_only=bool(web.public_url and web.public_url.startswith("https://")),
    )
    app.add_middleware(SecurityHeaders)
    if root_path:
        app.add_middleware(RootPath, root_path=root_path)
    problems.install(app)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"{root_path}/login?next={quote(exc.next_url, safe='/')}", status_code=303)

    from engine.web.api import router as api_router

    app.include_router(api_router, prefix=API_PREFIX)
    _login_routes(app)
    _document_security(app)
    if importlib.util.find_spec("engine.web.pages") is not None:
        from engine.web.pages import router as pages_router  # type: ignore[import-not-found,unused-ignore]

        app.include_router(pages_router, include_in_schema=False)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


class SecurityHeaders:
    """Headers every answer carries: no MIME sniffing, no framing by other sites (clickjacking on the action
    buttons), no full URLs (customer links!) leaked in Referer to other sites."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


class RootPath:
    """Tell the application the path prefix a reverse proxy serves it under (links, redirects, the cookie
    path and the OpenAPI `servers` follow it), unless the server already said (uvicorn --root-path)."""

    def __init__(self, app: ASGIApp, root_path: str):
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            scope = {**scope, "root_path": self.root_path}
        await self.app(scope, receive, send)


def _document_security(app: FastAPI) -> None:
    """The OpenAPI document names the bearer token (and the session cookie) as the way in; healthz needs none."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "`dunning users token NAME`"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "the cookie of POST /login; writes also send X-CSRF-Token",
                },
                "inbound_signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Dunning-Signature",
                    "description": "the inbound webhook only: sha256=<hex HMAC-SHA256($DUNNING_INBOUND_SECRET, "
                    '"<X-Dunning-Timestamp>." + body)>',
                },
            }
            schema["security"] = [{"bearer": []}, {"session": []}]
            schema["paths"][f"{API_PREFIX}/healthz"]["get"]["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site (never `//host` or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_routes(app: FastAPI) -> None:
    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        return render(request, "login.html", next_url=safe_next(next), error=None, username=None)

    @app.post("/login", include_in_schema=False)
    def login_submit(request: Request, form: FormData = Depends(auth.verified_form)) -> Response:
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        target = safe_next(str(form.get("next") or "/"))
        try:
            auth.login(request, username, password)
        except ApiProblem as problem:
            return render(
                request,
                "login.html",
                status_code=problem.status,
                next_url=target,
                error=problem.detail,
                username=username,
                headers=problem.headers,
            )
        root = request.scope.get("root_path", "")
        return RedirectResponse(root + target, status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, form: FormData = Depends(auth.verified_form)) -> Response:
        auth.logout(request)
        return RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)


__all__ = ["API_PREFIX", "create_app", "safe_next"]

"""RFC 9457 problem details: every error of the API is `application/problem+json`.

`detail` is the message the CLI prints for the same case. The status follows what went wrong:

    401  no valid credentials            ApiProblem from engine.web.auth
    422  bad input                       request validation, ActionRefused, TaskRefused, other DunningErrors
    404  unknown invoice/customer/...    NotFound
    403  the role or owner scope forbids PermissionRefused (and a wrong CSRF token)
    409  an illegal state move           IllegalTransition
    503  the database's write lock       DatabaseBusy (a write waited and gave up; Retry-After says when)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import DatabaseBusy, DunningError, IllegalTransition, NotFound, PermissionRefused
from engine.store.browse import is_database_busy

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("dunning.web")
BUSY_RETRY_SECONDS = 2
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Unprocessable content",
    429: "Too many requests",
    503: "Service unavailable",
}

#: The OpenAPI description of a problem response, for the routes' `responses=`.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["title", "status", "detail"],
}


class ApiProblem(Exception):
    """An error answer with its status; raise it from handlers and dependencies."""

    def __init__(self, status: int, title: str, detail: str, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title or TITLES.get(status, "Error"), "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {}))


def status_for(exc: DunningError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, PermissionRefused):
        return 403
    if isinstance(exc, IllegalTransition):
        return 409
    if isinstance(exc, DatabaseBusy):
        return 503
    return 422


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem response."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, title=exc.title, instance=request.url.path, headers=exc.headers)

    @app.exception_handler(DunningError)
    async def _dunning_error(request: Request, exc: DunningError) -> JSONResponse:
        status = status_for(exc)
        headers = {"Retry-After": str(BUSY_RETRY_SECONDS)} if status == 503 else None
        return problem_response(status, str(exc), instance=request.url.path, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, _validation_detail(exc), instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        return problem_response(exc.status_code, detail, instance=request.url.path, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_database_busy(exc):
            return problem_response(
                503,
                "the database is busy with another writer (a sweep?); try again in a moment",
                instance=request.url.path,
                headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
            )
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "an unexpected error; the server log has the details", instance=request.url.path)

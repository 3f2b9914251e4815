"""The REST API (`/api/v1`): one router per area, put together here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from engine.web.api import book, credit, inbound, insight
from engine.web.api.common import AUTH, Item
from engine.web.auth import REQUIRED_ROLE, WebUser, api_user, csrf_token, permits

router = APIRouter()


@router.get("/healthz", response_model=Item, tags=["system"])
def healthz(request: Request) -> dict[str, Any]:
    """Is the server up and its database reachable? Needs no credentials."""
    app = request.app.state.dunning
    from engine.store.browse import last_event_id

    last_event_id(app.repo)
    return {"status": "ok"}


@router.get("/me", response_model=Item, responses=AUTH, tags=["system"])
def me(request: Request, user: WebUser = Depends(api_user)) -> dict[str, Any]:
    """The signed-in user, their role and what that role allows (owner-scoped actions: own customers only).
    Signed in by the session cookie, it also gives the session's `csrf_token` for the X-CSRF-Token header."""
    found = {
        "name": user.name,
        "role": user.role.label,
        "language": user.language,
        "may": sorted(a for a in REQUIRED_ROLE if permits(user, a, owner=user.name)),
    }
    if request.session.get("user"):
        found["csrf_token"] = csrf_token(request)
    return found


router.include_router(book.router)
router.include_router(insight.router)
router.include_router(credit.router)
router.include_router(inbound.router)

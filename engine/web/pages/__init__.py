"""The web workspace's pages (issue 12): server-rendered, English and 简体中文, one module per page.

`router` is included at `/` by engine.web.app. Every page needs a logged-in user (engine.web.auth.page_user)
except the customer view (`/c/<signed link>`); every form posts to engine.web.pages.acting and acts through
engine.web.services.
"""

from __future__ import annotations

from fastapi import APIRouter

from engine.web.pages import (
    acting,
    approvals,
    audit,
    customer,
    customer_view,
    dashboard,
    inbound,
    invoice,
    outbox,
    policies,
    worklist,
)

router = APIRouter(include_in_schema=False)
for _module in (
    dashboard,
    worklist,
    invoice,
    customer,
    approvals,
    outbox,
    inbound,
    audit,
    policies,
    customer_view,
    acting,
):
    router.include_router(_module.router)

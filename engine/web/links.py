"""Signed customer links for the web layer: see engine.links (kept outside engine.web so rendering, which the
facade drives, needs nothing of the web workspace)."""

from __future__ import annotations

from engine.links import (
    LINK_SECRET_ENV,
    MIN_SECRET_BYTES,
    PURPOSE,
    customer_link,
    link_maker,
    link_secret,
    sign,
    verify,
)

__all__ = [
    "LINK_SECRET_ENV",
    "MIN_SECRET_BYTES",
    "PURPOSE",
    "customer_link",
    "link_maker",
    "link_secret",
    "sign",
    "verify",
]

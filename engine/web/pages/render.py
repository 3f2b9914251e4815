"""Rendering a page: the Jinja2 environment, the per-request context (language, user, CSRF token, what the
role allows) and the safety headers every page carries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from engine.web.auth import WebUser, csrf_token, permits
from engine.web.i18n import LANGUAGE_NAMES, choose_language, translator


class Stencil:
    """HTML that a page repeats in every row but for a few values, written once by the template with a
    stand-in `<name>` for each value and filled in row by row, every value escaped: a table's forms cost a
    fraction of writing them out per row. No text on the page can pass for a stand-in, as the template
    escapes everything it writes into the HTML and a "<" never survives escaping."""

    def __init__(self, html: Markup, *names: str):
        if not isinstance(html, Markup):
            raise TypeError("a stencil is made of a template's escaped HTML (a {% set %} block), not of text")
        parts = re.split("<(" + "|".join(re.escape(name) for name in names) + ")>", str(html))
        self._texts, self._names = parts[0::2], parts[1::2]

    def fill(self, **values: Any) -> Markup:
        escaped = {name: escape(value) for name, value in values.items()}
        filled = [self._texts[0]]
        for name, text in zip(self._names, self._texts[1:], strict=True):
            filled += (escaped[name], text)
        return Markup("".join(filled))


TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals["stencil"] = Stencil
#: Pages render server-side and load their script and styles from /static only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def trusted_html(text: str) -> Markup:
    """Markup the pages build themselves (the charts: every value in them is escaped where it is drawn)."""
    return Markup(text)


def language_of(request: Request, user: WebUser | None, preferred: str | None = None) -> str:
    """The user's setting (or, for the customer page, the customer's), else Accept-Language, else English."""
    setting = user.language if user is not None else preferred
    return choose_language(setting, request.headers.get("accept-language"))


def wants_fragment(request: Request) -> bool:
    """A form sent by the page's script (it stays on the page and shows the answer in place)."""
    return request.headers.get("x-requested-with") == "fetch"


def root_of(request: Request) -> str:
    """The path the workspace is served under ("" at the site's root), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    *,
    user: WebUser | None,
    status: int = 200,
    language: str | None = None,
    **context: Any,
) -> HTMLResponse:
    lang = language or language_of(request, user)
    t = translator(lang)
    root = root_of(request)

    def can(action: str, owner: str | None = None) -> bool:
        return user is not None and permits(user, action, owner=owner)

    values = {
        "_": t.gettext,
        "ngettext": t.ngettext,
        "t": t,
        "lang": lang,
        "languages": LANGUAGE_NAMES,
        "user": user,
        "csrf": csrf_token(request),
        "can": can,
        "root": root,
        "path": request.url.path,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    }
    body = ENV.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, "Content-Language": lang})


def safe_next(target: str | None, default: str) -> str:
    """Where to go after a form: a path on this site only (no scheme, no host, no `//`)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def back(request: Request, target: str | None, default: str) -> RedirectResponse:
    root = root_of(request)
    path = safe_next(target, default)
    if root and not path.startswith(root + "/"):
        path = root + path
    return RedirectResponse(path, status_code=303)

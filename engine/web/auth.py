"""Who is asking, and may they: roles, passwords, API tokens, sessions, CSRF and the login rate limit.

- Passwords are argon2 hashes; API tokens are random (`dk_…`), printed once and stored as their SHA-256.
- A browser session is a signed (itsdangerous, via Starlette's SessionMiddleware), HttpOnly, SameSite=Lax
  cookie holding the user name, the account's `generation`, the login instant and the last-seen instant.
  It ends after `web.session_idle_minutes` without a request and `web.session_max_hours` after login; a
  password change, a role change or disabling the account bumps the generation and ends it at once.
- Every request looks the account (or the token) up again, so `dunning users disable|revoke` takes effect
  immediately in every running server.
- Every form carries `csrf_token` (one per session); a POST without the right one is refused with 403. An
  API write authenticated by the session cookie must send the same token in the `X-CSRF-Token` header.
- Failed logins are counted in the security log (so every server sharing the database agrees): more than
  `MAX_FAILURES_PER_USER` for one user name or `MAX_FAILURES_PER_ADDRESS` from one address within
  `FAILURE_WINDOW` answers 429 until the window has passed.

`permits` is THE role table; the API, the pages and the tests all read it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request
from starlette.datastructures import FormData

from engine.errors import AccountError
from engine.store import users as accounts
from engine.web.problems import ApiProblem

TOKEN_PREFIX = "dk_"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
#: A token's use is written to the security log at most this often (a write per API call would compete
#: with the daemon for SQLite's one write lock).
TOKEN_LOG_EVERY = timedelta(minutes=10)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_hasher = PasswordHasher()


class Role(enum.IntEnum):
    """Each role may do everything the ones below it may."""

    VIEWER = 1
    COLLECTOR = 2
    MANAGER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise AccountError(f"unknown role {text!r}; use one of: {', '.join(r.label for r in cls)}") from None


@dataclass(frozen=True)
class WebUser:
    name: str
    role: Role
    language: str | None = None


#: The least role each action needs.
REQUIRED_ROLE: dict[str, Role] = {
    "read": Role.VIEWER,
    "note": Role.COLLECTOR,
    "promise": Role.COLLECTOR,
    "plan": Role.COLLECTOR,
    "dispute": Role.COLLECTOR,
    "task_done": Role.COLLECTOR,
    "ack_warning": Role.COLLECTOR,
    "inbound_assign": Role.COLLECTOR,
    "inbound_confirm": Role.COLLECTOR,
    "resolve": Role.MANAGER,
    "approve": Role.MANAGER,
    "move": Role.MANAGER,
    "write-off": Role.MANAGER,
    "retry": Role.MANAGER,
    "policy_jobs": Role.MANAGER,
    "users": Role.ADMIN,
}
#: Actions a collector may take only on invoices (and tasks) of customers they own.
OWNER_SCOPED = frozenset(
    {"note", "promise", "plan", "dispute", "task_done", "ack_warning", "inbound_assign", "inbound_confirm"}
)
ACTIONS = tuple(REQUIRED_ROLE)


def permits(user: WebUser, action: str, *, owner: str | None = None) -> bool:
    """May `user` do `action` (on an invoice or task whose customer's owner is `owner`)?"""
    needed = REQUIRED_ROLE.get(action)
    if needed is None:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if user.role < needed:
        return False
    if user.role == Role.COLLECTOR and action in OWNER_SCOPED:
        return owner is not None and owner == user.name
    return True


# -- secrets -------------------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AccountError("the password is too short; use at least 8 characters")
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- requests ------------------------------------------------------------------------------------------------


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _now(request: Request) -> datetime:
    return request.app.state.dunning.clock.now()


def _repo(request: Request) -> Any:
    return request.app.state.dunning.repo


def _settings(request: Request) -> Any:
    return request.app.state.dunning.settings.web


def unauthorized(
    detail: str = "sign in first: send `Authorization: Bearer TOKEN` (dunning users token NAME) or log in at /login",
) -> ApiProblem:
    return ApiProblem(401, "Not authenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def session_user(request: Request) -> WebUser | None:
    """The user of a live session cookie, or None (an expired or outdated session is cleared)."""
    session = request.session
    name = session.get("user")
    if not name:
        return None
    now = _now(request).timestamp()
    web = _settings(request)
    started, seen = float(session.get("iat", 0)), float(session.get("seen", 0))
    account = accounts.find_user(_repo(request), name)
    if (
        now - seen > web.session_idle_minutes * 60
        or now - started > web.session_max_hours * 3600
        or account is None
        or account["disabled"]
        or account["generation"] != session.get("gen")
    ):
        session.clear()
        return None
    # Rewriting the cookie on every request would make two tabs race; a minute's resolution is plenty.
    if now - seen >= 60:
        session["seen"] = now
    return WebUser(account["name"], Role.parse(account["role"]), account["language"])


_log_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dunning-security-log")


def log_later(write: Callable[[], None]) -> Future[None]:
    """Write a security log line off the request's path: a read must never wait for SQLite's write lock
    (held by a sweeping daemon) just to note that a token was used. Lines keep their order."""

    def guarded() -> None:
        try:
            write()
        except Exception:  # the log line is lost, the request is not: say so in the server log
            logging.getLogger("dunning.web").warning("could not write a security log line", exc_info=True)

    return _log_writer.submit(guarded)


def flush_security_log() -> None:
    """Wait until every line handed to `log_later` so far is written (tests, shutdown)."""
    log_later(lambda: None).result(timeout=30)


def _token_user(request: Request, token: str) -> WebUser:
    repo, now, address = _repo(request), _now(request), client_address(request)
    owner = accounts.token_owner(repo, token_digest(token), now)
    if owner is None:
        log_later(lambda: accounts.log(repo, "refused", None, address, "invalid, expired or revoked API token", now))
        raise unauthorized(
            "the API token is invalid, expired or revoked; ask an admin for a new one (dunning users token NAME)"
        )
    last = owner["last_used_at"]
    if last is None or now - last >= TOKEN_LOG_EVERY:
        log_later(lambda: accounts.token_used(repo, owner["token_id"], owner["name"], address, now))
    return WebUser(owner["name"], Role.parse(owner["role"]), owner["language"])


async def api_user(request: Request) -> WebUser:
    """FastAPI dependency of the API: the bearer token's user, else the session cookie's; else 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be `Bearer TOKEN`")
        by_token = _token_user(request, token.strip())
        request.state.user = by_token
        return by_token
    user = session_user(request)
    if user is None:
        raise unauthorized()
    if request.method not in SAFE_METHODS and not _csrf_ok(request, request.headers.get(CSRF_HEADER)):
        raise ApiProblem(
            403,
            "CSRF token missing or wrong",
            f"an API write made with the session cookie must send the {CSRF_HEADER} header "
            "(the csrf_token of the page)",
        )
    request.state.user = user
    return user


class LoginRequired(Exception):
    """Raised by `page_user`; the app answers 303 to the login page, coming back to `next_url` afterwards."""

    def __init__(self, next_url: str):
        self.next_url = next_url


async def page_user(request: Request) -> WebUser:
    """FastAPI dependency of the pages: the session's user, else a 303 redirect to /login?next=…"""
    user = session_user(request)
    if user is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise LoginRequired(target)
    request.state.user = user
    return user


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); put it in every form as hidden input `csrf_token`."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def _csrf_ok(request: Request, given: Any) -> bool:
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and bool(expected)
        and isinstance(given, str)
        and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
    )


async def verified_form(request: Request) -> FormData:
    """FastAPI dependency: the posted form, refused with 403 unless its `csrf_token` is the session's."""
    form = await request.form()
    if not _csrf_ok(request, form.get(CSRF_FIELD)):
        raise ApiProblem(
            403,
            "CSRF token missing or wrong",
            "the form is outdated or was not sent by this site; reload the page and try again",
        )
    return form


# -- logging in and out --------------------------------------------------------------------------------------


def login(request: Request, username: str, password: str) -> WebUser:
    """Check the password (rate-limited) and start a session; raises 401 or 429 problems."""
    repo, now, address = _repo(request), _now(request), client_address(request)
    name = username.strip()[:64]
    by_user, by_address = accounts.failed_logins(repo, now - FAILURE_WINDOW, user=name, address=address)
    if by_user >= MAX_FAILURES_PER_USER or by_address >= MAX_FAILURES_PER_ADDRESS:
        accounts.log(repo, "refused", name, address, "login rate limit", now)
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        raise ApiProblem(
            429,
            "Too many failed logins",
            f"too many failed logins for this user or address; wait {minutes} minutes and try again",
            headers={"Retry-After": str(int(FAILURE_WINDOW.total_seconds()))},
        )
    account = accounts.find_user(repo, name) if name else None
    ok = password_matches(account["password_hash"] if account else _DUMMY_HASH, password) and account is not None
    if not ok or account is None or account["disabled"]:
        accounts.log(repo, "login_failed", name, address, "disabled account" if ok else "wrong name or password", now)
        raise ApiProblem(401, "Login failed", "wrong user name or password")
    user = WebUser(account["name"], Role.parse(account["role"]), account["language"])
    stamp = now.timestamp()
    request.session.clear()
    request.session.update(
        {
            "user": user.name,
            "gen": account["generation"],
            "iat": stamp,
            "seen": stamp,
            "csrf": secrets.token_urlsafe(32),
        }
    )
    accounts.log(repo, "login", user.name, address, None, now)
    return user


def logout(request: Request) -> None:
    name = request.session.get("user")
    request.session.clear()
    if name:
        accounts.log(_repo(request), "logout", name, client_address(request), None, _now(request))


def refused(request: Request, user: WebUser, action: str, subject: str) -> None:
    """Record a refusal in the security log (the caller raises the 403)."""
    accounts.log(_repo(request), "refused", user.name, client_address(request), f"{action} on {subject}", _now(request))

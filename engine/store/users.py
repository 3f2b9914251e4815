"""The web workspace's people in the database: accounts, API tokens and the security log.

The only SQL of the web layer's people side (engine.web.auth and `dunning users` call it). Passwords and
tokens arrive here already hashed; nothing in this module ever sees a secret in the clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.clock import iso
from engine.errors import AccountError, NotFound
from engine.store.database import Repository
from engine.store.models import ApiToken, SecurityEntry, WebAccount

USERS = WebAccount.__table__  # type: ignore[attr-defined]
TOKENS = ApiToken.__table__  # type: ignore[attr-defined]
LOG = SecurityEntry.__table__  # type: ignore[attr-defined]

SECURITY_KINDS = (
    "login",
    "login_failed",
    "logout",
    "token_used",
    "refused",
    "role_changed",
    "user_added",
    "token_created",
    "token_revoked",
)


#: Every web request asks one of these two, so each is built once (engine.store says why).
_USER_BY_NAME = select(USERS).where(USERS.c.name == bindparam("name"))
_TOKEN_OWNER = (
    select(USERS, TOKENS.c.id.label("token_id"), TOKENS.c.expires_at, TOKENS.c.last_used_at)
    .join(TOKENS, TOKENS.c.user_id == USERS.c.id)
    .where(TOKENS.c.token_hash == bindparam("token_hash"), TOKENS.c.revoked_at.is_(None), USERS.c.disabled.is_(False))
)


def _public(row: Any) -> dict[str, Any]:
    return {
        "name": row["name"],
        "role": row["role"],
        "language": row["language"],
        "disabled": bool(row["disabled"]),
        "created_at": iso(row["created_at"]),
    }


def missing(name: str) -> NotFound:
    return NotFound(f"no user named {name!r}; `dunning users list` shows them, `dunning users add` makes one")


def add_user(
    repo: Repository, name: str, role: str, password_hash: str | None, language: str | None, now: datetime
) -> dict[str, Any]:
    """A new account (refused when the name is taken); logged as `user_added`."""
    try:
        with repo.write() as session:
            conn = session.connection()
            conn.execute(
                insert(USERS),
                {
                    "name": name,
                    "role": role,
                    "language": language,
                    "password_hash": password_hash,
                    "disabled": False,
                    "generation": 0,
                    "created_at": now,
                },
            )
            _log(conn, now, "user_added", name, None, f"role {role}")
    except IntegrityError:
        raise AccountError(
            f"a user named {name!r} exists already; choose another name or change that "
            "user with `dunning users password`"
        ) from None
    return find_user(repo, name) or {}


def find_user(repo: Repository, name: str) -> dict[str, Any] | None:
    """The account named `name` with its password hash and session generation, or None."""
    with repo.read() as session:
        row = session.connection().execute(_USER_BY_NAME, {"name": name}).mappings().first()
    return (
        None
        if row is None
        else {**_public(row), "id": row["id"], "password_hash": row["password_hash"], "generation": row["generation"]}
    )


def list_users(repo: Repository) -> list[dict[str, Any]]:
    with repo.read() as session:
        rows = session.connection().execute(select(USERS).order_by(USERS.c.name)).mappings().all()
    return [_public(r) for r in rows]


def _change(repo: Repository, name: str, values: dict[str, Any], now: datetime, kind: str, detail: str) -> None:
    with repo.write() as session:
        conn = session.connection()
        changed = conn.execute(
            update(USERS).where(USERS.c.name == name).values(generation=USERS.c.generation + 1, **values)
        ).rowcount
        if not changed:
            raise missing(name)
        _log(conn, now, kind, name, None, detail)


def disable_user(repo: Repository, name: str, now: datetime) -> None:
    """Disable an account: its sessions and tokens stop working at once (every request checks)."""
    _change(repo, name, {"disabled": True}, now, "role_changed", "disabled")


def set_password(repo: Repository, name: str, password_hash: str, now: datetime) -> None:
    """A new password; sessions signed before it end."""
    _change(repo, name, {"password_hash": password_hash}, now, "role_changed", "password changed")


def set_role(repo: Repository, name: str, role: str, now: datetime) -> None:
    _change(repo, name, {"role": role}, now, "role_changed", f"role {role}")


def set_language(repo: Repository, name: str, language: str | None) -> None:
    with repo.write() as session:
        if (
            not session.connection()
            .execute(update(USERS).where(USERS.c.name == name).values(language=language))
            .rowcount
        ):
            raise missing(name)


def add_token(repo: Repository, name: str, token_hash: str, expires_at: datetime | None, now: datetime) -> None:
    with repo.write() as session:
        conn = session.connection()
        user_id = conn.execute(select(USERS.c.id).where(USERS.c.name == name)).scalar()
        if user_id is None:
            raise missing(name)
        conn.execute(
            insert(TOKENS), {"user_id": user_id, "token_hash": token_hash, "created_at": now, "expires_at": expires_at}
        )
        _log(conn, now, "token_created", name, None, f"expires {iso(expires_at)}" if expires_at else "does not expire")


def revoke_tokens(repo: Repository, name: str, now: datetime) -> int:
    """Revoke every live token of the user; returns how many."""
    with repo.write() as session:
        conn = session.connection()
        user_id = conn.execute(select(USERS.c.id).where(USERS.c.name == name)).scalar()
        if user_id is None:
            raise missing(name)
        count = conn.execute(
            update(TOKENS).where(TOKENS.c.user_id == user_id, TOKENS.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        _log(conn, now, "token_revoked", name, None, f"{count} token(s)")
    return int(count)


def token_owner(repo: Repository, token_hash: str, now: datetime) -> dict[str, Any] | None:
    """The enabled account a live (not revoked, not expired) token belongs to, with the token's id and
    last use; None otherwise."""
    with repo.read() as session:
        row = session.connection().execute(_TOKEN_OWNER, {"token_hash": token_hash}).mappings().first()
    if row is None or (row["expires_at"] is not None and row["expires_at"] <= now):
        return None
    return {
        **_public(row),
        "generation": row["generation"],
        "token_id": row["token_id"],
        "last_used_at": row["last_used_at"],
    }


def token_used(repo: Repository, token_id: int, name: str, address: str | None, now: datetime) -> None:
    with repo.write() as session:
        conn = session.connection()
        conn.execute(update(TOKENS).where(TOKENS.c.id == token_id).values(last_used_at=now))
        _log(conn, now, "token_used", name, address, f"token {token_id}")


def log(repo: Repository, kind: str, user: str | None, address: str | None, detail: str | None, now: datetime) -> None:
    """One line of the security log (`kind` is one of SECURITY_KINDS)."""
    with repo.write() as session:
        _log(session.connection(), now, kind, user, address, detail)


def _log(conn: Any, now: datetime, kind: str, user: str | None, address: str | None, detail: str | None) -> None:
    assert kind in SECURITY_KINDS, kind
    conn.execute(
        insert(LOG),
        {
            "at": now,
            "kind": kind,
            "user": (user or "")[:64] or None,
            "address": (address or "")[:64] or None,
            "detail": detail,
        },
    )


def security_log(repo: Repository, *, user: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The security log, oldest first (with `limit`: the latest entries)."""
    query = select(LOG).order_by(LOG.c.id.desc())
    if user is not None:
        query = query.where(LOG.c.user == user)
    if limit is not None:
        query = query.limit(limit)
    with repo.read() as session:
        rows = session.connection().execute(query).mappings().all()
    return [
        {"at": iso(r["at"]), "kind": r["kind"], "user": r["user"], "address": r["address"], "detail": r["detail"]}
        for r in reversed(rows)
    ]


def failed_logins(repo: Repository, since: datetime, *, user: str, address: str | None) -> tuple[int, int]:
    """Failed logins since `since`: (for this user name, from this address)."""
    recent = (LOG.c.kind == "login_failed") & (LOG.c.at >= since)
    with repo.read() as session:
        conn = session.connection()
        by_user = conn.execute(select(func.count()).where(recent, LOG.c.user == user)).scalar() or 0
        by_address = (
            conn.execute(select(func.count()).where(recent, LOG.c.address == address)).scalar() if address else 0
        )
    return int(by_user), int(by_address or 0)


__all__ = [
    "SECURITY_KINDS",
    "add_token",
    "add_user",
    "disable_user",
    "failed_logins",
    "find_user",
    "list_users",
    "log",
    "missing",
    "revoke_tokens",
    "security_log",
    "set_language",
    "set_password",
    "set_role",
    "token_owner",
    "token_used",
]

"""`dunning users`: the people of the web workspace and the REST API, their API tokens and the security log.

    dunning users add NAME --role viewer|collector|manager|admin [--password-stdin] [--language zh-CN|en]
    dunning users list [--json]            [{name, role, language, disabled, created_at}]
    dunning users disable NAME             its sessions and tokens stop working at once
    dunning users password NAME [--password-stdin]
    dunning users role NAME --role ROLE
    dunning users token NAME [--expires DAYS]   prints the new token alone on one line, once
    dunning users revoke NAME              revokes all of the user's tokens
    dunning users log [--json] [--user NAME] [--limit N]   [{at, kind, user, address, detail}]

There is no default account: the first admin is made with `dunning users add`.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from typing import Annotated

import typer

from engine.cli.shared import app, emit_json, err, guarded, out, state
from engine.errors import AccountError

users_app = typer.Typer(help="People of the web workspace: accounts, roles, API tokens, the security log.")
app.add_typer(users_app, name="users")

LANGUAGES = ("en", "zh-CN")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")
]


def _name(name: str) -> str:
    if not NAME.match(name):
        raise AccountError(
            f"user name {name!r} is not allowed; use up to 64 letters, digits and . _ @ - "
            "(it is matched against customers' `owner`)"
        )
    return name


def _password(from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise AccountError('no password on standard input; pipe one line, e.g. `echo "$PW" | dunning users ...`')
        return text
    if not sys.stdin.isatty():
        raise AccountError("no terminal to ask for the password; pass --password-stdin and pipe it in")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _language(language: str | None) -> str | None:
    if language is not None and language not in LANGUAGES:
        raise AccountError(f"--language {language!r} is not offered; use one of: {', '.join(LANGUAGES)}")
    return language


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option("--role", help="viewer, collector, manager or admin.")],
    password_stdin: PasswordStdin = False,
    language: Annotated[str | None, typer.Option("--language", help="zh-CN or en (default: the browser's).")] = None,
) -> None:
    """Make an account (a collector's name is the `owner` of their customers)."""
    from engine.store import users
    from engine.web.auth import Role, hash_password

    def action() -> None:
        dunning = state.dunning()
        parsed, chosen, spoken = Role.parse(role), _name(name), _language(language)
        if users.find_user(dunning.repo, chosen) is not None:
            raise AccountError(f"a user named {chosen!r} exists already; choose another name")
        hashed = hash_password(_password(password_stdin))
        users.add_user(dunning.repo, chosen, parsed.label, hashed, spoken, dunning.clock.now())
        out.print(f"user {name} added ({parsed.label})", markup=False)

    guarded(action)


@users_app.command("list")
def users_list(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The accounts, by name."""
    from engine.store import users

    def action() -> None:
        rows = users.list_users(state.reader().repo)
        if json_out:
            emit_json(rows)
            return
        if not rows:
            out.print("no users yet; make the first admin with `dunning users add NAME --role admin`", markup=False)
        for row in rows:
            flags = " (disabled)" if row["disabled"] else ""
            out.print(
                f"{row['name']}  {row['role']}  {row['language'] or '-'}  since {row['created_at']}{flags}",
                markup=False,
            )

    guarded(action)


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable an account; its sessions and tokens stop working at once, in running servers too."""
    from engine.store import users

    def action() -> None:
        dunning = state.dunning()
        users.disable_user(dunning.repo, name, dunning.clock.now())
        out.print(f"user {name} disabled", markup=False)

    guarded(action)


@users_app.command("password")
def users_password(name: str, password_stdin: PasswordStdin = False) -> None:
    """Set a new password; the user's open sessions end."""
    from engine.store import users
    from engine.web.auth import hash_password

    def action() -> None:
        dunning = state.dunning()
        if users.find_user(dunning.repo, name) is None:
            raise users.missing(name)
        users.set_password(dunning.repo, name, hash_password(_password(password_stdin)), dunning.clock.now())
        out.print(f"password of {name} changed", markup=False)

    guarded(action)


@users_app.command("role")
def users_role(
    name: str, role: Annotated[str, typer.Option("--role", help="viewer, collector, manager or admin.")]
) -> None:
    """Change a user's role; their open sessions end."""
    from engine.store import users
    from engine.web.auth import Role

    def action() -> None:
        dunning = state.dunning()
        users.set_role(dunning.repo, name, Role.parse(role).label, dunning.clock.now())
        out.print(f"{name} is now {Role.parse(role).label}", markup=False)

    guarded(action)


@users_app.command("token")
def users_token(
    name: str,
    expires: Annotated[
        int | None,
        typer.Option("--expires", help="Days until the token stops working (default: never).", min=1, max=3650),
    ] = None,
) -> None:
    """Make an API token; it is printed once, alone on one line (only its hash is kept)."""
    from engine.store import users
    from engine.web.auth import new_token, token_digest

    def action() -> None:
        dunning = state.dunning()
        now = dunning.clock.now()
        token = new_token()
        users.add_token(
            dunning.repo, name, token_digest(token), now + timedelta(days=expires) if expires else None, now
        )
        sys.stdout.write(token + "\n")

    guarded(action)


@users_app.command("revoke")
def users_revoke(name: str) -> None:
    """Revoke every API token of the user (effective at once for running servers)."""
    from engine.store import users

    def action() -> None:
        dunning = state.dunning()
        count = users.revoke_tokens(dunning.repo, name, dunning.clock.now())
        err.print(f"{count} token(s) of {name} revoked", markup=False)

    guarded(action)


@users_app.command("log")
def users_log(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's entries.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the latest N entries.", min=1)] = None,
) -> None:
    """The security log: logins, failed logins, logouts, token use, refusals, account and token changes."""
    from engine.store import users

    def action() -> None:
        rows = users.security_log(state.reader().repo, user=user, limit=limit)
        if json_out:
            emit_json(rows)
            return
        for row in rows:
            out.print(
                f"{row['at']}  {row['kind']:<13} {row['user'] or '-':<16} {row['address'] or '-':<15} "
                f"{row['detail'] or ''}",
                markup=False,
            )

    guarded(action)

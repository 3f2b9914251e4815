"""`dunning inbound`: read replies, bounces and auto-replies back, and triage what matched nothing.

dunning inbound fetch [--limit N] [--json]
dunning inbound list [--unmatched] [--json]
dunning inbound show MESSAGE [--json | --eml]
dunning inbound assign MESSAGE --invoice NUMBER [--actor NAME]
dunning inbound confirm MESSAGE [--intent promise|dispute|payment_claim] [--amount A] [--on DATE] [--actor NAME]
"""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from engine.cli.collect import ACTOR_ENV
from engine.cli.shared import app, emit_json, guarded, out, state
from engine.errors import InboundError
from engine.replies import Mailroom

inbound_app = typer.Typer(help="Inbound mail: read replies, bounces and auto-replies; triage and confirm them.")
app.add_typer(inbound_app, name="inbound")

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts and integrations.")]
Actor = Annotated[str | None, typer.Option("--actor", envvar=ACTOR_ENV, help="Who is acting (recorded).")]


def _line(message: dict) -> str:
    numbers = ", ".join(inv["number"] for inv in message["invoices"]) or "no invoice"
    intents = ", ".join(i["kind"] for i in message["intents"])
    extra = f" · suggests {intents}" if intents else ""
    if message["bounce"]:
        extra = f" · {message['bounce']['status']} {message['bounce']['recipient'] or ''}"
    return (
        f"#{message['id']} {message['kind']} · {message['status']}"
        f"{' by ' + message['match_by'] if message['match_by'] else ''} · {message['sender']} · "
        f"{message['subject']!r} · {numbers}{extra}"
    )


@inbound_app.command("fetch")
def inbound_fetch(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Stop after this many new messages.")] = None,
    json_out: Json = False,
) -> None:
    """Read the configured sources once (drop folder, IMAP) and apply every new message."""

    def action() -> None:
        report = Mailroom(state.dunning()).fetch(limit=limit)
        if json_out:
            emit_json(report.as_dict())
            return
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(report.by_kind.items())) or "nothing new"
        out.print(
            f"inbound: {report.processed} processed ({kinds}), {report.unmatched} unmatched, "
            f"{report.duplicates} already processed",
            markup=False,
        )

    guarded(action)


@inbound_app.command("list")
def inbound_list(
    unmatched: Annotated[bool, typer.Option("--unmatched", help="Only messages that matched no invoice.")] = False,
    json_out: Json = False,
) -> None:
    """Received messages, newest first, with what they matched and what they suggest."""

    def action() -> None:
        messages = Mailroom(state.reader()).list(unmatched=unmatched)
        if json_out:
            emit_json(messages)
            return
        if not messages:
            out.print("no unmatched messages" if unmatched else "no inbound messages", markup=False)
        for message in messages:
            out.print(_line(message), markup=False)

    guarded(action)


@inbound_app.command("show")
def inbound_show(
    message: Annotated[int, typer.Argument(help="The message's id (from `dunning inbound list`).")],
    eml: Annotated[bool, typer.Option("--eml", help="Write the message as received (.eml) to stdout.")] = False,
    json_out: Json = False,
) -> None:
    """One received message: its match, its first lines and suggestions, or the raw .eml."""

    def action() -> None:
        room = Mailroom(state.reader())
        if eml:
            sys.stdout.buffer.write(room.raw(message))
            return
        shown = room.get(message)
        if json_out:
            emit_json(shown)
            return
        out.print(_line(shown), markup=False)
        out.print(shown["first_lines"] or "", markup=False)

    guarded(action)


@inbound_app.command("assign")
def inbound_assign(
    message: Annotated[int, typer.Argument(help="The message's id (from `dunning inbound list --unmatched`).")],
    invoice: Annotated[str, typer.Option("--invoice", help="The invoice number it is about.")],
    actor: Actor = None,
    json_out: Json = False,
) -> None:
    """Match a message to an invoice by hand; its effects (event, task, pause) apply then."""

    def action() -> None:
        dunning = state.dunning()
        shown = Mailroom(dunning).assign(message, invoice, actor=actor or dunning.settings.actor or "system")
        if json_out:
            emit_json(shown)
        else:
            out.print(f"inbound message {message} assigned to {invoice}", markup=False)

    guarded(action)


@inbound_app.command("confirm")
def inbound_confirm(
    message: Annotated[int, typer.Argument(help="The message's id (from `dunning inbound list`).")],
    intent: Annotated[
        str | None, typer.Option("--intent", help="promise, dispute or payment_claim (default: the first suggested).")
    ] = None,
    amount: Annotated[
        str | None, typer.Option("--amount", help="For a promise: the amount, if not the reply's.")
    ] = None,
    on: Annotated[
        str | None, typer.Option("--on", help="For a promise: the date (YYYY-MM-DD), if not the reply's.")
    ] = None,
    actor: Actor = None,
    json_out: Json = False,
) -> None:
    """Turn a reply's suggestion into the collector action (promise, dispute, note), recorded under the actor."""

    def action() -> None:
        try:
            value = Decimal(amount) if amount is not None else None
            day = date.fromisoformat(on) if on is not None else None
        except (InvalidOperation, ValueError):
            raise InboundError("--amount must be a number (e.g. 1200.50) and --on a date (YYYY-MM-DD)") from None
        dunning = state.dunning()
        shown = Mailroom(dunning).confirm(
            message, actor=actor or dunning.settings.actor or "system", intent=intent, amount=value, on=day
        )
        if json_out:
            emit_json(shown)
        else:
            out.print(f"inbound message {message} confirmed by {shown['confirmed_by']}", markup=False)

    guarded(action)

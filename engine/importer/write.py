"""Writing a checked import: what each customer, invoice and payment row changes, and the events recording it.

Each writer first checks the rows against what is stored (engine.store.imports reads it in bulk), collecting
problems on the source; it writes only when no problem was found anywhere so far (`reject_if_any` raises
otherwise, and the import's transaction rolls back). Writes are set-based (engine.store.bulk). A payment that
settles the open amount, or an amount lowered to what was paid, closes the invoice the one way every closing
does (`engine.store.invoices.closed`) through the state machine's `pay` move, and cancels its queued notices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, time, tzinfo
from decimal import Decimal
from typing import Any

from engine.currencies import money_text
from engine.errors import IllegalTransition, ImportRejected
from engine.importer.read import COLUMNS, Source
from engine.importer.values import Row, decimals, json_safe, minor_units, payment_dedupe_key, too_precise
from engine.policy.machine import Case, machine_for_invoice
from engine.policy.model import CLOSED_STATES, CURRENT, PAID, PolicySet
from engine.store import imports
from engine.store.bulk import insert_customers, insert_payments, update_customers, update_invoices
from engine.store.database import Connection
from engine.store.events import DataTemplate, append_events, append_system_events, new_event
from engine.store.invoices import closed, reopened, wake
from engine.store.outbox import cancel_pending
from engine.store.tasks import ACTION_TAG_SUBJECTS


@dataclass
class ImportReport:
    """What one import did. `closed` counts invoices that a payment in this import paid in full."""

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reject_if_any(source: Source) -> None:
    if source.problems:
        # Stable sort: within a row, shape problems come before value problems, as they were found.
        raise ImportRejected(source.label, sorted(source.problems, key=lambda p: p.row))


def _keep_action_tags(old: Mapping[str, Any], values: dict[str, Any], changes: dict[str, list[Any]]) -> list[str]:
    """The tags a collector's action added that survive this import row, and `changes["tags"]` corrected.

    The file is the truth for the tags it lists, but it does not know the action tags (`wrong_contact` from
    a call): they stay unless the row changes the contact data they are about (a corrected email, phone or
    address answers `wrong_contact`); a tag that goes is recorded in the update event's `tags` change."""
    stored = tuple(old["tags"] or ())
    # A file without a tags column leaves the customer's other tags as they are.
    imported = tuple(values["tags"]) if "tags" in values else tuple(t for t in stored if t not in old["action_tags"])
    kept = [
        tag
        for tag in old["action_tags"]
        if tag in stored and not any(name in changes for name in ACTION_TAG_SUBJECTS.get(tag, ()))
    ]
    after = imported + tuple(tag for tag in kept if tag not in imported)
    if after != stored:
        changes["tags"] = [stored, after]
    else:
        changes.pop("tags", None)
    return kept


#: The text fields of a new invoice's import event (its `data` also lists the tags).
IMPORT_SLOTS = ("invoice", "customer_id", "currency", "amount", "issued_on", "due_on")


class BookWriter:
    """Writes checked rows of one kind into the import's transaction. `zone` is the company time zone (a
    payment's effective instant is midnight of its date there); `policies` names the policy version a move
    happened under; `actor` is written on every event."""

    def __init__(self, *, zone: tzinfo, policies: PolicySet | None, actor: str):
        self.zone = zone
        self.policies = policies
        self.actor = actor
        self._import_templates: dict[tuple[str, ...], DataTemplate] = {}

    def _event(
        self,
        at: datetime,
        recorded_at: datetime,
        kind: str,
        invoice_id: int | None,
        customer_id: str | None,
        data: dict[str, Any],
    ) -> dict[str, Any]:
        return new_event(
            kind,
            at=at,
            recorded_at=recorded_at,
            invoice_id=invoice_id,
            customer_id=customer_id,
            actor=self.actor,
            data=data,
        )

    def _policy_hash(self, name: str | None) -> str | None:
        policy = self.policies.by_name(name) if self.policies is not None and name else None
        return policy.hash if policy is not None else None

    def _fire(self, number: str, stage: str, policy: str | None, trigger: str) -> None:
        governing = self.policies.by_name(policy) if self.policies is not None and policy else None
        machine_for_invoice(governing, stage).fire(Case(number, stage), trigger)

    # -- customers -------------------------------------------------------------------------------------------

    def customers(self, conn: Connection, source: Source, rows: list[Row], now: datetime, report: ImportReport) -> None:
        existing = imports.customers_by_id(conn, (r.values["id"] for r in rows if r.ok("id")))
        reject_if_any(source)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for row in rows:
            values = row.values
            customer_id = values["id"]
            old = existing.get(customer_id)
            if old is None:
                inserts.append(
                    {name: values.get(name, () if name == "tags" else None) for name in COLUMNS["customers"]}
                )
                data = {"customer": customer_id}
                data.update((name, json_safe(value)) for name, value in values.items() if name != "id")
                events.append(self._event(now, now, "import", None, customer_id, data))
                report.created += 1
                continue
            changes: dict[str, list[Any]] = {}
            for name, value in values.items():
                before = tuple(old[name] or ()) if name == "tags" else old[name]
                if name != "id" and before != value:
                    changes[name] = [before, value]
            kept_tags: list[str] | None = None
            if old["action_tags"]:
                kept_tags = _keep_action_tags(old, values, changes)
            if not changes:
                report.unchanged += 1
                continue
            update = {"id": customer_id, **{name: new for name, (_, new) in changes.items()}}
            if kept_tags is not None and kept_tags != list(old["action_tags"]):
                update["action_tags"] = kept_tags or None
            updates.append(update)
            events.append(
                self._event(
                    now,
                    now,
                    "update",
                    None,
                    customer_id,
                    {
                        "customer": customer_id,
                        "changes": {name: json_safe(pair) for name, pair in changes.items()},
                    },
                )
            )
            report.updated += 1
        insert_customers(conn, inserts)
        update_customers(conn, updates)
        # Customer fields feed the policies' decisions: their invoices need a fresh look at the next sweep.
        changed = [change["id"] for change in updates]
        for start in range(0, len(changed), imports.CHUNK):
            wake(conn, customer_ids=changed[start : start + imports.CHUNK])
        if events:
            append_events(conn, events)

    # -- invoices --------------------------------------------------------------------------------------------

    def invoices(self, conn: Connection, source: Source, rows: list[Row], now: datetime, report: ImportReport) -> None:
        existing = imports.invoices_by_number(conn, (r.values["number"] for r in rows if r.ok("number")))
        known_customers = imports.known_customer_ids(
            conn, (r.values["customer_id"] for r in rows if r.ok("customer_id"))
        )
        for row in rows:
            if row.ok("customer_id") and row.values["customer_id"] not in known_customers:
                source.problem(
                    row.line,
                    "customer_id",
                    f"no customer with id {row.values['customer_id']!r}; import the customer first or correct the id",
                )
                row.bad.add("customer_id")
        # What was already paid matters only where the amount changes: the open amount is recomputed from it.
        amount_changed = [
            existing[r.values["number"]]["id"]
            for r in rows
            if r.ok("number")
            and r.ok("amount")
            and r.values["number"] in existing
            and existing[r.values["number"]]["amount"] != r.values["amount"]
        ]
        paid = imports.paid_totals(conn, amount_changed)

        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        cancel: list[int] = []
        for row in rows:
            if row.bad:
                continue
            values = row.values
            old = existing.get(values["number"])
            if old is None:
                inserts.append(
                    {
                        "number": values["number"],
                        "customer_id": values["customer_id"],
                        "currency": values["currency"],
                        "amount": values["amount"],
                        "open_amount": values["amount"],
                        "issued_on": values["issued_on"],
                        "due_on": values["due_on"],
                        "tags": values.get("tags", ()),
                        # Spelled out: the bulk insert bypasses SQLAlchemy's Python-side column defaults.
                        "stage": CURRENT,
                        "policy": None,
                        "stage_repeats": 0,
                        "paused_days": 0,
                        "escalate_now": False,
                        "updated_at": now,
                    }
                )
                continue
            self._plan_invoice_update(
                source, row, old, paid.get(old["id"], Decimal(0)), now, updates, events, cancel, report
            )
        reject_if_any(source)

        imported: list[tuple[str, int | None, str | None, str]] = []
        if inserts:
            ids = imports.add_invoices(conn, inserts)  # the events need the new ids
            for values in inserts:
                currency = values["currency"]
                data_json = self._import_template(tuple(values["tags"])).render(
                    values["number"],
                    values["customer_id"],
                    currency,
                    money_text(values["amount"], currency),
                    values["issued_on"].isoformat(),
                    values["due_on"].isoformat(),
                )
                imported.append(("import", ids[values["number"]], values["customer_id"], data_json))
            report.created += len(inserts)
        update_invoices(conn, updates)
        cancel_pending(conn, cancel, "invoice paid before sending")
        if events:
            append_events(conn, events)
        # A large import's events in storage form: the rows `new_event` + `append_events` would write.
        append_system_events(conn, now, now, imported, actor=self.actor or "system")

    def _import_template(self, tags: tuple[str, ...]) -> DataTemplate:
        """The `data` of a new invoice's import event, its text fields left open: one per distinct tags."""
        template = self._import_templates.get(tags)
        if template is None:
            if len(self._import_templates) > 1000:
                self._import_templates.clear()
            template = self._import_templates[tags] = DataTemplate({"tags": list(tags)}, IMPORT_SLOTS)
        return template

    def _plan_invoice_update(
        self,
        source: Source,
        row: Row,
        old: Mapping[str, Any],
        paid: Decimal,
        now: datetime,
        updates: list[dict[str, Any]],
        events: list[dict[str, Any]],
        cancel: list[int],
        report: ImportReport,
    ) -> None:
        values = row.values
        number = values["number"]
        changes: dict[str, list[Any]] = {}
        for name in ("customer_id", "currency", "amount", "issued_on", "due_on", "tags"):
            before = tuple(old[name] or ()) if name == "tags" else old[name]
            if name in values and before != values[name]:
                changes[name] = [before, values[name]]
        if not changes:
            report.unchanged += 1
            return
        # next_action_on = NULL: the next sweep must look at a changed invoice again (see engine.store.invoices.wake).
        change: dict[str, Any] = {
            "id": old["id"],
            **{name: new for name, (_, new) in changes.items()},
            "updated_at": now,
            "next_action_on": None,
        }
        transition: dict[str, Any] | None = None
        if "amount" in changes:
            open_amount = values["amount"] - paid
            if open_amount < 0:
                source.problem(
                    row.line,
                    "amount",
                    f"{values['amount']} is below the "
                    f"{money_text(paid, old['currency'])} already paid on invoice "
                    f"{number}; expected at least that much",
                )
                row.bad.add("amount")
                return
            change["open_amount"] = open_amount
            stage = old["stage"]
            # Keep the stage consistent with the new open amount: the machine's moves, never a direct write.
            if stage == PAID and open_amount > 0:
                transition = {"to": CURRENT, "trigger": "reopen", "rule": "amount raised above what was paid"}
            elif stage not in CLOSED_STATES and open_amount == 0:
                transition = {"to": PAID, "trigger": "pay", "rule": "amount lowered to what was already paid"}
            if transition is not None:
                try:
                    self._fire(number, stage, old["policy"], transition["trigger"])
                except IllegalTransition as exc:
                    source.problem(row.line, "amount", str(exc))
                    row.bad.add("amount")
                    return
                change.update(closed(PAID, now) if transition["to"] == PAID else reopened(transition["to"], now))
                if transition["to"] == PAID:
                    cancel.append(old["id"])
        updates.append(change)
        shown = {
            name: [
                money_text(old_value, old["currency"]),
                money_text(new_value, values.get("currency", old["currency"])),
            ]
            if name == "amount"
            else json_safe([old_value, new_value])
            for name, (old_value, new_value) in changes.items()
        }
        customer_id = values.get("customer_id", old["customer_id"])
        events.append(self._event(now, now, "update", old["id"], customer_id, {"invoice": number, "changes": shown}))
        if transition is not None:
            events.append(
                self._event(
                    now,
                    now,
                    "transition",
                    old["id"],
                    customer_id,
                    {
                        "invoice": number,
                        "from": old["stage"],
                        "to": transition["to"],
                        "rule": transition["rule"],
                        "policy": old["policy"],
                        "policy_hash": self._policy_hash(old["policy"]),
                    },
                )
            )
        report.updated += 1

    # -- payments --------------------------------------------------------------------------------------------

    def payments(self, conn: Connection, source: Source, rows: list[Row], now: datetime, report: ImportReport) -> None:
        invoices = imports.payable_invoices(conn, (r.values["invoice"] for r in rows if r.ok("invoice")))
        keys: dict[int, str] = {}
        for index, row in enumerate(rows):
            if row.ok("invoice") and row.ok("amount") and row.ok("paid_on") and "reference" not in row.bad:
                keys[index] = payment_dedupe_key(
                    row.values["invoice"], row.values["amount"], row.values["paid_on"], row.values.get("reference")
                )
        known_keys = imports.known_payment_keys(conn, keys.values())

        payments: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        settled_by: dict[str, int] = {}  # invoice number -> the row of this file that paid it in full
        touched: dict[str, dict[str, Any]] = {}
        for index, row in enumerate(rows):
            values = row.values
            invoice = invoices.get(values["invoice"]) if row.ok("invoice") else None
            if row.ok("invoice") and invoice is None:
                source.problem(
                    row.line,
                    "invoice",
                    f"no invoice numbered {values['invoice']!r}; import the invoice first or correct the number",
                )
                continue
            if invoice is None or index not in keys:
                continue
            key = keys[index]
            if key in known_keys:
                # Recorded already (in the database, or earlier in this file): re-importing a bank file is safe.
                report.unchanged += 1
                continue
            number, amount, currency = invoice["number"], values["amount"], invoice["currency"]
            if too_precise(amount, currency):
                source.problem(
                    row.line,
                    "amount",
                    f"{amount} has {decimals(amount)} decimal places; invoice "
                    f"{number} is in {currency}, which allows at most "
                    f"{minor_units(currency)}",
                )
                continue
            if invoice["stage"] in CLOSED_STATES:
                if number in settled_by:
                    message = (
                        f"invoice {number} is paid in full by row {settled_by[number]} of this file; "
                        f"this payment of {amount} would overpay it"
                    )
                else:
                    state = "paid" if invoice["stage"] == PAID else "written off"
                    message = (
                        f"invoice {number} is already {state}; a payment on it is refused (a repeat of a "
                        "recorded payment must carry the same reference)"
                    )
                source.problem(row.line, "invoice", message)
                continue
            if amount > invoice["open_amount"]:
                earlier = " after the earlier rows of this file" if number in touched else ""
                source.problem(
                    row.line,
                    "amount",
                    f"payment of {amount} exceeds the open amount "
                    f"{money_text(invoice['open_amount'], currency)} of invoice {number}"
                    f"{earlier}; expected at most that much",
                )
                continue
            known_keys.add(key)
            invoice["open_amount"] -= amount
            touched[number] = invoice
            at = datetime.combine(values["paid_on"], time(0), tzinfo=self.zone)
            reference = values.get("reference")
            payments.append(
                {
                    "invoice_id": invoice["id"],
                    "amount": amount,
                    "paid_on": values["paid_on"],
                    "reference": reference,
                    "dedupe_key": key,
                    "recorded_at": now,
                }
            )
            events.append(
                self._event(
                    at,
                    now,
                    "payment",
                    invoice["id"],
                    invoice["customer_id"],
                    {
                        "invoice": number,
                        "amount": money_text(amount, currency),
                        "paid_on": values["paid_on"].isoformat(),
                        "reference": reference,
                        "open_amount": money_text(invoice["open_amount"], currency),
                    },
                )
            )
            report.created += 1
            if invoice["open_amount"] == 0:
                try:
                    self._fire(number, invoice["stage"], invoice["policy"], "pay")
                except IllegalTransition as exc:
                    source.problem(row.line, "invoice", str(exc))
                    continue
                events.append(
                    self._event(
                        at,
                        now,
                        "transition",
                        invoice["id"],
                        invoice["customer_id"],
                        {
                            "invoice": number,
                            "from": invoice["stage"],
                            "to": PAID,
                            "rule": "payment settled the open amount",
                            "policy": invoice["policy"],
                            "policy_hash": self._policy_hash(invoice["policy"]),
                        },
                    )
                )
                invoice["stage"] = PAID
                invoice["closed_at"] = at
                settled_by[number] = row.line
                report.closed += 1
        reject_if_any(source)

        insert_payments(conn, payments)
        updates = []
        for invoice in touched.values():
            # next_action_on = NULL: a smaller open amount can change what the next sweep decides.
            change = {
                "id": invoice["id"],
                "open_amount": invoice["open_amount"],
                "updated_at": now,
                "next_action_on": None,
            }
            if "closed_at" in invoice:
                change.update(closed(PAID, invoice["closed_at"]))
            updates.append(change)
        update_invoices(conn, updates)
        cancel_pending(
            conn,
            [invoice["id"] for invoice in touched.values() if "closed_at" in invoice],
            "invoice paid before sending",
        )
        if events:
            append_events(conn, events)

"""The `legal` channel: a case file for the lawyer or collection agency.

Per notification, a folder `<output_dir>/<customer>-<key>/` with:

    case.pdf        one-document summary: customer, contact, invoices, totals, history
    case.json       everything, machine-readable: customer, invoices, amounts, the full contact and
                    notification history, delivery receipts
    invoices.csv    one row per invoice
    history.csv     one row per history event
    deliveries.csv  every notification sent about these invoices, with status and server receipt

Options:

    output_dir: out/legal        # default <output_dir>/legal
    email_to: cases@lawfirm.example   # also e-mail the case file (PDF, JSON and CSVs attached)
    via: email                   # the configured channel (type email) to send it through; default `email`

The stored records (customer, invoices, history, deliveries) come from the installation's case-file source
(`ChannelContext.case_files`); without one, the case file holds what the message carries.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from channels.base import Attachment, Channel, Message, PermanentDeliveryError, Receipt, TransientDeliveryError
from channels.files import inside, notice_stem, write_new
from engine.spreadsheet import SafeDictWriter


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _csv(rows: list[Mapping[str, Any]], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = SafeDictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (
                    json.dumps(v, default=_plain, ensure_ascii=False)
                    if isinstance(v, (dict, list))
                    else _plain(v)
                    if isinstance(v, (Decimal, date, datetime))
                    else v
                )
                for k, v in row.items()
            }
        )
    return buffer.getvalue().encode("utf-8-sig")  # with a BOM, so spreadsheet programs read CJK correctly


class LegalChannel(Channel):
    type_name = "legal"

    @property
    def folder(self) -> Path:
        configured = self.options.get("output_dir")
        return Path(configured) if configured else self.context.output_dir / "legal"

    def case(self, message: Message) -> dict[str, Any]:
        """The case as data: the database's view of the customer and invoices, and their whole history."""
        customer: dict[str, Any] = dict(message.customer)
        invoices = [dict(inv) for inv in message.invoices]
        history: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        source = self.context.case_files
        if source is not None:
            found = source.case_file(str(customer["id"]), [str(inv["number"]) for inv in invoices])
            if found.customer is not None:
                customer = {**dict(found.customer), **{k: v for k, v in customer.items() if v is not None}}
            for inv in invoices:
                extra = found.invoices.get(str(inv["number"]), {})
                inv.update({k: v for k, v in extra.items() if k not in inv or k in ("open_amount", "stage")})
            history = [dict(entry) for entry in found.history]
            deliveries = [dict(entry) for entry in found.deliveries]
        as_of = message.context.get("as_of")
        return {
            "key": message.key,
            "stage": message.stage,
            "policy": message.policy,
            "prepared_on": (as_of if isinstance(as_of, datetime) else self.context.now()).date().isoformat(),
            "customer": customer,
            "invoices": invoices,
            "history": history,
            "deliveries": deliveries,
            "totals": {
                cur: str(sum((Decimal(i["open_amount"]) for i in invoices if i["currency"] == cur), Decimal(0)))
                for cur in sorted({i["currency"] for i in invoices})
            },
            "summary": message.body,
        }

    def bundle(self, message: Message) -> dict[str, bytes]:
        from channels import pdf

        case = self.case(message)
        company = message.context.get("company") or self.context.company
        return {
            "case.pdf": pdf.case_pdf(case, company, message.language),
            "case.json": json.dumps(case, default=_plain, ensure_ascii=False, indent=2).encode("utf-8"),
            "invoices.csv": _csv(
                case["invoices"],
                [
                    "number",
                    "currency",
                    "amount",
                    "open_amount",
                    "issued_on",
                    "due_on",
                    "days_overdue",
                    "stage",
                    "policy",
                ],
            ),
            "history.csv": _csv(case["history"], ["at", "invoice", "kind", "actor", "summary", "data"]),
            "deliveries.csv": _csv(
                case["deliveries"],
                [
                    "key",
                    "channel",
                    "stage",
                    "recipient",
                    "status",
                    "attempts",
                    "created_at",
                    "sent_at",
                    "receipt",
                    "error",
                ],
            ),
        }

    async def send(self, message: Message) -> Receipt:
        if not message.invoices:
            raise PermanentDeliveryError("a case file needs at least one invoice")
        try:
            files = await asyncio.to_thread(self.bundle, message)
        except Exception as exc:
            raise TransientDeliveryError(f"could not assemble the case file: {type(exc).__name__}: {exc}") from exc
        folder = inside(
            self.folder, notice_stem(message.notification_id, f"{message.customer.get('id')}-{message.key}")
        )
        try:
            for name, data in files.items():
                write_new(inside(folder, name), data)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write the case file to {folder}: {exc}") from exc
        detail = str(folder)
        if self.options.get("email_to"):
            detail += "; " + await self._email(message, files)
        return Receipt(reference=folder.name, detail=detail)

    async def _email(self, message: Message, files: dict[str, bytes]) -> str:
        from channels.email import EmailChannel

        via = str(self.options.get("via", "email"))
        spec = self.context.channel_settings.get(via)
        if spec is None or getattr(spec, "type", None) != "email":
            raise PermanentDeliveryError(
                f"legal channel {self.name!r}: `via: {via}` must name a configured channel of type email"
            )
        mailer = EmailChannel(via, spec.options, self.context)
        types = {".pdf": "application/pdf", ".json": "application/json", ".csv": "text/csv"}
        attachments = tuple(Attachment(name, data, types[Path(name).suffix]) for name, data in files.items())
        case_message = Message(
            notification_id=message.notification_id,
            key=message.key + "/case",
            channel=self.name,
            recipient=str(self.options["email_to"]),
            subject=f"Case file: {message.customer.get('name')} ({message.customer.get('id')})",
            body=message.body,
            stage=message.stage,
            policy=message.policy,
            customer=message.customer,
            invoices=message.invoices,
            repeat_no=message.repeat_no,
            attachments=attachments,
            language=message.language,
            context=message.context,
        )
        try:
            receipt = await mailer.send(case_message)
        finally:
            await mailer.aclose()
        return f"emailed to {self.options['email_to']} ({receipt.reference})"

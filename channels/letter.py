"""The `letter` channel: a PDF dunning letter per notification, ready for printing or a print-and-mail service.

Options: `output_dir` (default `<output_dir>/letters`). The letter carries the company letterhead
(`company:` in the configuration, including `payment_instructions`), the customer's address, the stage's
text (the rendered template), the table of overdue invoices with amounts and days overdue, and the total.
File names derive from the notification's idempotency key, so a letter written twice is the same file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from channels.base import Channel, Message, PermanentDeliveryError, Receipt, TransientDeliveryError
from channels.files import inside, notice_stem, write_new


class LetterChannel(Channel):
    type_name = "letter"

    @property
    def folder(self) -> Path:
        configured = self.options.get("output_dir")
        return Path(configured) if configured else self.context.output_dir / "letters"

    def render(self, message: Message) -> bytes:
        from channels import pdf

        return pdf.letter_pdf(message, message.context.get("company") or self.context.company)

    async def send(self, message: Message) -> Receipt:
        if not message.invoices:
            raise PermanentDeliveryError("a letter needs at least one invoice")
        try:
            data = await asyncio.to_thread(self.render, message)
        except Exception as exc:
            raise PermanentDeliveryError(f"could not lay out the letter: {type(exc).__name__}: {exc}") from exc
        path = inside(self.folder, f"{notice_stem(message.notification_id, message.invoices[0]['number'])}.pdf")
        try:
            write_new(path, data)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {path}: {exc}; check the letter output folder") from exc
        return Receipt(reference=path.name, detail=str(path))

"""What a customer can do from their own page (a signed link, engine.web.links): see what they owe, say
"I have paid" or "I dispute this".

- **I have paid** (with their payment reference) is recorded as a `payment_claimed` event and, where the
  invoice is being chased, as a promise of the open amount by today + `web.claim_pause_days`: escalation
  pauses (plus the policy's grace days); when the money arrives the promise is kept, otherwise it is broken
  and escalation resumes at once. A `claim` task goes to the customer's owner to check the payment.
- **I dispute this** (with their text) is a dispute (engine.actions.Collector.dispute): chasing stops until
  someone resolves it.

Every action is recorded with the actor `customer:<id>`. An invoice of another customer is refused as the
link itself would be: LinkRefused, revealing nothing.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engine.actions import Collector
from engine.clock import local_day
from engine.errors import ClaimRefused, IllegalTransition, LinkRefused
from engine.policy.model import CLOSED_STATES, PAUSED_STATES
from engine.store import workspace
from engine.store.claims import record_claim

if TYPE_CHECKING:
    from engine.app import Dunning

MAX_REFERENCE = 120
MAX_TEXT = 2000


def clean_text(text: str | None, limit: int, what: str) -> str:
    """The customer's text with control characters removed; empty or too long is refused."""
    cleaned = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in (text or ""))
    cleaned = cleaned.strip()
    if not cleaned:
        raise ClaimRefused(f"please write {what}")
    if len(cleaned) > limit:
        raise ClaimRefused(f"{what} is too long: at most {limit} characters")
    return cleaned


class CustomerDesk:
    """One customer's own view of their account (the customer id comes from a verified link)."""

    def __init__(self, dunning: Dunning, customer_id: str):
        self.app = dunning
        self.customer_id = customer_id
        self.actor = f"customer:{customer_id}"

    def statement(self) -> dict[str, Any]:
        """The customer's name and open invoices (with days overdue), and the totals per currency."""
        customer = workspace.customer_record(self.app.repo, self.customer_id)
        if customer is None:
            raise LinkRefused("this link is not valid (changed, expired or unknown); ask us for a new one")
        today = local_day(self.app.clock.now(), self.app.settings.zone)
        invoices = workspace.customer_invoices(self.app.repo, self.customer_id, open_only=True)
        totals: dict[str, Any] = {}
        for invoice in invoices:
            invoice["days_overdue"] = (today - invoice["due_on"]).days
            invoice["paused"] = invoice["stage"] in PAUSED_STATES
            totals[invoice["currency"]] = totals.get(invoice["currency"], 0) + invoice["open_amount"]
        return {
            "customer": {"id": customer["id"], "name": customer["name"], "language": customer["language"]},
            "invoices": invoices,
            "totals": totals,
            "today": today,
        }

    def _own_open_invoice(self, number: str) -> dict[str, Any]:
        invoice = workspace.invoice_header(self.app.repo, number)
        if invoice is None or invoice["customer_id"] != self.customer_id:
            raise LinkRefused("this link is not valid (changed, expired or unknown); ask us for a new one")
        if invoice["stage"] in CLOSED_STATES:
            raise ClaimRefused(f"invoice {number} is already settled; nothing is owed on it")
        return invoice

    def claim_paid(self, number: str, reference: str, *, pause_days: int) -> dict[str, Any]:
        """Record "I have paid" with the customer's reference; pause escalation; task the owner to check."""
        reference = clean_text(reference, MAX_REFERENCE, "the payment reference (e.g. your bank transfer's)")
        invoice = self._own_open_invoice(number)
        now = self.app.clock.now()
        until = local_day(now, self.app.settings.zone) + timedelta(days=pause_days)
        paused = False
        if invoice["stage"] not in PAUSED_STATES:
            try:
                Collector(self.app, actor=self.actor).promise(
                    number, invoice["open_amount"], until, f"customer says it is paid (reference: {reference})"
                )
                paused = True
            except IllegalTransition:  # e.g. awaiting approval: the claim and the task still go on record
                paused = False
        record_claim(
            self.app.repo,
            invoice=invoice,
            reference=reference,
            pause_until=until if paused else None,
            actor=self.actor,
            now=now,
        )
        return {"invoice": number, "reference": reference, "paused_until": until if paused else None}

    def dispute(self, number: str, text: str) -> dict[str, Any]:
        """Record "I dispute this" with the customer's words (a dispute: chasing stops until resolved)."""
        text = clean_text(text, MAX_TEXT, "what is wrong with the invoice")
        invoice = self._own_open_invoice(number)
        if invoice["stage"] == "disputed":
            raise ClaimRefused(f"invoice {number} is already under dispute; we will be in touch")
        Collector(self.app, actor=self.actor).dispute(number, f"customer: {text}")
        return {"invoice": number, "reason": text}

"""What a notice tells the customer beyond the invoice itself: charges, total due, deadline, contact, pay link.

The dispatcher calls `NoticeContext.enrich(row, context, channel_type)` for every message it renders; the
values land in the template context (and in `Message.context` for the channels that lay out documents):

    charges     {number: {interest, compensation, fees, total_due, basis}} under a charging policy
    total_due   {currency: open amount + charges}
    deadline    the company-local date to pay by: the notice's day + `company.payment_days` (default 10)
    contact     the customer's owner from `company.owners` ({name, phone, email}), or None
    pay_link    `company.payment_link` filled in, with an HMAC-SHA256 `sig` (or None)
    details     where a template's invoice block goes: the letter channel's `[[details]]` marker, else a
                plain-text block (total due, deadline, payment instructions, pay link) for text channels
    statement_of_account   a callable giving the customer's statement (for `attach: [statement]`)
    attach      the stage's `attach:` list (None: the channel's), and `pre_due` (never attach a letter then)

Company fields may be given per language: `company.languages: {zh: {name: 上海示例贸易有限公司, address: …}}`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine.charges import round_minor
from engine.charging import Charging
from engine.clock import local_day
from engine.company import DETAILS_MARKER, company_for
from engine.errors import ChargesError, ConfigError
from engine.policy.model import Stage
from engine.store.charges import charge_rows
from engine.store.statements import STATEMENT_POLICY, STATEMENT_STAGE
from engine.templates import local_date, money

if TYPE_CHECKING:
    from engine.app import Dunning

__all__ = ["NoticeContext", "check_payment_link", "pay_link", "signature"]

#: The environment variable holding the pay link's HMAC secret (never the configuration file).
SECRET_ENV = "DUNNING_PAYMENT_LINK_SECRET"
_PLACEHOLDERS = ("number", "customer", "amount", "total_due", "currency", "sig")

_TEXT = {
    "en": {
        "total": "Total due",
        "by": "Please pay by",
        "pay": "Payment instructions",
        "link": "Pay online",
        "interest": "interest",
        "compensation": "compensation",
        "fees": "fees",
        "incl": "including",
    },
    "zh": {
        "total": "应付合计",
        "by": "请于以下日期前付款",
        "pay": "付款方式",
        "link": "在线付款",
        "interest": "逾期利息",
        "compensation": "固定赔偿",
        "fees": "费用",
        "incl": "其中",
    },
}


def signature(secret: str, number: str, amount: str, currency: str) -> str:
    """HMAC-SHA256 (hex) over `number|amount|currency`: the payment page recomputes it to trust the link."""
    return hmac.new(secret.encode("utf-8"), f"{number}|{amount}|{currency}".encode(), hashlib.sha256).hexdigest()


def pay_link(template: str, secret: str, *, number: str, customer: str, amount: Decimal, currency: str) -> str:
    """`company.payment_link` filled in; every value URL-encoded, so data cannot change the link's shape."""
    text = str(amount)
    values = {
        "number": number,
        "customer": customer,
        "amount": text,
        "total_due": text,
        "currency": currency,
        "sig": signature(secret, number, text, currency),
    }
    return template.format(**{k: quote(str(v), safe="") for k, v in values.items()})


def check_payment_link(company: Mapping[str, Any]) -> None:
    """ConfigError when `company.payment_link` is malformed or its secret is missing from the environment."""
    template = company.get("payment_link")
    if not template:
        return
    if not isinstance(template, str) or not template.startswith(("https://", "http://")):
        raise ConfigError(f"company.payment_link must be an http(s) URL template, got {template!r}")
    try:
        template.format(**{k: "x" for k in _PLACEHOLDERS})
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"company.payment_link: unknown or malformed placeholder {exc}; use "
            f"{', '.join('{' + p + '}' for p in _PLACEHOLDERS)}"
        ) from None
    if "{sig}" in template and not os.environ.get(SECRET_ENV):
        raise ConfigError(
            f"company.payment_link signs its links, but ${SECRET_ENV} is not set; export the secret "
            "the payment page checks the sig with"
        )


class NoticeContext:
    """Adds charges, total due, deadline, contact and pay link to each message the dispatcher renders."""

    def __init__(self, app: Dunning, statements: Callable[[str, datetime], Any] | None = None):
        self.app = app
        self.company = app.settings.company.model_dump()
        check_payment_link(self.company)
        self.charging = Charging(app.policies_if_valid(), app.settings.zone)
        self.statements = statements

    def enrich(self, row: Mapping[str, Any], context: dict[str, Any], channel_type: str | None) -> None:
        language = row.get("c_language")
        company = company_for(self.company, language)
        context["company"] = company
        today = local_day(row["created_at"], self.app.settings.zone)
        context["today"] = today
        context["deadline"] = today + timedelta(days=int(company.get("payment_days") or 10))
        owners = company.get("owners") or {}
        owner = owners.get(row.get("c_owner")) if isinstance(owners, Mapping) else None
        context["contact"] = dict(owner) if isinstance(owner, Mapping) else None
        invoices = context["invoices"]
        for item in invoices:  # days overdue on the company-local day, as the sweep and the charges count them
            item["days_overdue"] = (today - item["due_on"]).days
        charges = self._charges([str(i["number"]) for i in invoices], today)
        context["charges"] = charges
        due: dict[str, Decimal] = {}
        for item in invoices:
            found = charges.get(str(item["number"]))
            extra = found["total_due"] - round_minor(item["open_amount"], item["currency"]) if found else Decimal(0)
            due[item["currency"]] = due.get(item["currency"], Decimal(0)) + item["open_amount"] + extra
        context["total_due"] = {c: round_minor(a, c) for c, a in due.items()}
        # a message about the customer itself (credit hold, early warning) names no invoice to pay
        context["pay_link"] = self._link(company, row, invoices[0], context["total_due"]) if invoices else None
        context["reference"] = str(invoices[0]["number"]) if invoices else None
        if self.statements is not None:
            statements, customer, at = self.statements, row["customer_id"], row["created_at"]
            context["statement_of_account"] = lambda: statements(customer, at)
        stage = self._stage(row)
        context["attach"] = stage.attach if stage is not None else None
        if row["stage"] == STATEMENT_STAGE and row.get("policy") == STATEMENT_POLICY:
            context["attach"] = ("statement",)  # a scheduled statement carries the statement, whatever the channel says
        context["pre_due"] = bool(stage is not None and stage.pre_due)
        context["details"] = DETAILS_MARKER if channel_type == "letter" else self._text_details(context, language)

    def _stage(self, row: Mapping[str, Any]) -> Stage | None:
        policies = self.app.policies_if_valid()
        policy = policies.by_name(row.get("policy") or "") if policies is not None else None
        return policy.stage(row["stage"]) if policy is not None and policy.has_stage(row["stage"]) else None

    def _charges(self, numbers: list[str], today: date) -> dict[str, dict[str, Any]]:
        if not self.charging._any_charges():
            return {}
        with self.app.repo.read() as session:
            rows = charge_rows(session.connection(), numbers=numbers, open_only=False)
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            try:
                statement = self.charging.statement(row, today)
            except ChargesError:
                continue  # the sweep recorded the error in the notice's event; the notice goes out without charges
            if statement.charges:
                found[row.number] = {
                    "interest": statement.interest,
                    "compensation": statement.compensation,
                    "fees": statement.fees,
                    "total_due": statement.total_due,
                    "basis": statement.basis,
                }
        return found

    def _link(
        self, company: Mapping[str, Any], row: Mapping[str, Any], invoice: Mapping[str, Any], due: Mapping[str, Decimal]
    ) -> str | None:
        template = company.get("payment_link")
        if not template or len(due) != 1:
            return None  # one link pays one amount in one currency
        [(currency, amount)] = due.items()
        return pay_link(
            str(template),
            os.environ.get(SECRET_ENV, ""),
            number=str(invoice["number"]),
            customer=str(row["customer_id"]),
            amount=amount,
            currency=currency,
        )

    def _text_details(self, context: Mapping[str, Any], language: str | None) -> str:
        words = _TEXT["zh" if (language or "").lower().startswith("zh") else "en"]
        colon = "：" if words is _TEXT["zh"] else ": "
        lines = []
        for currency, amount in sorted(context["total_due"].items()):
            lines.append(f"{words['total']}{colon}{money(amount, currency, language)}")
        lines.append(f"{words['by']}{colon}{local_date(context['deadline'], language)}")
        company = context["company"]
        if company.get("payment_instructions"):
            lines.append(f"{words['pay']}{colon}{company['payment_instructions']}")
        if context.get("pay_link"):
            lines.append(f"{words['link']}{colon}{context['pay_link']}")
        return "\n".join(lines)

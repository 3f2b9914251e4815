"""PDF documents the channels produce: the dunning letter, a statement of account, a legal case summary.

Built with reportlab. Chinese (and any CJK) text uses reportlab's built-in CID font `STSong-Light`, which
needs no font file on the machine; Latin-only documents use Helvetica. Labels come in English and
Simplified Chinese, chosen by the message's language.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from xml.sax.saxutils import escape

from channels.base import Message
from engine.templates import local_date, money

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "invoice": "Invoice", "issued": "Issued", "due": "Due", "days": "Days overdue", "open": "Open amount",
        "total": "Total open", "pay": "Payment instructions", "statement": "Statement of account",
        "date": "Date", "customer": "Customer", "case": "Case file", "contact": "Contact",
        "history": "History", "amount": "Amount", "owner": "Collector", "reference": "Reference",
    },
    "zh": {
        "invoice": "发票", "issued": "开票日期", "due": "到期日", "days": "逾期天数", "open": "未付金额",
        "total": "未付合计", "pay": "付款方式", "statement": "对账单", "date": "日期", "customer": "客户",
        "case": "案件资料", "contact": "联系方式", "history": "催收记录", "amount": "金额", "owner": "负责人",
        "reference": "编号",
    },
}


@functools.cache
def _register_cjk() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def needs_cjk(texts: Iterable[Any]) -> bool:
    return any(ord(ch) >= 0x2E80 for text in texts for ch in str(text or ""))


def labels(language: str | None) -> dict[str, str]:
    base = (language or "en").replace("-", "_").split("_")[0].lower()
    return LABELS.get(base, LABELS["en"])


class _Doc:
    """A few paragraph styles on one font, chosen for the document's text."""

    def __init__(self, cjk: bool):
        if cjk:
            _register_cjk()
        self.font = CJK_FONT if cjk else LATIN_FONT
        bold = CJK_FONT if cjk else "Helvetica-Bold"
        wrap = "CJK" if cjk else None
        self.body = ParagraphStyle("body", fontName=self.font, fontSize=10, leading=14, wordWrap=wrap)
        self.small = ParagraphStyle("small", parent=self.body, fontSize=8.5, leading=11)
        self.title = ParagraphStyle("title", parent=self.body, fontName=bold, fontSize=14, leading=18,
                                    spaceBefore=6, spaceAfter=6)
        self.head = ParagraphStyle("head", parent=self.body, fontName=bold, fontSize=11, leading=15, spaceBefore=8)
        self.flow: list[Any] = []

    def para(self, text: Any, style: ParagraphStyle | None = None) -> None:
        lines = str(text or "").split("\n")
        self.flow.append(Paragraph("<br/>".join(escape(line) for line in lines), style or self.body))

    def space(self, height: float = 4) -> None:
        self.flow.append(Spacer(1, height * mm))

    def table(self, rows: Sequence[Sequence[Any]], widths: Sequence[float], *, right: Iterable[int] = ()) -> None:
        cells = [[Paragraph(escape(str(c)), self.small) for c in row] for row in rows]
        table = Table(cells, colWidths=[w * mm for w in widths], repeatRows=1)
        style = [
            ("FONTNAME", (0, 0), (-1, -1), self.font),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
            ("LINEBELOW", (0, -1), (-1, -1), 0.3, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        style += [("ALIGN", (col, 0), (col, -1), "RIGHT") for col in right]
        table.setStyle(TableStyle(style))
        self.flow.append(table)

    def build(self, title: str) -> bytes:
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm,
                                topMargin=18 * mm, bottomMargin=18 * mm, title=title, author="dunning")
        doc.build(self.flow)
        return buffer.getvalue()


def _texts(message: Message, company: Mapping[str, Any]) -> list[Any]:
    values: list[Any] = [message.subject, message.body, *company.values(), *message.customer.values()]
    for invoice in message.invoices:
        values += list(invoice.values())
    return values


def _letterhead(doc: _Doc, company: Mapping[str, Any]) -> None:
    doc.para(company.get("name") or "", doc.head)
    details = [company.get("address") or "", " · ".join(str(v) for v in (company.get("email"), company.get("phone")) if v)]
    doc.para("\n".join(d for d in details if d), doc.small)
    doc.space(8)


def invoice_rows(invoices: Sequence[Mapping[str, Any]], language: str | None, lab: Mapping[str, str]) -> list[list[str]]:
    rows = [[lab["invoice"], lab["issued"], lab["due"], lab["days"], lab["open"]]]
    for inv in invoices:
        rows.append([
            str(inv["number"]), local_date(inv["issued_on"], language, "medium"),
            local_date(inv["due_on"], language, "medium"), str(inv.get("days_overdue", "")),
            money(inv["open_amount"], inv["currency"], language),
        ])
    return rows


def totals(invoices: Sequence[Mapping[str, Any]]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for inv in invoices:
        sums[inv["currency"]] = sums.get(inv["currency"], Decimal(0)) + Decimal(inv["open_amount"])
    return sums


def _language(message: Message) -> str | None:
    """The customer's own language for formatting (None: plain `1,234.50 EUR` and ISO dates)."""
    value = message.customer.get("language") if message.customer else None
    return str(value) if value else None


def _today(message: Message) -> date:
    as_of = message.context.get("as_of") if message.context else None
    if isinstance(as_of, datetime):
        return as_of.date()
    return date.today()


def letter_pdf(message: Message, company: Mapping[str, Any]) -> bytes:
    """The dunning letter: letterhead, address, the stage's text, the overdue invoices, total, how to pay."""
    language = _language(message)
    lab = labels(message.language)
    doc = _Doc(needs_cjk(_texts(message, company)))
    _letterhead(doc, company)
    doc.para("\n".join(str(v) for v in (message.customer.get("name"), message.customer.get("address")) if v))
    doc.space(6)
    doc.para(f"{lab['date']}: {local_date(_today(message), language)}", doc.small)
    doc.para(message.subject, doc.title)
    doc.para(message.body)
    doc.space(4)
    doc.table(invoice_rows(message.invoices, language, lab), [34, 30, 30, 26, 50], right=(3, 4))
    doc.space(2)
    for currency, amount in sorted(totals(message.invoices).items()):
        doc.para(f"{lab['total']}: {money(amount, currency, language)}", doc.head)
    instructions = company.get("payment_instructions")
    if instructions:
        doc.para(lab["pay"], doc.head)
        doc.para(instructions)
    return doc.build(message.subject)


def statement_pdf(message: Message, company: Mapping[str, Any]) -> bytes:
    """A statement of account listing the invoices the message is about."""
    language = _language(message)
    lab = labels(message.language)
    doc = _Doc(needs_cjk(_texts(message, company)))
    _letterhead(doc, company)
    doc.para(f"{lab['statement']} — {message.customer.get('name')}", doc.title)
    doc.para(f"{lab['date']}: {local_date(_today(message), language)}", doc.small)
    doc.space(3)
    doc.table(invoice_rows(message.invoices, language, lab), [34, 30, 30, 26, 50], right=(3, 4))
    for currency, amount in sorted(totals(message.invoices).items()):
        doc.para(f"{lab['total']}: {money(amount, currency, language)}", doc.head)
    return doc.build(lab["statement"])


def case_pdf(case: Mapping[str, Any], company: Mapping[str, Any], language: str | None = None) -> bytes:
    """The one-document summary of a legal case file (the JSON/CSV bundle holds every detail)."""
    lab = labels(language)
    customer = case["customer"]
    invoices = case["invoices"]
    history = case["history"]
    texts = [*customer.values(), *company.values()] + [v for inv in invoices for v in inv.values()] + [
        h.get("summary") for h in history
    ]
    doc = _Doc(needs_cjk(texts))
    _letterhead(doc, company)
    doc.para(f"{lab['case']}: {customer.get('name')} ({customer.get('id')})", doc.title)
    doc.para(f"{lab['date']}: {case.get('prepared_on')}   {lab['reference']}: {case.get('key')}", doc.small)
    doc.para(lab["contact"], doc.head)
    doc.para("\n".join(f"{k}: {customer[k]}" for k in ("address", "email", "phone", "owner") if customer.get(k)))
    doc.para(lab["invoice"], doc.head)
    doc.table(invoice_rows(invoices, None, lab), [34, 30, 30, 26, 50], right=(3, 4))
    for currency, amount in sorted(totals(invoices).items()):
        doc.para(f"{lab['total']}: {money(amount, currency)}", doc.head)
    doc.para(lab["history"], doc.head)
    rows = [[lab["date"], lab["invoice"], "", ""]]
    for entry in history:
        rows.append([str(entry.get("at", ""))[:10], str(entry.get("invoice") or ""), str(entry.get("kind", "")),
                     str(entry.get("summary", ""))])
    doc.table(rows, [24, 30, 26, 90])
    return doc.build(f"{lab['case']} {customer.get('id')}")

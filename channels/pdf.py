"""PDF documents the channels produce: the dunning letter, the statement of account, a legal case summary.

Built with reportlab, with every font embedded (subset) so a letter reads the same on a machine without
any fonts: Latin text in DejaVu Sans (or Liberation Sans), Chinese in WenQuanYi Zen Hei, each run of text in
the font that has its glyphs. The fonts are Debian packages (`fonts-dejavu-core`, `fonts-wqy-zenhei`) that
`scripts/setup` and `.ci/run` install; `DUNNING_FONT_DIR` may point at a folder holding the same files.
reportlab embeds TrueType outlines only, which is why the CJK font is Zen Hei and not Noto CJK (CFF).

A letter is laid out as a company writes one: sender block, recipient block, date and our reference, the
subject, the stage's text from the template (salutation and paragraphs), the invoices, charges and total due,
payment instructions with the pay link (and its QR code), the contact person, then the template's closing
and signature. A template puts a line `[[details]]` where the invoice block goes; without one the block
follows the whole text. Labels come in English and Simplified Chinese, chosen by the message's language;
dates take the locale's long style everywhere in a document.
"""

from __future__ import annotations

import functools
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from channels.base import Message, PermanentDeliveryError
from engine.company import DETAILS_MARKER, company_for
from engine.templates import local_date, money

LATIN_FONT = "DocSans"
LATIN_BOLD = "DocSans-Bold"
CJK_FONT = "DocCJK"
#: Where the fonts are looked for, first found wins (DUNNING_FONT_DIR first).
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/wqy",
)
LATIN_FILES = (("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"), ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"))
CJK_FILE = "wqy-zenhei.ttc"

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "invoice": "Invoice",
        "issued": "Issued",
        "due": "Due",
        "days": "Days overdue",
        "open": "Open amount",
        "total": "Total due",
        "pay": "Payment instructions",
        "statement": "Statement of account",
        "date": "Date",
        "customer": "Customer",
        "case": "Case file",
        "contact": "Your contact",
        "history": "History",
        "amount": "Amount",
        "owner": "Collector",
        "reference": "Our reference",
        "customer_no": "Customer no.",
        "interest": "Interest",
        "compensation": "Compensation",
        "fees": "Fees",
        "charges": "Charges",
        "principal": "Principal",
        "pay_online": "Pay online",
        "page": "Page {page} of {pages}",
        "period": "Period",
        "payments": "Payments received",
        "paid_on": "Paid on",
        "aging": "Aging",
        "current": "Not yet due",
        "1_30": "1–30 days",
        "31_60": "31–60 days",
        "61_90": "61–90 days",
        "over_90": "Over 90 days",
        "open_items": "Open invoices",
        "no_payments": "No payments in this period.",
        "credits": "Credits (invoice amounts lowered)",
        "amount_before": "Amount was",
        "amount_after": "Amount now",
        "credit": "Credit",
        "basis": "Legal basis",
        "to": "to",
        "statement_intro": "Your account with us as of {date}.",
        "to_line": "",
        "phone": "Phone",
        "email": "Email",
        "colon": ": ",
        "payment_ref": "Reference",
    },
    "zh": {
        "invoice": "发票",
        "issued": "开票日期",
        "due": "到期日",
        "days": "逾期天数",
        "open": "未付金额",
        "total": "应付合计",
        "pay": "付款方式",
        "statement": "对账单",
        "date": "日期",
        "customer": "客户",
        "case": "案件资料",
        "contact": "联系人",
        "history": "催收记录",
        "amount": "金额",
        "owner": "负责人",
        "reference": "我方编号",
        "customer_no": "客户编号",
        "interest": "逾期利息",
        "compensation": "固定赔偿",
        "fees": "费用",
        "charges": "逾期费用",
        "principal": "本金",
        "pay_online": "在线付款",
        "page": "第 {page} 页，共 {pages} 页",
        "period": "期间",
        "payments": "已收款项",
        "paid_on": "付款日期",
        "aging": "账龄",
        "current": "未到期",
        "1_30": "1–30 天",
        "31_60": "31–60 天",
        "61_90": "61–90 天",
        "over_90": "90 天以上",
        "open_items": "未付发票",
        "no_payments": "本期间无付款。",
        "credits": "贷项（发票金额调减）",
        "amount_before": "原金额",
        "amount_after": "调整后金额",
        "credit": "贷项金额",
        "basis": "依据",
        "to": "至",
        "statement_intro": "截至 {date} 贵司在我司的往来账目如下。",
        "to_line": "致：",
        "phone": "电话",
        "email": "邮箱",
        "colon": "：",
        "payment_ref": "付款凭证号",
    },
}


class FontsMissing(PermanentDeliveryError):
    """The TrueType fonts documents embed are not installed."""


def _font_dirs() -> list[Path]:
    extra = os.environ.get("DUNNING_FONT_DIR")
    return [Path(d) for d in ([extra] if extra else []) + list(FONT_DIRS)]


def _find(name: str) -> Path | None:
    return next((d / name for d in _font_dirs() if (d / name).is_file()), None)


@functools.cache
def register_fonts(cjk: bool) -> None:
    """Register the embedded fonts once (the Latin pair always, the CJK font when a document needs it)."""
    for regular, bold in LATIN_FILES:
        found, found_bold = _find(regular), _find(bold)
        if found and found_bold:
            pdfmetrics.registerFont(TTFont(LATIN_FONT, str(found)))
            pdfmetrics.registerFont(TTFont(LATIN_BOLD, str(found_bold)))
            break
    else:
        raise FontsMissing(
            "no Latin TrueType font for PDFs: install the Debian package fonts-dejavu-core (or "
            "fonts-liberation), or set DUNNING_FONT_DIR to a folder with DejaVuSans.ttf"
        )
    pdfmetrics.registerFontFamily(LATIN_FONT, normal=LATIN_FONT, bold=LATIN_BOLD)
    if cjk:
        found = _find(CJK_FILE)
        if found is None:
            raise FontsMissing(
                "no CJK TrueType font for PDFs: install the Debian package fonts-wqy-zenhei, or set "
                f"DUNNING_FONT_DIR to a folder with {CJK_FILE}"
            )
        pdfmetrics.registerFont(TTFont(CJK_FONT, str(found), subfontIndex=0))


def needs_cjk(texts: Iterable[Any]) -> bool:
    return any(_is_cjk(ch) for text in texts for ch in str(text or ""))


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF or 0x3000 <= code <= 0x303F


def labels(language: str | None) -> dict[str, str]:
    base = (language or "en").replace("-", "_").split("_")[0].lower()
    return LABELS.get(base, LABELS["en"])


_RUNS = re.compile(r"([\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+)")


def markup(text: Any, cjk: bool, bold: bool = False) -> str:
    """Paragraph markup for `text`: escaped, each run of CJK characters in the CJK font, the rest in Latin."""
    lines = str(text if text is not None else "").split("\n")
    out = []
    for line in lines:
        if not cjk:
            out.append(escape(line))
            continue
        parts = []
        for index, run in enumerate(_RUNS.split(line)):
            if not run:
                continue
            face = CJK_FONT if index % 2 else (LATIN_BOLD if bold else LATIN_FONT)
            parts.append(f'<font face="{face}">{escape(run)}</font>')
        out.append("".join(parts))
    body = "<br/>".join(out)
    return f"<b>{body}</b>" if bold and not cjk else body


class _NumberedCanvas(pdfcanvas.Canvas):
    """Draws "Page n of m" at the foot of every page, but only when the document has more than one page."""

    page_label = LABELS["en"]["page"]
    font = LATIN_FONT

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            if total > 1:
                self.setFont(self.font, 8)
                self.drawRightString(
                    A4[0] - 20 * mm, 10 * mm, self.page_label.format(page=self._pageNumber, pages=total)
                )
            super().showPage()
        super().save()


class _Doc:
    """Paragraph styles on the embedded fonts, and the flowables of one document."""

    def __init__(self, cjk: bool, language: str | None):
        register_fonts(cjk)
        self.cjk = cjk
        self.language = language
        self.lab = labels(language)
        font = CJK_FONT if cjk else LATIN_FONT
        wrap = "CJK" if cjk else None
        self.body = ParagraphStyle("body", fontName=font, fontSize=10, leading=13.5, wordWrap=wrap, spaceAfter=4)
        self.small = ParagraphStyle("small", parent=self.body, fontSize=8.5, leading=11, spaceAfter=0)
        self.cell = ParagraphStyle("cell", parent=self.small, wordWrap=None)
        self.cell_right = ParagraphStyle("cell_right", parent=self.cell, alignment=TA_RIGHT)
        self.right = ParagraphStyle("right", parent=self.small, alignment=TA_RIGHT)
        self.title = ParagraphStyle(
            "title",
            parent=self.body,
            fontName=CJK_FONT if cjk else LATIN_BOLD,
            fontSize=13,
            leading=17,
            spaceBefore=4,
            spaceAfter=8,
        )
        self.head = ParagraphStyle(
            "head",
            parent=self.body,
            fontName=CJK_FONT if cjk else LATIN_BOLD,
            fontSize=10.5,
            leading=14,
            spaceBefore=4,
            spaceAfter=2,
        )
        self.flow: list[Any] = []

    def text(self, value: Any, style: ParagraphStyle | None = None, *, bold: bool = False) -> Paragraph:
        return Paragraph(markup(value, self.cjk, bold), style or self.body)

    def para(self, value: Any, style: ParagraphStyle | None = None, *, bold: bool = False) -> None:
        self.flow.append(self.text(value, style, bold=bold))

    def paragraphs(self, text: str, *, together: bool = False) -> None:
        """Template text: blank lines separate paragraphs; single line breaks stay. `together` keeps them on one
        page (a closing and its signature)."""
        blocks = [self.text(b.strip("\n")) for b in re.split(r"\n\s*\n", text.strip("\n")) if b.strip()]
        if together:
            self.flow.append(KeepTogether(blocks))
        else:
            self.flow.extend(blocks)

    def space(self, height: float = 4) -> None:
        self.flow.append(Spacer(1, height * mm))

    def table(
        self,
        rows: Sequence[Sequence[Any]],
        widths: Sequence[float],
        *,
        right: Iterable[int] = (),
        total_row: bool = False,
    ) -> None:
        right = set(right)
        cells = [
            [
                self.text(
                    c, self.cell_right if i in right else self.cell, bold=r == 0 or (total_row and r == len(rows) - 1)
                )
                for i, c in enumerate(row)
            ]
            for r, row in enumerate(rows)
        ]
        table = Table(cells, colWidths=[w * mm for w in widths], repeatRows=1)
        style = [
            ("FONTNAME", (0, 0), (-1, -1), LATIN_FONT),  # the table's own default is Helvetica, never embedded
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
            ("LINEBELOW", (0, -1), (-1, -1), 0.3, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]
        if total_row:
            style.append(("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black))
        table.setStyle(TableStyle(style))
        self.flow.append(table)

    def date(self, value: Any) -> str:
        return local_date(value, self.language, "long")

    def money(self, amount: Any, currency: str) -> str:
        return money(amount, currency, self.language)

    def build(self, title: str) -> bytes:
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=22 * mm,
            rightMargin=20 * mm,
            topMargin=18 * mm,
            bottomMargin=20 * mm,
            title=title,
            author="dunning",
        )
        label = self.lab["page"]
        font = CJK_FONT if self.cjk else LATIN_FONT

        def canvasmaker(*args: Any, **kwargs: Any) -> _NumberedCanvas:
            # the canvas would otherwise start every page in Helvetica, a font that is never embedded
            made = _NumberedCanvas(*args, **{**kwargs, "initialFontName": LATIN_FONT})
            made.page_label, made.font = label, font
            return made

        doc.build(self.flow, canvasmaker=canvasmaker)
        return buffer.getvalue()


# --------------------------------------------------------------------------- shared blocks


def _sender_block(doc: _Doc, company: Mapping[str, Any]) -> None:
    doc.para(company.get("name") or "", doc.head, bold=True)
    contact = " · ".join(str(v) for v in (company.get("phone"), company.get("email"), company.get("website")) if v)
    doc.para("\n".join(str(d) for d in (company.get("address"), contact) if d), doc.small)
    doc.space(7)


def _recipient_block(doc: _Doc, customer: Mapping[str, Any]) -> None:
    lines = [str(v) for v in (customer.get("name"), customer.get("address")) if v]
    if lines and doc.lab["to_line"]:
        lines[0] = doc.lab["to_line"] + lines[0]
    doc.para("\n".join(lines))
    doc.space(3)


def _reference_block(doc: _Doc, day: date, reference: str, customer_id: Any) -> None:
    lab = doc.lab
    doc.para(
        f"{lab['date']}{lab['colon']}{doc.date(day)}\n{lab['reference']}{lab['colon']}{reference}\n{lab['customer_no']}{lab['colon']}{customer_id}",
        doc.right,
    )
    doc.space(2)


def invoice_rows(invoices: Sequence[Mapping[str, Any]], doc: _Doc) -> list[list[str]]:
    lab = doc.lab
    rows = [[lab["invoice"], lab["issued"], lab["due"], lab["days"], lab["open"]]]
    for inv in invoices:
        rows.append(
            [
                str(inv["number"]),
                doc.date(inv["issued_on"]),
                doc.date(inv["due_on"]),
                str(max(int(inv.get("days_overdue") or 0), 0)),
                doc.money(inv["open_amount"], inv["currency"]),
            ]
        )
    return rows


def totals(invoices: Sequence[Mapping[str, Any]]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for inv in invoices:
        sums[inv["currency"]] = sums.get(inv["currency"], Decimal(0)) + Decimal(inv["open_amount"])
    return sums


def _charges_of(message: Message) -> dict[str, Mapping[str, Any]]:
    charges = message.context.get("charges") if message.context else None
    return dict(charges) if isinstance(charges, Mapping) else {}


def _details(doc: _Doc, message: Message, company: Mapping[str, Any]) -> None:
    """Invoice table, charges, total due per currency, payment instructions, pay link, contact person."""
    lab = doc.lab
    doc.space(2)
    doc.table(invoice_rows(message.invoices, doc), [34, 36, 36, 24, 40], right=(3, 4))
    doc.space(3)
    charges = _charges_of(message)
    due: dict[str, Decimal] = {}
    rows: list[list[str]] = []
    bases: list[str] = []
    for inv in message.invoices:
        currency = inv["currency"]
        found = charges.get(str(inv["number"]))
        extra = Decimal(0)
        if found:
            for key in ("interest", "compensation", "fees"):
                amount = Decimal(str(found.get(key) or 0))
                if amount:
                    rows.append([str(inv["number"]), lab[key], doc.money(amount, currency)])
                    extra += amount
            if found.get("basis") and found["basis"] not in bases:
                bases.append(str(found["basis"]))
        due[currency] = due.get(currency, Decimal(0)) + Decimal(inv["open_amount"]) + extra
    if rows:
        doc.para(lab["charges"], doc.head)
        doc.table([[lab["invoice"], "", lab["amount"]], *rows], [34, 96, 40], right=(2,))
        for basis in bases:
            doc.para(f"{lab['basis']}{lab['colon']}{basis}", doc.small)
        doc.space(2)
    for currency, amount in sorted(due.items()):
        doc.para(f"{lab['total']}{lab['colon']}{doc.money(amount, currency)}", doc.head, bold=True)
    payment = []
    if company.get("payment_instructions"):
        payment.append(doc.text(lab["pay"], doc.head, bold=True))
        payment.append(doc.text(company["payment_instructions"]))
    link = message.context.get("pay_link") if message.context else None
    if link:
        payment.append(_pay_link_block(doc, str(link)))
    if payment:
        doc.flow.append(KeepTogether(payment))
    contact = message.context.get("contact") if message.context else None
    if isinstance(contact, Mapping) and contact.get("name"):
        lines = [str(contact["name"])]
        lines += [f"{lab[k]}{lab['colon']}{contact[k]}" for k in ("phone", "email") if contact.get(k)]
        doc.flow.append(KeepTogether([doc.text(lab["contact"], doc.head, bold=True), doc.text("\n".join(lines))]))
    doc.space(4)


def _pay_link_block(doc: _Doc, link: str) -> Table:
    widget = QrCodeWidget(link, barLevel="M")
    x1, y1, x2, y2 = widget.getBounds()
    size = 22 * mm
    drawing = Drawing(size, size, transform=[size / (x2 - x1), 0, 0, size / (y2 - y1), 0, 0])
    drawing.initialFontName = LATIN_FONT  # graphics start in Helvetica otherwise, which is never embedded
    drawing.add(widget)
    text = doc.text(f"{doc.lab['pay_online']}{doc.lab['colon']}\n{link}", doc.small)
    table = Table([[drawing, text]], colWidths=[26 * mm, 142 * mm])
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), LATIN_FONT),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LEFTPADDING", (0, 0), (0, 0), 0),
            ]
        )
    )
    return table


def _language(message: Message) -> str | None:
    """The customer's own language for formatting (None: plain `1,234.50 EUR` and ISO dates)."""
    value = message.customer.get("language") if message.customer else None
    return str(value) if value else None


def _today(message: Message) -> date:
    today = message.context.get("today") if message.context else None
    if isinstance(today, date) and not isinstance(today, datetime):
        return today
    as_of = message.context.get("as_of") if message.context else None
    if isinstance(as_of, datetime):
        return as_of.date()
    return date.today()


def _texts(message: Message, company: Mapping[str, Any]) -> list[Any]:
    values: list[Any] = [message.subject, message.body, *company.values(), *message.customer.values()]
    for invoice in message.invoices:
        values += list(invoice.values())
    return values


# --------------------------------------------------------------------------- documents


def letter_pdf(message: Message, company: Mapping[str, Any]) -> bytes:
    """The dunning letter, laid out as a company writes one (see the module docstring)."""
    language = _language(message)
    company = company_for(company, language or message.language)
    doc = _Doc(needs_cjk(_texts(message, company)), language)
    _sender_block(doc, company)
    _recipient_block(doc, message.customer)
    reference = str(
        message.context.get("reference") or message.invoices[0]["number"] if message.invoices else message.key
    )
    _reference_block(doc, _today(message), reference, message.customer.get("id", ""))
    doc.para(message.subject, doc.title, bold=True)
    before, marker, after = message.body.partition(DETAILS_MARKER)
    doc.paragraphs(before)
    _details(doc, message, company)
    if marker:
        doc.paragraphs(after, together=True)
    return doc.build(message.subject)


def statement_pdf(message: Message, company: Mapping[str, Any]) -> bytes:
    """The statement of account attached to a message: the customer's real statement when the dispatcher
    supplied one (`context["statement_of_account"]`), else the message's own invoices."""
    source = message.context.get("statement_of_account") if message.context else None
    statement = source() if callable(source) else None
    if statement is not None:
        return statement_document(statement.as_dict(), company, _language(message) or message.language)
    today = _today(message)
    invoices = list(message.invoices)
    sections = []
    for currency in sorted({str(i["currency"]) for i in invoices}):
        own = [i for i in invoices if i["currency"] == currency]
        total = sum((Decimal(i["open_amount"]) for i in own), Decimal(0))
        sections.append(
            {
                "currency": currency,
                "invoices": own,
                "payments": [],
                "aging": {},
                "open_amount": total,
                "charges": Decimal(0),
                "total_due": total,
            }
        )
    return statement_document(
        {"customer": dict(message.customer), "as_of": today, "from": today.replace(day=1), "currencies": sections},
        company,
        _language(message) or message.language,
    )


def statement_document(statement: Mapping[str, Any], company: Mapping[str, Any], language: str | None) -> bytes:
    """A statement of account (`engine.statement.StatementOfAccount.as_dict()`), in the letter's style."""
    customer = statement["customer"]
    language = language or customer.get("language")
    company = company_for(company, language)
    texts = [*customer.values(), *company.values()] + [
        v for s in statement["currencies"] for i in s["invoices"] for v in i.values()
    ]
    doc = _Doc(needs_cjk(texts) or labels(language) is LABELS["zh"], language)
    lab = doc.lab
    _sender_block(doc, company)
    _recipient_block(doc, customer)
    _reference_block(doc, statement["as_of"], f"{customer.get('id')}/{_iso(statement['as_of'])}", customer.get("id"))
    doc.para(f"{lab['statement']}", doc.title, bold=True)
    doc.para(lab["statement_intro"].format(date=doc.date(statement["as_of"])))
    for section in statement["currencies"]:
        currency = section["currency"]
        doc.para(f"{lab['open_items']} ({currency})", doc.head, bold=True)
        rows = [[lab["invoice"], lab["due"], lab["days"], lab["open"], lab["charges"], lab["total"]]]
        for inv in section["invoices"]:
            extra = sum((Decimal(str(inv.get(k) or 0)) for k in ("interest", "compensation", "fees")), Decimal(0))
            rows.append(
                [
                    str(inv["number"]),
                    doc.date(inv["due_on"]),
                    str(max(int(inv.get("days_overdue") or 0), 0)),
                    doc.money(inv["open_amount"], currency),
                    doc.money(extra, currency),
                    doc.money(inv.get("total_due", Decimal(inv["open_amount"]) + extra), currency),
                ]
            )
        rows.append(
            [
                lab["total"],
                "",
                "",
                doc.money(section["open_amount"], currency),
                doc.money(section["charges"], currency),
                doc.money(section["total_due"], currency),
            ]
        )
        doc.table(rows, [30, 34, 20, 30, 26, 30], right=(2, 3, 4, 5), total_row=True)
        aging = section.get("aging") or {}
        if aging:
            doc.para(lab["aging"], doc.head)
            names = ["current", "1_30", "31_60", "61_90", "over_90"]
            doc.table(
                [[lab[n] for n in names], [doc.money(aging.get(n, 0), currency) for n in names]],
                [34] * 5,
                right=range(5),
            )
        doc.para(
            f"{lab['payments']} ({doc.date(statement['from'])} {lab['to']} {doc.date(statement['as_of'])})", doc.head
        )
        if section["payments"]:
            prows = [[lab["paid_on"], lab["invoice"], lab["payment_ref"], lab["amount"]]]
            prows += [
                [
                    doc.date(p["paid_on"]),
                    str(p["invoice"]),
                    str(p.get("reference") or ""),
                    doc.money(p["amount"], currency),
                ]
                for p in section["payments"]
            ]
            doc.table(prows, [36, 36, 58, 40], right=(3,))
        else:
            doc.para(lab["no_payments"], doc.small)
        if section.get("credits"):
            doc.para(lab["credits"], doc.head)
            crows = [[lab["date"], lab["invoice"], lab["amount_before"], lab["amount_after"], lab["credit"]]]
            crows += [
                [
                    doc.date(c["on"]),
                    str(c["invoice"]),
                    doc.money(c["amount_before"], currency),
                    doc.money(c["amount_after"], currency),
                    doc.money(c["amount"], currency),
                ]
                for c in section["credits"]
            ]
            doc.table(crows, [30, 36, 36, 36, 32], right=(2, 3, 4))
        doc.space(3)
    for section in statement["currencies"]:
        doc.para(
            f"{lab['total']}{lab['colon']}{doc.money(section['total_due'], section['currency'])}", doc.head, bold=True
        )
    if company.get("payment_instructions"):
        doc.flow.append(
            KeepTogether([doc.text(lab["pay"], doc.head, bold=True), doc.text(company["payment_instructions"])])
        )
    if statement.get("pay_link"):
        doc.flow.append(_pay_link_block(doc, str(statement["pay_link"])))
    return doc.build(f"{lab['statement']} {customer.get('id')}")


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def case_pdf(case: Mapping[str, Any], company: Mapping[str, Any], language: str | None = None) -> bytes:
    """The one-document summary of a legal case file (the JSON/CSV bundle holds every detail)."""
    customer = case["customer"]
    invoices = case["invoices"]
    history = case["history"]
    texts = (
        [*customer.values(), *company.values()]
        + [v for inv in invoices for v in inv.values()]
        + [h.get("summary") for h in history]
    )
    doc = _Doc(needs_cjk(texts), None)
    doc.lab = labels(language)
    lab = doc.lab
    _sender_block(doc, company)
    doc.para(f"{lab['case']}{lab['colon']}{customer.get('name')} ({customer.get('id')})", doc.title, bold=True)
    doc.para(
        f"{lab['date']}{lab['colon']}{case.get('prepared_on')}   {lab['reference']}{lab['colon']}{case.get('key')}",
        doc.small,
    )
    doc.para(lab["contact"], doc.head)
    doc.para("\n".join(f"{k}: {customer[k]}" for k in ("address", "email", "phone", "owner") if customer.get(k)))
    doc.para(lab["invoice"], doc.head)
    doc.table(invoice_rows(invoices, doc), [34, 36, 36, 24, 40], right=(3, 4))
    for currency, amount in sorted(totals(invoices).items()):
        doc.para(f"{lab['total']}{lab['colon']}{money(amount, currency)}", doc.head)
    doc.para(lab["history"], doc.head)
    rows = [[lab["date"], lab["invoice"], "", ""]]
    for entry in history:
        rows.append(
            [
                str(entry.get("at", ""))[:10],
                str(entry.get("invoice") or ""),
                str(entry.get("kind", "")),
                str(entry.get("summary", "")),
            ]
        )
    doc.table(rows, [24, 30, 26, 90])
    return doc.build(f"{lab['case']} {customer.get('id')}")

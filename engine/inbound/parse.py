"""Reading one received message: is it a bounce, an auto-reply or a person's reply, and what does it say?

- **Bounces**: RFC 3464 delivery status notifications (`multipart/report; report-type=delivery-status`) and
  the common non-standard ones (a mailer-daemon's "Undeliverable", "Mail delivery failed", qmail's "failure
  notice", Chinese 退信), with the enhanced status code (5.x.x permanent, 4.x.x temporary), the failed
  recipient and the Message-ID of the message that failed where the bounce quotes it.
- **Auto-replies**: RFC 3834 `Auto-Submitted` (anything but `no`), `X-Autoreply` / `X-Autorespond`,
  `Precedence: auto_reply`, and out-of-office wording in English and Chinese, with the return date if the
  text gives one.
- **Human replies**: everything else, with *suggested* intents found in the reply's own text (quoted text
  below "On ... wrote:" or `>` lines is left out, so our notice's "if you have already paid" never counts):
  a promise (amount and date), a dispute, a payment claim.

Pure functions of the message bytes and `today` (to give a date written without a year its year).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

BOUNCE, AUTO_REPLY, REPLY = "bounce", "auto_reply", "reply"
PROMISE, DISPUTE, PAYMENT_CLAIM = "promise", "dispute", "payment_claim"
#: How many lines of the reply's own text an event keeps.
FIRST_LINES = 5
#: At most this many invoice-number candidates are taken from one message (a pasted statement is not a list
#: of claims on every invoice).
MAX_CANDIDATES = 50

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATE_PATTERNS = [
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("zh", re.compile(r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")),
    ("dmy", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?(?:,?\s+(\d{{4}}))?\b", re.I)),
    ("mdy", re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.I)),
]
_AMOUNT = re.compile(
    r"(?:(?P<pre>EUR|USD|GBP|CNY|RMB|CHF|JPY|€|\$|£|¥|￥)\s?(?P<a1>\d[\d,]*(?:\.\d{1,2})?))"
    r"|(?:(?P<a2>\d[\d,]*(?:\.\d{1,2})?)\s?(?P<post>EUR|USD|GBP|CNY|RMB|CHF|JPY|元|块|euros?|dollars?)(?![A-Za-z]))",
    re.I,
)
_SYMBOLS = {
    "€": "EUR",
    "$": "USD",
    "£": "GBP",
    "¥": "CNY",
    "￥": "CNY",
    "RMB": "CNY",
    "元": "CNY",
    "块": "CNY",
    "EURO": "EUR",
    "EUROS": "EUR",
    "DOLLAR": "USD",
    "DOLLARS": "USD",
}
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([45])\d\d[ -]")
_MESSAGE_IDS = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/_.#]{1,62}[A-Za-z0-9]")

_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECTS = re.compile(
    r"undeliver|delivery status notification|delivery has failed|mail delivery failed|failure notice|"
    r"returned mail|delivery failure|could not be delivered|退信|投递失败|无法投递|系统退信",
    re.I,
)
_AUTO_SUBJECTS = re.compile(r"^\s*(automatic reply|auto[- ]?reply|autoreply|auto:|out of (the )?office|自动回复)", re.I)
_OUT_OF_OFFICE = re.compile(
    r"out of (the )?office|away from (the |my )?office|on (annual |parental |sick )?leave|on holiday|on vacation|"
    r"limited access to (my )?e-?mail|i am (currently )?away|i'm (currently )?away|休假|不在办公室|外出|请假|出差",
    re.I,
)
_RETURN_WORDS = re.compile(r"back|return|until|till|resum|回|返|上班|之后|以后", re.I)
_QUOTE_HEADERS = re.compile(
    r"^(on .{0,200}wrote:|-{2,}\s*original message\s*-{2,}|-{2,}\s*原始邮件\s*-{2,}|from:\s.*|发件人[:：].*|"
    r"在\s?.{0,80}写道[:：])\s*$",
    re.I,
)

_INTENTS: list[tuple[str, re.Pattern[str]]] = [
    (
        PAYMENT_CLAIM,
        re.compile(
            r"already (been )?(paid|settled|transferred)|(have|has|had) (already )?(been )?(paid|settled|transferred)|"
            r"paid (it|this|that|the invoice|in full) (already|last|on|yesterday)|payment (was|has been) (made|sent)|"
            r"remittance advice|proof of payment|payment confirmation|已(经)?(付款|支付|汇款|打款|结清|付清|转账)|"
            r"付款凭证|汇款单|转账凭证|水单",
            re.I,
        ),
    ),
    (
        DISPUTE,
        re.compile(
            r"(not|never|haven't|hasn't|didn't|did not|have not|has not) (yet )?(been )?(receiv|arriv|deliver)|"
            r"damaged|defective|faulty|broken on arrival|wrong (item|goods|amount|price|invoice)|"
            r"incorrect (invoice|amount|price)|\bdispute|not as ordered|quality (issue|problem)|质量问题|"
            r"(没有|没|未)(有)?(收到|到货)|有争议|货不对|损坏|不合格|金额不对|错误的发票",
            re.I,
        ),
    ),
    (
        PROMISE,
        re.compile(
            r"\b(will|shall|going to|'ll|plan to|intend to|expect to|aim to|promise to)\b[^.!?\n]{0,40}"
            r"\b(pay|settle|transfer|remit|clear)|payment will (be )?(made|sent|transferred|follow)|"
            r"(将|会|预计|计划|保证|承诺|争取).{0,16}(付款|支付|汇款|打款|结清|付清|转账|付)",
            re.I,
        ),
    ),
]


@dataclass(frozen=True)
class BounceInfo:
    """A delivery failure: `permanent` for 5.x.x (and a DSN's `Action: failed` without a code)."""

    status: str
    permanent: bool
    recipient: str | None
    diagnostic: str | None
    original_message_id: str | None
    standard: bool  # an RFC 3464 report, not a guessed one


@dataclass(frozen=True)
class Intent:
    """A suggestion read from a reply: never applied until a person confirms it."""

    kind: str
    phrase: str
    amount: str | None = None
    currency: str | None = None
    on: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "phrase": self.phrase,
            "amount": self.amount,
            "currency": self.currency,
            "on": self.on.isoformat() if self.on else None,
        }


@dataclass(frozen=True)
class Inbound:
    """One received message, read."""

    message_id: str
    sender: str | None
    subject: str
    sent_at: datetime | None
    kind: str
    references: tuple[str, ...]
    text: str  # the message's own text, quotes left out
    full_text: str
    content_hash: str
    bounce: BounceInfo | None = None
    returns_on: date | None = None
    intents: tuple[Intent, ...] = ()
    candidates: tuple[str, ...] = field(default=())

    @property
    def first_lines(self) -> str:
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return "\n".join(lines[:FIRST_LINES])[:1000]


def read_message(raw: bytes, *, today: date) -> Inbound:
    """Read one RFC 822 message. Never raises for a malformed message: what cannot be read stays empty."""
    message = message_from_bytes(raw, policy=policy.default)
    content_hash = hashlib.sha256(raw).hexdigest()
    message_id = _ids(_header(message, "Message-ID"))
    own_id = message_id[0] if message_id else f"sha256:{content_hash}"
    sender = parseaddr(_header(message, "From"))[1].strip().lower().replace("\x00", "")[:320] or None
    subject = " ".join(_header(message, "Subject").replace("\x00", "").split())[:500]
    references = tuple(dict.fromkeys([*_ids(_header(message, "In-Reply-To")), *_ids(_header(message, "References"))]))
    full_text = _body_text(message)
    own_text = strip_quotes(full_text)
    sent_at = _date(_header(message, "Date"))
    base: dict[str, Any] = dict(
        message_id=own_id,
        sender=sender,
        subject=subject,
        sent_at=sent_at,
        references=references,
        text=own_text,
        full_text=full_text,
        content_hash=content_hash,
        candidates=invoice_candidates(subject + "\n" + full_text),
    )
    bounce = read_bounce(message, sender, subject, full_text)
    if bounce is not None:
        originals = (bounce.original_message_id,) if bounce.original_message_id else ()
        return Inbound(
            kind=BOUNCE, bounce=bounce, **{**base, "references": tuple(dict.fromkeys([*references, *originals]))}
        )
    if is_auto_reply(message, subject, own_text):
        return Inbound(kind=AUTO_REPLY, returns_on=return_date(own_text, today), **base)
    return Inbound(kind=REPLY, intents=tuple(read_intents(subject + "\n" + own_text, today)), **base)


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header the parser cannot decode reads as empty
        return ""
    return str(value) if value is not None else ""


def _ids(value: str) -> list[str]:
    return [f"<{found}>" for found in _MESSAGE_IDS.findall((value or "").replace("\x00", ""))[:50] if len(found) < 250]


def _date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _part_text(part: Message) -> str:
    try:
        if isinstance(part, EmailMessage):
            content = part.get_content()
            return content if isinstance(content, str) else ""
    except (LookupError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    for charset in (part.get_content_charset() or "utf-8", "utf-8", "gb18030", "latin-1"):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return ""


def _body_text(message: Message) -> str:
    """The readable text: text/plain parts (text/html stripped when there is no plain part); attached
    messages (a bounce's copy of the original) included, so their Message-ID and numbers can be found."""
    plain: list[str] = []
    html_parts: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if part.is_multipart():
            continue
        if kind == "text/plain":
            plain.append(_part_text(part))
        elif kind == "text/html":
            html_parts.append(_html_text(_part_text(part)))
        elif kind in ("text/rfc822-headers", "message/delivery-status"):
            plain.append(_part_text(part) or str(part.get_payload()))
    text = "\n".join(plain) if plain else "\n".join(html_parts)
    # NUL never belongs in text, and PostgreSQL refuses it in text and JSON columns.
    return text.replace("\r\n", "\n").replace("\x00", "")[:200_000]


def _html_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style).*?</\1>", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", markup)
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def strip_quotes(text: str) -> str:
    """The reply's own words: up to the first quote header ("On ... wrote:", "-----Original Message-----",
    "发件人:"), without `>` lines."""
    kept: list[str] = []
    for line in text.splitlines():
        if _QUOTE_HEADERS.match(line.strip()):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


# -- bounces ---------------------------------------------------------------------------------------


def read_bounce(message: Message, sender: str | None, subject: str, text: str) -> BounceInfo | None:
    """A bounce's status, failed recipient and original Message-ID; None when the message is no bounce."""
    if (
        message.get_content_type() == "multipart/report"
        and (message.get_param("report-type") or "").lower() == "delivery-status"
    ):
        report = _delivery_status(message)
        if report is not None:
            return report
    if not ((sender and _BOUNCE_SENDERS.match(sender)) or _BOUNCE_SUBJECTS.search(subject)):
        return None
    enhanced = _ENHANCED.search(text)
    if enhanced:
        status = enhanced.group(0)
    else:
        reply = _SMTP_REPLY.search(text)
        if reply is None:
            if not (sender and _BOUNCE_SENDERS.match(sender)):
                return None
            status = "5.0.0"  # a mailer-daemon's notice without any code: it did not go through
        else:
            status = f"{reply.group(1)}.0.0"
    recipient = _failed_recipient(text, sender)
    return BounceInfo(
        status=status,
        permanent=status.startswith("5"),
        recipient=recipient,
        diagnostic=_diagnostic_line(text, status),
        original_message_id=_original_id(message, text),
        standard=False,
    )


def _delivery_status(message: Message) -> BounceInfo | None:
    fields: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, list):
            for block in blocks[1:] or blocks:  # the first block is per-message, the rest per-recipient
                for name in ("Status", "Action", "Final-Recipient", "Original-Recipient", "Diagnostic-Code"):
                    if block.get(name) and name not in fields:
                        fields[name] = " ".join(str(block.get(name)).split())
        elif isinstance(blocks, str):
            for line in blocks.splitlines():
                name, _, value = line.partition(":")
                if (
                    name.strip().title()
                    in ("Status", "Action", "Final-Recipient", "Original-Recipient", "Diagnostic-Code")
                    and name.strip().title() not in fields
                ):
                    fields[name.strip().title()] = value.strip()
    if not fields:
        return None
    code = _ENHANCED.search(fields.get("Status", ""))
    action = fields.get("Action", "").lower()
    if code:
        status = code.group(0)
    else:
        status = "4.0.0" if action in ("delayed", "relayed", "delivered", "expanded") else "5.0.0"
    permanent = status.startswith("5") and action != "delayed"
    recipient_field = fields.get("Final-Recipient") or fields.get("Original-Recipient") or ""
    recipient = recipient_field.split(";", 1)[-1].strip().strip("<>").lower() or None
    return BounceInfo(
        status=status,
        permanent=permanent,
        recipient=recipient,
        diagnostic=fields.get("Diagnostic-Code"),
        original_message_id=_original_id(message, ""),
        standard=True,
    )


def _original_id(message: Message, text: str) -> str | None:
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                found = _ids(_header(inner[0], "Message-ID"))
                if found:
                    return found[0]
        elif kind == "text/rfc822-headers":
            found = re.search(r"(?im)^message-id:\s*(<[^<>\s]+>)", _part_text(part) or str(part.get_payload()))
            if found:
                return found.group(1)
    found = re.search(r"(?im)^\s*message-id:\s*(<[^<>\s]+>)", text)
    return found.group(1) if found else None


def _failed_recipient(text: str, sender: str | None) -> str | None:
    found = re.search(r"(?im)^\s*(?:final-recipient|original-recipient):\s*(?:rfc822;)?\s*<?([^\s<>]+@[^\s<>]+)", text)
    if found:
        return found.group(1).lower()
    for address in _ADDRESS.findall(text):
        lowered = address.lower()
        if lowered != sender and not _BOUNCE_SENDERS.match(lowered):
            return lowered
    return None


def _diagnostic_line(text: str, status: str) -> str | None:
    for line in text.splitlines():
        if status in line or re.search(r"\b[45]\d\d\b", line):
            return " ".join(line.split())[:300]
    return None


# -- auto-replies ----------------------------------------------------------------------------------


def is_auto_reply(message: Message, subject: str, text: str) -> bool:
    auto = _header(message, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    if _header(message, "X-Autoreply") or _header(message, "X-Autorespond"):
        return True
    if _header(message, "Precedence").strip().lower() == "auto_reply":
        return True
    if _AUTO_SUBJECTS.search(subject):
        return True
    # wording alone counts only in a short message (a long reply may mention being away in passing)
    return bool(_OUT_OF_OFFICE.search(text)) and len(text) < 600


def return_date(text: str, today: date) -> date | None:
    """The first date after a "back"/"return"/"until" (回/返) word in an out-of-office text."""
    for found_at, day in find_dates(text, today):
        window = text[max(0, found_at - 40) : found_at + 20]
        if _RETURN_WORDS.search(window) and day >= today:
            return day
    return None


# -- dates, amounts, intents -----------------------------------------------------------------------


def find_dates(text: str, today: date) -> list[tuple[int, date]]:
    """Every date in the text (position, date), in order; a date without a year is the next one on or after
    30 days ago (a reply on 1 December saying "on 15 December" means this year's)."""
    found: list[tuple[int, date]] = []
    for style, pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groups()
            try:
                if style == "iso":
                    year, month, day = int(groups[0]), int(groups[1]), int(groups[2])
                elif style == "zh":
                    year, month, day = int(groups[0] or 0), int(groups[1]), int(groups[2])
                elif style == "dmy":
                    year, month, day = int(groups[2] or 0), MONTHS[groups[1].lower()], int(groups[0])
                else:
                    year, month, day = int(groups[2] or 0), MONTHS[groups[0].lower()], int(groups[1])
                value = _with_year(year, month, day, today)
            except (ValueError, KeyError):
                continue
            found.append((match.start(), value))
    return sorted(found)


def _with_year(year: int, month: int, day: int, today: date) -> date:
    if year:
        return date(year, month, day)
    value = date(today.year, month, day)
    return value if value >= today - timedelta(days=30) else date(today.year + 1, month, day)


def find_amount(text: str) -> tuple[str, str | None] | None:
    match = _AMOUNT.search(text)
    if match is None:
        return None
    amount = (match.group("a1") or match.group("a2") or "").replace(",", "")
    unit = (match.group("pre") or match.group("post") or "").upper()
    return amount, _SYMBOLS.get(unit, unit or None)


def read_intents(text: str, today: date) -> list[Intent]:
    """The suggested intents of a reply's own text, each at most once, in a fixed order."""
    intents: list[Intent] = []
    for kind, pattern in _INTENTS:
        match = pattern.search(text)
        if match is None:
            continue
        sentence = _sentence(text, match.start(), match.end())
        if kind == PROMISE:
            dates = [day for _, day in find_dates(sentence, today)] or [day for _, day in find_dates(text, today)]
            money = find_amount(sentence) or find_amount(text)
            intents.append(
                Intent(
                    PROMISE,
                    sentence,
                    amount=money[0] if money else None,
                    currency=money[1] if money else None,
                    on=next((day for day in dates if day >= today), None),
                )
            )
        else:
            intents.append(Intent(kind, sentence))
    return intents


_BOUNDARY = re.compile(r"[.!?](?=\s|$)|[\n。！？]")


def _sentence(text: str, start: int, end: int) -> str:
    left = max((m.end() for m in _BOUNDARY.finditer(text, 0, start)), default=0)
    right_match = _BOUNDARY.search(text, end)
    right = right_match.end() if right_match else len(text)
    return " ".join(text[left:right].split())[:300]


def invoice_candidates(text: str) -> tuple[str, ...]:
    """Words that could be invoice numbers (with a digit; 3-64 characters), in order of appearance."""
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(text):
        if any(ch.isdigit() for ch in token) and "@" not in token:
            seen.setdefault(token.strip(".#/"), None)
            if len(seen) >= MAX_CANDIDATES * 4:
                break
    return tuple(seen)


def recipients_of(message: Message) -> list[str]:
    return [address.lower() for _, address in getaddresses([_header(message, "To"), _header(message, "Cc")]) if address]

"""The `email` channel: SMTP through aiosmtplib (the only module that imports it), or `.eml` files.

Options (besides `type: email` and `recipient:`):

    host: smtp.example.com        # without a host, messages are written as .eml files to `eml_dir`
    port: 587                     # default: 587 for starttls, 465 for tls, 25 for none
    security: starttls            # starttls | tls (implicit TLS) | none
    username_env: DUNNING_SMTP_USER       # or `username: literal`
    password_env: DUNNING_SMTP_PASSWORD   # passwords only ever come from the environment
    from: billing@example.com
    from_name: Example Ltd Accounts
    reply_to: ar@example.com
    connections: 4                # connections kept open and reused, at most this many at once
    rate_per_minute: 600          # at most this many messages per minute (omit: unlimited)
    timeout: 30                   # seconds for connect and each command
    verify: true                  # verify the server's certificate
    ca_file: /path/ca.pem         # extra CA bundle (e.g. a company CA)
    message_id_domain: example.com
    attach: [letter, statement]   # PDF attachments built from the message's invoices
    eml_dir: out/email            # where .eml files go without a host (default: <output_dir>/email)

Failures are translated at this boundary: replies are classified by `code // 100` (4xx → transient,
5xx → permanent, with the server's reply as the reason); refused connections, disconnects and timeouts are
transient; a recipient that is no address at all is permanent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import ssl
from email.header import Header
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

import aiosmtplib

from channels.base import Attachment, Channel, ChannelContext, Message, Receipt
from channels.files import inside, notice_stem, safe_name, write_new
from engine.errors import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError

ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
SECURITY_MODES = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def _header(value: str) -> str:
    """A header value: as is when plain ASCII, else RFC 2047 encoded words (folded)."""
    if value.isascii() and len(value) < 900 and "\n" not in value and "\r" not in value:
        return value
    return Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


#: A language tag as RFC 5646 shapes it (en, en-GB, zh-Hans-CN): nothing else may reach Content-Language.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*\Z", re.ASCII)
#: A line break that is not the folding of an encoded header (CRLF + space or tab) starts a new header.
_BARE_LINE_BREAK = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")


def _language_tag(language: str | None) -> str | None:
    """The customer's language as a header value, or None (the header is left out) when it is no tag."""
    tag = (language or "").strip().replace("_", "-")
    return tag if _LANGUAGE_TAG.match(tag) else None


def _refuse_injected_lines(headers: list[tuple[str, str]]) -> None:
    """The last check before headers are written: a value from data with a line break would add headers
    (a Bcc) or replace the body. Imports refuse such values; this keeps any other path from sending one."""
    for name, value in headers:
        if _BARE_LINE_BREAK.search(value):
            raise PermanentDeliveryError(
                f"the {name} header would carry a line break from the data ({value[:60]!r}); "
                "correct that value (the customer's record or the configuration) and retry the notification"
            )


def _text_part(subtype: str, text: str) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode(
        "ascii"
    ) + _base64(text.encode("utf-8"))


def _attachment(item: Attachment) -> bytes:
    name = item.filename.replace('"', "")
    if not name.isascii():
        name = Header(name, "utf-8").encode()
    return (
        f'Content-Type: {item.mime_type}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
    ).encode("ascii") + _base64(item.content)


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    marker = f"--{boundary}\r\n".encode("ascii")
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode("ascii")
    return head + b"".join(marker + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode("ascii")


def message_id_for(key: str, domain: str) -> str:
    """The deterministic Message-ID of a notification: the same key always gives the same id, so a
    message sent twice after a crash is recognisably the same message."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def classify(exc: BaseException) -> DeliveryError:
    """Translate an aiosmtplib (or socket) failure into our transient/permanent errors."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = exc.recipients
        reasons = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refusals)
        if refusals and all(r.code // 100 == 5 for r in refusals):
            return PermanentDeliveryError(f"recipient refused: {reasons}")
        return TransientDeliveryError(f"recipient temporarily refused: {reasons}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reply = f"{exc.code} {exc.message}".strip()
        if exc.code // 100 == 5:
            return PermanentDeliveryError(f"SMTP server refused the message: {reply}")
        return TransientDeliveryError(f"SMTP server deferred the message: {reply}")
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return TransientDeliveryError(f"SMTP timeout: {exc}")
    if isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, ConnectionError, OSError)):
        return TransientDeliveryError(f"SMTP connection failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        return TransientDeliveryError(f"SMTP error: {exc}")
    return TransientDeliveryError(f"{type(exc).__name__}: {exc}")


class EmailChannel(Channel):
    type_name = "email"
    #: The dispatcher renders the HTML part only for channels that use it.
    wants_html = True

    def __init__(self, name: str, options: Any, context: ChannelContext):
        super().__init__(name, options, context)
        opts = self.options
        self.host: str | None = opts.get("host") or None
        self.security = str(opts.get("security", "starttls")).lower()
        if self.security not in SECURITY_MODES:
            raise ConfigError(
                f"channel {name!r}: security must be one of {', '.join(SECURITY_MODES)}, got {self.security!r}"
            )
        if "password" in opts:
            raise ConfigError(
                f"channel {name!r}: passwords never go in the configuration; put it in an environment variable "
                "and name that variable with `password_env:`"
            )
        self.port = int(opts.get("port") or DEFAULT_PORTS[self.security])
        self.sender = str(opts.get("from") or context.company.get("email") or "dunning@localhost")
        self.sender_name = opts.get("from_name") or context.company.get("name") or ""
        self.reply_to = opts.get("reply_to")
        self.size = int(opts.get("connections", 4))
        if self.size < 1:
            raise ConfigError(f"channel {name!r}: connections must be at least 1, got {self.size}")
        rate = opts.get("rate_per_minute")
        self.interval = 60.0 / float(rate) if rate else 0.0
        self.timeout = float(opts.get("timeout", 30))
        self.domain = str(opts.get("message_id_domain") or self.sender.rpartition("@")[2] or "dunning.local")
        self.attach = [str(kind) for kind in (opts.get("attach") or [])]
        unknown = set(self.attach) - {"letter", "statement"}
        if unknown:
            raise ConfigError(f"channel {name!r}: attach may list letter and statement, got {sorted(unknown)}")
        self.eml_dir = Path(opts["eml_dir"]) if opts.get("eml_dir") else context.output_dir / "email"
        self._tls: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots: asyncio.Semaphore | None = None
        self._next_slot = 0.0

    # -- building the message ------------------------------------------------------------------

    def attachments_for(self, message: Message) -> list[Attachment]:
        files = list(message.attachments)
        chosen = message.context.get("attach") if message.context else None  # the stage's `attach:` wins
        kinds = list(chosen) if chosen is not None else self.attach
        if message.context and message.context.get("pre_due"):
            kinds = [kind for kind in kinds if kind != "letter"]  # no letter showing negative days overdue
        if kinds:
            from channels import pdf  # reportlab is loaded only when attachments are configured

            company = message.context.get("company") or self.context.company
            stem = safe_name(message.invoices[0]["number"] if message.invoices else message.key)
            if "letter" in kinds:
                files.append(Attachment(f"letter-{stem}.pdf", pdf.letter_pdf(message, company), "application/pdf"))
            if "statement" in kinds:
                files.append(
                    Attachment(f"statement-{stem}.pdf", pdf.statement_pdf(message, company), "application/pdf")
                )
        return files

    def build(self, message: Message) -> bytes:
        """The MIME message as sent: plain text and HTML alternatives, attachments, a deterministic
        Message-ID. Written directly (CRLF, base64 UTF-8 parts, RFC 2047 headers): the standard library's
        EmailMessage costs ~5 ms a message on a busy machine, more than sending it."""
        message_id = message.message_id or message_id_for(message.key, self.domain)
        seed = hashlib.sha256(message.key.encode("utf-8")).hexdigest()[:24]
        headers = [
            (
                "From",
                formataddr((str(self.sender_name), self.sender), charset="utf-8") if self.sender_name else self.sender,
            ),
            ("To", message.recipient),
            *([("Reply-To", str(self.reply_to))] if self.reply_to else []),
            ("Subject", _header(message.subject)),
            ("Date", formatdate(usegmt=True)),
            ("Message-ID", message_id),
            ("X-Dunning-Key", _header(message.key)),
            *([("Content-Language", language)] if (language := _language_tag(message.language)) else []),
            ("MIME-Version", "1.0"),
        ]
        _refuse_injected_lines(headers)
        body = _text_part("plain", message.body)
        if message.html:
            body = _multipart("alternative", f"=_alt_{seed}", [body, _text_part("html", message.html)])
        files = self.attachments_for(message)
        if files:
            body = _multipart("mixed", f"=_mix_{seed}", [body, *(_attachment(item) for item in files)])
        head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("utf-8")
        return head + body

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, message: Message) -> Receipt:
        recipient = (message.recipient or "").strip()
        if not ADDRESS.match(recipient):
            raise PermanentDeliveryError(f"{recipient!r} is not an email address; correct the customer's email")
        try:
            data = self.build(message)
        except Exception as exc:  # building is local: a failure here will not go away by itself
            raise PermanentDeliveryError(f"could not build the email: {type(exc).__name__}: {exc}") from exc
        message_id = message.message_id or message_id_for(message.key, self.domain)
        if self.host is None:
            return self._write_eml(message, data, message_id)
        await self._pace()
        client, reused = await self._acquire()
        ok = False
        try:
            try:
                errors, reply = await client.sendmail(self.sender, [recipient], data)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                # A kept-alive connection the server closed meanwhile: one fresh try, nothing was sent.
                self._discard(client)
                client = await self._connect()
                errors, reply = await client.sendmail(self.sender, [recipient], data)
            if errors:  # some recipients refused without an exception
                refused = [aiosmtplib.SMTPRecipientRefused(r.code, r.message, rcpt) for rcpt, r in errors.items()]
                raise aiosmtplib.SMTPRecipientsRefused(refused)
            ok = True
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            self._release(client, ok)
        return Receipt(reference=message_id, detail=reply)

    def _write_eml(self, message: Message, data: bytes, message_id: str) -> Receipt:
        path = inside(self.eml_dir, f"{notice_stem(message.notification_id, message.key)}.eml")
        try:
            write_new(path, data)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {path}: {exc}") from exc
        return Receipt(reference=message_id, detail=str(path))

    async def _pace(self) -> None:
        if not self.interval:
            return
        self._bind_loop()
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def _bind_loop(self) -> None:
        """Connections belong to one event loop: a new loop (another `asyncio.run`) starts afresh."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            for client in self._idle:
                try:
                    client.close()
                except Exception:
                    pass
            self._idle = []
            self._slots = asyncio.Semaphore(self.size)
            self._next_slot = 0.0
            self._loop = loop

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.options.get("ca_file"))
            if not self.options.get("verify", True):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context  # one pre-built context: building one per connection costs ~25 ms
        return self._tls

    def _credentials(self) -> tuple[str | None, str | None]:
        username = self.options.get("username")
        if self.options.get("username_env"):
            username = os.environ.get(str(self.options["username_env"])) or username
        password = None
        if self.options.get("password_env"):
            variable = str(self.options["password_env"])
            password = os.environ.get(variable)
            if password is None:
                raise TransientDeliveryError(
                    f"the SMTP password variable ${variable} is not set; export it for the dispatcher"
                )
        return username, password

    async def _connect(self) -> aiosmtplib.SMTP:
        username, password = self._credentials()
        tls = self.security != "none"
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=True if self.security == "starttls" else False,
            tls_context=self._tls_context() if tls else None,
            username=username,
            password=password,
        )
        await client.connect()
        return client

    async def _acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        self._bind_loop()
        assert self._slots is not None
        await self._slots.acquire()
        try:
            while self._idle:
                client = self._idle.pop()
                if client.is_connected:
                    return client, True
            return await self._connect(), False
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise

    def _release(self, client: aiosmtplib.SMTP, ok: bool) -> None:
        if ok and client.is_connected:
            self._idle.append(client)
        else:
            self._discard(client)
        if self._slots is not None:
            self._slots.release()

    @staticmethod
    def _discard(client: aiosmtplib.SMTP) -> None:
        try:
            client.close()
        except Exception:
            pass

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        if self._loop is not asyncio.get_running_loop():
            for client in idle:
                self._discard(client)
            return
        for client in idle:
            try:
                await asyncio.wait_for(client.quit(), timeout=min(self.timeout, 5))
            except Exception:
                self._discard(client)

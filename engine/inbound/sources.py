"""Where received messages come from: a drop folder (`.eml` files, or a maildir) and an IMAP mailbox.

A source yields raw messages with a stable (mailbox, uid) and is told when one has been processed (`done`),
which is when it may move, flag or delete it. A crash between processing and `done` is harmless: the next
read yields the message again and the store recognises it (processed once by Message-ID and mailbox UID).
The only module that imports imaplib.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import re
import select
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.config import ImapSettings
from engine.errors import InboundError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Numbers our IDLE commands' tags (`DUNIDLE<n>`); imaplib's own tags are four letters and a number, so they
#: never collide.
_IDLE_NUMBERS = itertools.count(1)
#: How often an IDLE wait looks at its stop flag (seconds).
_STOP_POLL_SECONDS = 0.5
_SAFE_FOLDER = re.compile(r"^[A-Za-z0-9 ._/-]{1,100}$")


@dataclass(frozen=True)
class Fetched:
    mailbox: str
    uid: str
    raw: bytes


class Source(Protocol):
    name: str

    def messages(self, known: Callable[[str], set[str]]) -> Iterator[Fetched]:
        """Messages not yet processed; `known(mailbox)` gives the uids the store has for a mailbox."""

    def done(self, item: Fetched) -> None:
        """The message was processed (or found processed before): move, flag or delete it as configured."""

    def close(self) -> None: ...


class FolderSource:
    """`*.eml` files in a folder, or a maildir's new/ and cur/ messages, oldest name first."""

    def __init__(self, folder: Path, move_to: str | None = None):
        self.folder = folder
        self.name = f"folder:{folder}"
        self.move_to = folder / move_to if move_to else None

    def messages(self, known: Callable[[str], set[str]]) -> Iterator[Fetched]:
        if not self.folder.is_dir():
            raise InboundError(f"{self.folder}: the inbound folder does not exist; create it or fix `inbound.folder`")
        seen = known(self.name)
        files = sorted(self.folder.glob("*.eml"))
        for sub in ("new", "cur"):
            if (self.folder / sub).is_dir():
                files += sorted(p for p in (self.folder / sub).iterdir() if p.is_file() and not p.name.startswith("."))
        for path in files:
            uid = str(path.relative_to(self.folder))
            if uid in seen:
                continue
            try:
                raw = path.read_bytes()
            except OSError:
                continue  # vanished meanwhile (another reader moved it)
            yield Fetched(self.name, uid, raw)

    def done(self, item: Fetched) -> None:
        if self.move_to is None:
            return
        source = self.folder / item.uid
        self.move_to.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.move(str(source), str(self.move_to / source.name))

    def close(self) -> None:
        pass


class ImapSource:
    """One IMAP folder, read by UID; processed messages are marked seen, moved or (only if configured) deleted."""

    def __init__(self, settings: ImapSettings, *, base_dir: Path | None = None):
        self.settings = settings
        user = os.environ.get(settings.user_env)
        password = os.environ.get(settings.password_env)
        if not user or not password:
            raise InboundError(
                f"IMAP credentials missing: set ${settings.user_env} and ${settings.password_env} "
                f"(named by inbound.imap.user_env / password_env)"
            )
        for folder in filter(None, (settings.folder, settings.move_to)):
            if not _SAFE_FOLDER.match(folder):
                raise InboundError(f"IMAP folder name {folder!r} is not allowed; use letters, digits, space . _ / -")
        self._user = user
        self._password = password
        self._base = base_dir
        self.client: imaplib.IMAP4 | None = None
        self._capabilities: set[str] = set()
        self.name = ""

    def _context(self) -> ssl.SSLContext:
        ca = self.settings.ca_file
        if ca is not None and self._base is not None and not ca.is_absolute():
            ca = self._base / ca
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def connect(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            if s.security == "ssl":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.host, s.port or 993, ssl_context=self._context(), timeout=s.timeout_seconds
                )
            else:
                if s.security == "plain" and s.host not in LOCAL_HOSTS:
                    raise InboundError(
                        f"inbound.imap.security: plain sends the password in clear; it is only allowed "
                        f"for a server on this machine, not {s.host!r}: use ssl or starttls"
                    )
                client = imaplib.IMAP4(s.host, s.port or 143, timeout=s.timeout_seconds)
                if s.security == "starttls":
                    client.starttls(ssl_context=self._context())
            client.login(self._user, self._password)
            typ, caps = client.capability()  # the list grows after login (MOVE, IDLE...)
            self._capabilities = set((caps[0] or b"").decode().upper().split()) if typ == "OK" and caps else set()
            typ, data = client.select(_quoted(s.folder))
            if typ != "OK":
                raise InboundError(f"IMAP folder {s.folder!r} cannot be opened on {s.host}: {data!r}")
            validity = (client.response("UIDVALIDITY")[1] or [b"0"])[0]
        except (imaplib.IMAP4.error, OSError, ssl.SSLError) as exc:
            raise InboundError(
                f"cannot read the IMAP mailbox {s.host}:{s.port or ''} ({type(exc).__name__}: {exc}); "
                "check inbound.imap and the credentials"
            ) from None
        self.name = f"imap://{self._user}@{s.host}/{s.folder};uidvalidity={(validity or b'0').decode()}"
        self.client = client
        return client

    def messages(self, known: Callable[[str], set[str]]) -> Iterator[Fetched]:
        client = self.client or self.connect()
        typ, data = client.uid("SEARCH", "ALL")
        if typ != "OK":
            raise InboundError(f"IMAP search failed on {self.settings.host}: {data!r}")
        seen = known(self.name)
        for uid in (data[0] or b"").split():
            text = uid.decode()
            if text in seen:
                if self.settings.move_to or self.settings.delete:
                    self.done(Fetched(self.name, text, b""))  # processed before a crash; finish moving it
                continue
            typ, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in parts or () if isinstance(part, tuple)), None)
            if typ != "OK" or raw is None:
                continue  # expunged meanwhile by another reader
            yield Fetched(self.name, text, raw)

    def done(self, item: Fetched) -> None:
        client = self.client
        assert client is not None
        s = self.settings
        uid = item.uid.encode()
        if s.move_to:
            client.create(_quoted(s.move_to))  # fails harmlessly when it exists
            if "MOVE" in self._capabilities:
                client.uid("MOVE", uid, _quoted(s.move_to))
                return
            client.uid("COPY", uid, _quoted(s.move_to))
            client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            client.expunge()
        elif s.delete:
            client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            client.expunge()
        else:
            client.uid("STORE", uid, "+FLAGS", "(\\Seen)")

    @property
    def supports_idle(self) -> bool:
        """Whether the server offers IDLE (RFC 2177); known once connected."""
        return "IDLE" in self._capabilities

    def wait_for_mail(self, seconds: float, stop: Callable[[], bool]) -> bool:
        """Wait in IDLE until the server announces new mail (True), `seconds` pass or `stop()` turns true
        (False); then end the IDLE. Only on a server that `supports_idle`.

        imaplib (before Python 3.14) has no IDLE, so it is spoken here on the connection's socket; nothing is
        buffered on imaplib's side between commands, and the exchange ends with the tagged reply, so imaplib
        carries on where it was."""
        client = self.client or self.connect()
        lines = _Lines(client.sock)
        tag = f"DUNIDLE{next(_IDLE_NUMBERS)}".encode()
        try:
            client.send(tag + b" IDLE\r\n")
            first = lines.next(self.settings.timeout_seconds)
            if first is None or not first.startswith(b"+"):
                raise InboundError(f"IMAP server {self.settings.host} refused IDLE: {first!r}")
            arrived = False
            deadline = time.monotonic() + seconds
            while not arrived and not stop():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                line = lines.next(min(left, _STOP_POLL_SECONDS))
                arrived = line is not None and bool(re.match(rb"\* \d+ (EXISTS|RECENT)", line))
            client.send(b"DONE\r\n")
            while True:
                line = lines.next(self.settings.timeout_seconds)
                if line is None:
                    raise InboundError(f"IMAP server {self.settings.host} did not end IDLE")
                if line.startswith(tag + b" "):
                    if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                        raise InboundError(f"IMAP server {self.settings.host} ended IDLE with {line!r}")
                    return arrived
                arrived = arrived or bool(re.match(rb"\* \d+ (EXISTS|RECENT)", line))
        except (OSError, ssl.SSLError) as exc:
            self.client = None  # the connection is gone; the next call connects again
            raise InboundError(
                f"lost the IMAP connection to {self.settings.host} while waiting for mail ({type(exc).__name__}: {exc})"
            ) from None

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
            self.client = None


class _Lines:
    """CRLF-ended lines read straight from a socket (plain or TLS), each wait bounded."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def next(self, seconds: float) -> bytes | None:
        """The next line without its CRLF, or None when none came within `seconds`."""
        deadline = time.monotonic() + seconds
        while b"\r\n" not in self.buffer:
            pending = getattr(self.sock, "pending", None)  # TLS: bytes decrypted already but not read
            if not (pending and pending()):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line


def _quoted(folder: str) -> str:
    return '"' + folder + '"'

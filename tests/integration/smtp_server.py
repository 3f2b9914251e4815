"""A real aiosmtpd server on 127.0.0.1 for tests: plain, STARTTLS or implicit TLS, optional AUTH, and faults.

It runs on its own event loop in a background thread (the code under test runs `asyncio.run` in the test's
thread), on a free port (`loop.create_server(..., "127.0.0.1", 0)`; aiosmtpd's `Controller(port=0)` does not work).

Faults by recipient address prefix (the part before @):
    reject…   550 at RCPT (permanent)      busy…   451 at RCPT (temporary)
    closing…  421 at RCPT (server closing)  drop…   the connection is cut at RCPT
and `server.mode` ("ok", "421", "451", "550") applies to every DATA; `delay` seconds pass before each DATA is
answered (a slow server, so a sender can be caught mid-send).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import ssl
import threading
from collections import Counter
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Handler:
    def __init__(self, server: SMTPServer):
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local = address.split("@")[0]
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: no such user here"
        if local.startswith("busy"):
            return "451 4.3.0 mailbox busy, try again later"
        if local.startswith("closing"):
            return "421 4.3.2 service shutting down"
        if local.startswith("drop"):
            assert server.transport is not None
            server.transport.abort()
            return "250 OK"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        mode = self.server.mode
        if mode != "ok":
            return {"421": "421 4.3.2 closing", "451": "451 4.3.0 try later", "550": "550 5.7.1 refused"}[mode]
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        self.server.record(content, envelope, session)
        return "250 2.0.0 OK queued"


class SMTPServer:
    def __init__(
        self,
        *,
        tls: str = "none",
        cert: tuple[Path, Path] | None = None,
        auth: tuple[str, str] | None = None,
        parse: bool = True,
        delay: float = 0.0,
    ):
        self.delay = delay
        self.tls = tls
        self.auth = auth
        self.parse = parse
        self.mode = "ok"
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.ids: Counter[str] = Counter()
        self.logins: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        if cert is not None:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    def record(self, content: bytes, envelope: Envelope, session: Session) -> None:
        with self._lock:
            if self.parse:
                message = email.message_from_bytes(content, policy=policy.default)
                self.messages.append(message)  # type: ignore[arg-type]
                self.ids[str(message["Message-ID"])] += 1
            else:
                self.raw.append(content)
                for line in content.split(b"\r\n", 40)[:40]:
                    if line[:11].lower() == b"message-id:":
                        self.ids[line[11:].strip().decode()] += 1
                        break

    def received(self) -> dict[str, int]:
        """Message-ID -> deliveries so far (a copy, safe to read while the server records more)."""
        with self._lock:
            return dict(self.ids)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=True (the default) would send no reply

    def _protocol(self) -> SMTP:
        self.connections += 1
        kwargs: dict[str, Any] = {}
        if self.tls == "starttls":
            kwargs.update(tls_context=self._context, require_starttls=True)
        if self.auth is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls == "starttls"
            )  # implicit TLS: all of it is TLS
        return SMTP(Handler(self), hostname="localhost", **kwargs)

    def start(self) -> SMTPServer:
        self._thread.start()
        ssl_context = self._context if self.tls == "tls" else None
        future = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(self._protocol, "127.0.0.1", 0, ssl=ssl_context), self.loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

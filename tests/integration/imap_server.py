"""A real IMAP server for the tests: Debian's dovecot with its own configuration in a temporary folder,
listening on a free 127.0.0.1 port with STARTTLS (a self-signed certificate the client trusts through
`ca_file`), one static test user. `.ci/run` installs dovecot-imapd when it is missing."""

from __future__ import annotations

import imaplib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "collector", "s3cret-imap"


@dataclass
class ImapServer:
    port: int
    ca_file: Path

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.starttls(ssl_context=ssl.create_default_context(cafile=str(self.ca_file)))
        client.login(USER, PASSWORD)
        return client

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        client = self.client()
        try:
            for raw in messages:
                typ, data = client.append(folder, None, None, raw)
                assert typ == "OK", data
        finally:
            client.logout()

    def count(self, folder: str = "INBOX") -> int:
        client = self.client()
        try:
            typ, data = client.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return 0
            return int(data[0] or 0)
        finally:
            client.logout()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 0
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={internal} gid={internal} home={home}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def dovecot(root: Path, *, extra: str = "") -> Iterator[ImapServer]:
    """A dovecot for the test; `extra` is appended to its configuration (e.g. `imap_capability = …`)."""
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if binary is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd; .ci/run does it)")
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "state"):
        (root / sub).mkdir(exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(root / "key.pem"),
            "-out",
            str(root / "cert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    import pwd

    internal = "dovecot"
    try:
        entry = pwd.getpwnam(internal)
    except KeyError:
        pytest.skip("the dovecot system user is missing (the dovecot-core package makes it)")
    # The mail store belongs to dovecot's user, outside pytest's private (0700) temporary folder.
    home = Path(tempfile.mkdtemp(prefix="dunning-imap-"))
    home.chmod(0o755)
    shutil.chown(home, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    config = root / "dovecot.conf"
    config.write_text(
        CONFIG.format(root=root, home=home, port=port, internal=internal, login="dovenull", password=PASSWORD) + extra,
        encoding="utf-8",
    )
    process = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None:
                    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                    raise RuntimeError(f"dovecot did not start: {output}") from None
                time.sleep(0.1)
        yield ImapServer(port, root / "cert.pem")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)

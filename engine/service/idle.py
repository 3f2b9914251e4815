"""New mail as it arrives: the daemon waits in IMAP IDLE (RFC 2177) on a thread of its own.

Where the server offers IDLE, the thread keeps one connection idling and has the inbound sources read as soon
as the server announces a new message, instead of at the next poll (`inbound.every_seconds`, which keeps
running as a safety net). Each IDLE is ended and issued again every `inbound.imap.idle_seconds`, within the 29
minutes after which a server may drop an idle client. A server without IDLE leaves the polling alone in
charge. A lost connection is opened again after a growing pause. The thread looks at the daemon's stop flag
at least twice a second, ends its IDLE and logs out when it is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from engine.config import ImapSettings
from engine.errors import InboundError
from engine.inbound.sources import ImapSource

__all__ = ["MailWaiter"]

logger = logging.getLogger("dunning.daemon")

#: Pauses before connecting again after a failure: from the first to the longest (seconds).
RETRY_FIRST_SECONDS = 5.0
RETRY_LONGEST_SECONDS = 300.0


class MailWaiter:
    """Waits in IMAP IDLE on a daemon thread until `stopping` is set; calls `on_mail` when mail arrives."""

    def __init__(
        self,
        settings: ImapSettings,
        base_dir: Path,
        on_mail: Callable[[], None],
        stopping: threading.Event,
        poll_seconds: float,
    ):
        self.settings = settings
        self.base_dir = base_dir
        self.on_mail = on_mail
        self.stopping = stopping
        self.poll_seconds = poll_seconds
        #: Set while an IDLE is open on the server (for tests and the log).
        self.idling = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dunning-imap-idle", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end its IDLE and log out (the caller has set `stopping`)."""
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        pause = RETRY_FIRST_SECONDS
        while not self.stopping.is_set():
            try:
                source = ImapSource(self.settings, base_dir=self.base_dir)
            except InboundError as exc:  # no credentials: the polling job says the same at each read
                logger.error("IMAP IDLE not started: %s", exc, extra={"event": "imap_idle_off"})
                return
            try:
                source.connect()
                if not source.supports_idle:
                    logger.info(
                        "IMAP server %s does not offer IDLE: new mail is read by polling every %gs",
                        self.settings.host,
                        self.poll_seconds,
                        extra={"event": "imap_polling"},
                    )
                    return
                logger.info(
                    "waiting for new mail in IMAP IDLE on %s/%s (issued again every %gs)",
                    self.settings.host,
                    self.settings.folder,
                    self.settings.idle_seconds,
                    extra={"event": "imap_idle"},
                )
                pause = RETRY_FIRST_SECONDS
                while not self.stopping.is_set():
                    self.idling.set()
                    try:
                        arrived = source.wait_for_mail(self.settings.idle_seconds, self.stopping.is_set)
                    finally:
                        self.idling.clear()
                    if arrived and not self.stopping.is_set():
                        logger.debug("IMAP IDLE: new mail announced", extra={"event": "imap_new_mail"})
                        self.on_mail()
            except InboundError as exc:
                logger.warning("IMAP IDLE: %s; connecting again in %gs", exc, pause, extra={"event": "imap_idle_retry"})
                self.stopping.wait(pause)
                pause = min(pause * 2, RETRY_LONGEST_SECONDS)
            finally:
                source.close()

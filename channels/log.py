"""The `log` channel: records each rendered notification in a plain-text file (and the Python log).

It is what every stage channel maps to until a real one is configured, so a first trial needs nothing.
A file that cannot be written (a full disk, a missing permission) is a transient failure: the notification
is tried again once the file can be written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from channels.base import Channel, Message, Receipt, TransientDeliveryError

logger = logging.getLogger("dunning.channels.log")


class LogChannel(Channel):
    type_name = "log"

    @property
    def path(self) -> Path:
        configured = self.options.get("path")
        return Path(configured) if configured else self.context.output_dir / "notifications.log"

    async def send(self, message: Message) -> Receipt:
        path = self.path
        block = (
            f"=== {message.key}\n"
            f"channel: {message.channel} (via log)\n"
            f"to: {message.recipient}\n"
            f"subject: {message.subject}\n\n"
            f"{message.body.rstrip()}\n\n"
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as sink:
                offset = sink.tell()
                sink.write(block)
                sink.flush()
                os.fsync(sink.fileno())
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {path}: {exc}; check the log channel's `path`") from exc
        logger.info("%s -> %s: %s", message.channel, message.recipient, message.subject)
        return Receipt(reference=f"{path.name}@{offset}", detail=str(path))

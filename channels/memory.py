"""The `memory` channel: records messages in a list, for tests (the way httpx ships MockTransport).

Options: `fail: transient|permanent` makes every send fail that way; `fail_recipients: [...]` only those.
Messages sent through any memory channel in this process are also collected in `MemoryChannel.sent`.
"""

from __future__ import annotations

from typing import ClassVar

from channels.base import Channel, Message, PermanentDeliveryError, Receipt, TransientDeliveryError


class MemoryChannel(Channel):
    type_name = "memory"
    sent: ClassVar[list[Message]] = []

    async def send(self, message: Message) -> Receipt:
        failure = self.options.get("fail")
        targeted = self.options.get("fail_recipients")
        if failure and (targeted is None or message.recipient in targeted):
            if failure == "permanent":
                raise PermanentDeliveryError(f"550 {message.recipient}: rejected by the memory channel")
            raise TransientDeliveryError("421 memory channel is configured to be unavailable")
        MemoryChannel.sent.append(message)
        return Receipt(reference=f"memory-{len(MemoryChannel.sent)}")

    @classmethod
    def clear(cls) -> None:
        cls.sent.clear()

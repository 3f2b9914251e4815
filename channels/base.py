"""The channel interface: the one place a notification leaves the engine.

A channel is like an httpx transport: the engine hands it a rendered `Message` and gets back a `Receipt`
or one of the delivery errors below. Only a channel module imports its network library; its own
exceptions are translated here at the boundary (`raise TransientDeliveryError(...) from exc`).

    DeliveryError
    ├── TransientDeliveryError   retried with backoff (timeouts, 4xx, connection refused)
    └── PermanentDeliveryError   marks the notification failed (5xx, bad address)

To add a channel as a separate package, subclass `Channel` and register it under the entry-point group
`dunning.channels`; configure it by its type name in `config.yaml` under `channels:`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "Attachment",
    "Channel",
    "ChannelContext",
    "DeliveryError",
    "Message",
    "PermanentDeliveryError",
    "Receipt",
    "TransientDeliveryError",
]


@dataclass(frozen=True)
class Attachment:
    """A file sent along with a message (a letter PDF, a statement)."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Message:
    """A notification rendered and ready to deliver.

    `invoices` lists every invoice the message is about: one, or all of a customer's for a policy with
    `group_by: customer`. The optional fields default so that channels written against the first version
    of this class keep working.
    """

    notification_id: int
    key: str  # the idempotency key: a channel that can deduplicate (Message-ID, Idempotency-Key) uses it
    channel: str
    recipient: str
    subject: str
    body: str
    stage: str
    policy: str
    customer: Mapping[str, Any]
    invoices: tuple[Mapping[str, Any], ...]
    repeat_no: int = 0
    #: The HTML part (rendered with autoescaping), when the templates have one.
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    #: The customer's language tag as used for templates and formatting ("en", "zh_CN", ...).
    language: str = "en"
    #: The deterministic Message-ID derived from `key` (set by the dispatcher).
    message_id: str | None = None
    #: The full template context (company, totals, as_of, ...) for channels that lay out documents.
    context: Mapping[str, Any] = field(default_factory=dict)
    #: True when the message covers a group of invoices (policy `group_by: customer`).
    grouped: bool = False


@dataclass(frozen=True)
class Receipt:
    """Proof of hand-over: the server's or sink's own reference for the message."""

    reference: str
    detail: str = ""


@dataclass(frozen=True)
class ChannelContext:
    """What every channel may need from the installation."""

    output_dir: Path
    company: Mapping[str, Any] = field(default_factory=dict)
    #: The installation's `engine.store.database.Repository`, for channels that keep records (tasks) or read
    #: history (legal case files); None where a channel runs without a database.
    repo: Any = None
    #: Every configured channel's settings by name (a channel may hand over to another, e.g. legal → email).
    channel_settings: Mapping[str, Any] = field(default_factory=dict)


class Channel(abc.ABC):
    """Base class of every channel implementation."""

    #: The `type:` name in configuration.
    type_name: ClassVar[str]

    def __init__(self, name: str, options: Mapping[str, Any], context: ChannelContext):
        self.name = name
        self.options = dict(options)
        self.context = context

    @abc.abstractmethod
    async def send(self, message: Message) -> Receipt:
        """Deliver one message; raise TransientDeliveryError or PermanentDeliveryError on failure."""

    async def aclose(self) -> None:
        """Release connections; called once when dispatch ends."""

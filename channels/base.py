"""The channel interface: the one place a notification leaves the engine.

A channel is like an httpx transport: the engine hands it a rendered `Message` and gets back a `Receipt`
or one of the delivery errors below. Only a channel module imports its network library; its own
exceptions are translated at that boundary (`raise TransientDeliveryError(...) from exc`).

    DeliveryError
    ├── TransientDeliveryError   retried with backoff: timeouts, refused connections, and what the
    │                            channel's protocol calls temporary (SMTP: 4xx replies; HTTP: 408, 425,
    │                            429 and 5xx answers)
    └── PermanentDeliveryError   marks the notification failed (its fallback, if any, is queued): a bad
                                 address, and what the protocol calls final (SMTP: 5xx; HTTP: other 4xx)

Which codes are which is each channel's to say (its module docstring does): SMTP's 4xx is "try later",
HTTP's 4xx mostly "this request is wrong".

A channel never reaches into the engine's database. What some need of the installation comes in the
`ChannelContext`: the case-file source (`legal`), the task sink (`phone`, `visit`, `task`) and the
engine's clock, so a channel stamps the time the engine runs on (a virtual clock in rehearsals).

To add a channel as a separate package, subclass `Channel` and register it under the entry-point group
`dunning.channels`; configure it by its type name in `config.yaml` under `channels:`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Protocol

from engine.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "Attachment",
    "CaseFile",
    "CaseFileSource",
    "Channel",
    "ChannelContext",
    "DeliveryError",
    "Message",
    "PermanentDeliveryError",
    "Receipt",
    "TaskSink",
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
class CaseFile:
    """What the installation knows about a case beyond the message: the customer's stored record (None when
    unknown), the invoices' stored fields by number (id, number, amount, open_amount, currency, issued_on,
    due_on, stage, policy), their history in order (at, kind, actor, invoice, summary, data) and every
    notification about them (key, channel, stage, recipient, status, attempts, created_at, sent_at, receipt,
    error)."""

    customer: Mapping[str, Any] | None = None
    invoices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    history: Sequence[Mapping[str, Any]] = ()
    deliveries: Sequence[Mapping[str, Any]] = ()


class CaseFileSource(Protocol):
    """Reads the records of a case (the `legal` channel's case files)."""

    def case_file(self, customer_id: str, numbers: Sequence[str]) -> CaseFile:
        """The records about customer `customer_id`'s invoices `numbers`."""
        ...


class TaskSink(Protocol):
    """Keeps the tasks for people that the `phone` and `visit` channels make."""

    def make_task(
        self,
        *,
        key: str,
        kind: str,
        notification_id: int | None,
        stage: str,
        customer: Mapping[str, Any],
        invoices: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> tuple[int, bool]:
        """Make the task for one notification, idempotent by `key`: (task id, whether it is new).
        Raises on a failure worth another try (a busy database)."""
        ...


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ChannelContext:
    """What every channel may need from the installation."""

    output_dir: Path
    company: Mapping[str, Any] = field(default_factory=dict)
    #: Every configured channel's settings by name (a channel may hand over to another, e.g. legal → email).
    channel_settings: Mapping[str, Any] = field(default_factory=dict)
    #: The installation's records of a case, for the `legal` channel; None where there is no database.
    case_files: CaseFileSource | None = None
    #: Where the `phone` / `visit` channels put their tasks; None where there is no database.
    tasks: TaskSink | None = None
    #: The engine's clock (aware instants): what a channel stamps on what it records.
    now: Callable[[], datetime] = _utc_now


class Channel(abc.ABC):
    """Base class of every channel implementation."""

    #: The `type:` name in configuration.
    type_name: ClassVar[str]
    #: Whether the dispatcher should render the templates' HTML part too (`Message.html`); only channels
    #: that send HTML (e-mail) say yes, so the others never pay for it.
    wants_html: ClassVar[bool] = False

    def __init__(self, name: str, options: Mapping[str, Any], context: ChannelContext):
        self.name = name
        self.options = dict(options)
        self.context = context

    @abc.abstractmethod
    async def send(self, message: Message) -> Receipt:
        """Deliver one message; raise TransientDeliveryError (worth another try later) or
        PermanentDeliveryError (will never succeed as is) on failure. A channel that can deduplicate hands
        `message.key` to its receiver (Message-ID, Idempotency-Key), so a repeated hand-over is recognised."""

    async def aclose(self) -> None:  # noqa: B027  (a default: most channels hold nothing to release)
        """Release connections; called once when dispatch ends."""

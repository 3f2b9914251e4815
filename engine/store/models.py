"""The stored data: customers, invoices (with their collection state), payments, the outbox, events.

Amounts are exact: `Money` keeps them as NUMERIC on PostgreSQL and as integer ten-thousandths on SQLite
(whose only decimal type is a float). Instants are timezone-aware on the Python side and UTC in storage.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, LargeBinary, Numeric, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from engine.policy.model import POLICY_NAME_LENGTH, STAGE_NAME_LENGTH

MONEY_SCALE = 4
_MONEY_FACTOR: int = 10**MONEY_SCALE
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    """An exact decimal with 4 places, stored natively where the database has a decimal type."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(24, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return int((value * _MONEY_FACTOR).to_integral_exact())
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":  # ten-thousandths: the same digits with the point moved (exact, 4 places)
            return Decimal(int(value)).scaleb(-MONEY_SCALE)
        return Decimal(value).quantize(_MONEY_QUANTUM)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware instants; naive ones are refused rather than silently guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: dunning stores only timezone-aware instants")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        instant: datetime = value
        if instant.tzinfo is None:
            return instant.replace(tzinfo=timezone.utc)
        return instant.astimezone(timezone.utc)


def money_column(**kwargs: Any) -> Any:
    return Field(sa_column=Column(Money(), **kwargs))


def instant_column(**kwargs: Any) -> Any:
    return Field(sa_column=Column(UTCDateTime(), **kwargs))


def json_column(**kwargs: Any) -> Any:
    return Field(sa_column=Column(JSON, **kwargs))


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: str = Field(primary_key=True, max_length=64)
    name: str
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    credit_grade: str | None = None
    segment: str | None = None
    owner: str | None = Field(default=None, index=True)
    language: str | None = None
    timezone: str | None = None
    tags: list[str] = json_column(nullable=False, default=list)
    #: The tags among `tags` that a collector's action added (a task outcome's `wrong_contact`), not an
    #: import: a re-import keeps them (engine.importer.write); NULL when there are none.
    action_tags: list[str] | None = json_column(nullable=True)
    # credit management (engine.credit): an imported limit wins over the grade's; dimensions for reports
    credit_limit: Decimal | None = money_column(nullable=True)
    industry: str | None = None
    region: str | None = None


class Invoice(SQLModel, table=True):
    """An invoice and its collection state (stage, governing policy, when it entered the stage)."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_stage_due", "stage", "due_on"),
        # the worklist ranks an owner's open invoices by open amount × days overdue from the index alone
        Index("ix_invoices_worklist", "customer_id", "stage", "due_on", "open_amount"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    customer_id: str = Field(foreign_key="customers.id", index=True)
    currency: str = Field(max_length=3)
    amount: Decimal = money_column(nullable=False)
    open_amount: Decimal = money_column(nullable=False)
    issued_on: date
    due_on: date
    tags: list[str] = json_column(nullable=False, default=list)
    # collection state
    # the policy loader keeps stage and policy names within these columns (engine.policy.model)
    stage: str = Field(default="current", max_length=STAGE_NAME_LENGTH)
    policy: str | None = Field(default=None, max_length=POLICY_NAME_LENGTH)
    stage_entered_at: datetime | None = instant_column(nullable=True)
    stage_repeats: int = 0
    last_notice_at: datetime | None = instant_column(nullable=True)
    #: The stage a paused (disputed/promised) invoice returns to.
    resume_stage: str | None = None
    #: When the current pause (dispute, promise, plan) began; NULL while not paused.
    paused_since: datetime | None = instant_column(nullable=True)
    #: Days spent paused so far (in the policy's day count): they don't count toward `after_days`.
    paused_days: int = 0
    #: A stage that needs approval before the invoice may enter it (`dunning approve`); NULL otherwise.
    awaiting_stage: str | None = Field(default=None, max_length=STAGE_NAME_LENGTH)
    #: A broken promise: the next sweep moves the invoice on to its next stage at once.
    escalate_now: bool = False
    #: The first local day a sweep needs to look at this invoice again; NULL means "at the next sweep".
    #: Anything that changes the invoice or its customer resets it to NULL.
    next_action_on: date | None = Field(default=None, index=True)
    closed_at: datetime | None = instant_column(nullable=True)
    updated_at: datetime = instant_column(nullable=False)


class Payment(SQLModel, table=True):
    __tablename__ = "payments"

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoices.id", index=True)
    amount: Decimal = money_column(nullable=False)
    paid_on: date
    reference: str | None = None
    #: Re-importing the same payment is a no-op: (invoice, reference) or, without a
    #: reference, (invoice, amount, paid_on) identifies it.
    dedupe_key: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    recorded_at: datetime = instant_column(nullable=False)


class NotificationStatus:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Notification(SQLModel, table=True):
    """The outbox: written in the transaction of the transition that fires it, sent afterwards."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    invoice_id: int | None = Field(default=None, foreign_key="invoices.id", index=True)
    customer_id: str = Field(index=True)
    policy: str
    stage: str
    channel: str
    repeat_no: int = 0
    recipient: str | None = None
    status: str = NotificationStatus.PENDING
    attempts: int = 0
    created_at: datetime = instant_column(nullable=False)
    due_at: datetime = instant_column(nullable=False)
    next_attempt_at: datetime | None = instant_column(nullable=True)
    claimed_until: datetime | None = instant_column(nullable=True)
    sent_at: datetime | None = instant_column(nullable=True)
    error: str | None = None
    receipt: str | None = None
    content_hash: str | None = None
    sweep_id: int | None = Field(default=None, index=True)
    #: A grouped notification (policy `group_by: customer`): every invoice it covers, lead first. NULL for
    #: a notification about one invoice (`invoice_id`).
    invoice_ids: list[int] | None = json_column(nullable=True)
    #: The channel to queue instead when this one fails for good (the stage's `fallback:`).
    fallback: str | None = None
    #: The notification this one stands in for (a fallback).
    fallback_of: int | None = None


class Event(SQLModel, table=True):
    """The append-only history. `at` is the effective instant (a sweep's as-of for engine events)."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = instant_column(nullable=False, index=True)
    recorded_at: datetime = instant_column(nullable=False)
    kind: str = Field(index=True, max_length=32)
    invoice_id: int | None = Field(default=None, index=True)
    customer_id: str | None = Field(default=None, index=True)
    actor: str = "system"
    data: dict[str, Any] = json_column(nullable=False, default=dict)
    #: The tamper-evident chain (engine.store.events): SHA-256 of the previous event's `hash` and this event's fields.
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class Commitment(SQLModel, table=True):
    """A promise to pay or one installment of a payment plan, and what became of it.

    `status` is open, kept, broken (a promise) / missed (an installment), or cancelled (superseded by a
    dispute, a write-off or a manual move). Payments count toward it from `since_on` to `due_on` plus grace.
    """

    __tablename__ = "commitments"
    __table_args__ = (Index("ix_commitments_status", "status", "grace_until"),)

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoices.id", index=True)
    kind: str = Field(max_length=16)  # "promise" or "installment"
    plan_id: int | None = None  # the installments of one plan share the id of its first row
    seq: int = 0
    amount: Decimal = money_column(nullable=False)
    #: What had to be paid (cumulatively, from since_on) for this commitment to be kept.
    cumulative: Decimal = money_column(nullable=False)
    since_on: date
    due_on: date
    grace_until: date
    status: str = Field(default="open", max_length=16)
    created_at: datetime = instant_column(nullable=False)
    actor: str = "system"
    resolved_at: datetime | None = instant_column(nullable=True)
    resolved_on: date | None = None


class Sweep(SQLModel, table=True):
    __tablename__ = "sweeps"

    id: int | None = Field(default=None, primary_key=True)
    as_of: datetime = instant_column(nullable=False, unique=True)
    started_at: datetime = instant_column(nullable=False)
    finished_at: datetime = instant_column(nullable=False)
    invoices_seen: int = 0
    transitions: int = 0
    notifications: int = 0
    #: Which policy versions decided; a sweep under a different set re-evaluates every invoice.
    policy_fingerprint: str = ""


class PolicyVersion(SQLModel, table=True):
    """Every policy text ever in force, so any decision can be traced to the exact rule text."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("name", "sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    sha256: str = Field(max_length=64)
    path: str
    text: str
    first_used_at: datetime = instant_column(nullable=False)


class TaskStatus:
    OPEN = "open"
    DONE = "done"


class Task(SQLModel, table=True):
    """Work for a person: a call or a visit (the phone / visit channels), assigned to the customer's owner.

    One task per notification (`key` is the notification's idempotency key). `details` holds everything
    the collector needs (contact, address, invoices, history summary) as it was when the task was made.
    """

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_owner_status", "owner", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    notification_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=32)  # the channel name: phone, visit, ...
    customer_id: str = Field(index=True)
    owner: str | None = None
    stage: str
    invoice_ids: list[int] = json_column(nullable=False, default=list)
    details: dict[str, Any] = json_column(nullable=False, default=dict)
    status: str = Field(default=TaskStatus.OPEN, max_length=16)
    outcome: str | None = Field(default=None, max_length=32)
    note: str | None = None
    promised_amount: Decimal | None = money_column(nullable=True)
    promised_on: date | None = None
    created_at: datetime = instant_column(nullable=False)
    done_at: datetime | None = instant_column(nullable=True)
    done_by: str | None = None


# -- web workspace: people, API tokens, the security log (issue 12; engine.store.users) -----------------


class WebAccount(SQLModel, table=True):
    """A person who may use the web workspace or the REST API. There is no default account."""

    __tablename__ = "web_users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    role: str = Field(max_length=16)  # viewer, collector, manager, admin
    language: str | None = Field(default=None, max_length=16)
    password_hash: str | None = None
    disabled: bool = False
    #: Bumped by a password change, a role change and disabling: sessions signed under an older one end.
    generation: int = 0
    created_at: datetime = instant_column(nullable=False)


class ApiToken(SQLModel, table=True):
    """A bearer token for the REST API, stored as the SHA-256 of its text (printed once, never stored)."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="web_users.id", index=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    created_at: datetime = instant_column(nullable=False)
    expires_at: datetime | None = instant_column(nullable=True)
    revoked_at: datetime | None = instant_column(nullable=True)
    last_used_at: datetime | None = instant_column(nullable=True)


class SecurityEntry(SQLModel, table=True):
    """One line of the security log: logins, failed logins, token use, refusals, account changes."""

    __tablename__ = "security_log"
    __table_args__ = (Index("ix_security_log_kind_at", "kind", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = instant_column(nullable=False)
    kind: str = Field(max_length=32)
    user: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=64)
    detail: str | None = None


# -- credit management (engine.credit) ----------------------------------------------------------------


class CreditFile(SQLModel, table=True):
    """A customer's credit standing as the credit desk last set it: grade, where it came from, score, hold.

    The grade in force is `customers.credit_grade` (what policies read); this row says how it got there.
    When an import changed the grade afterwards, the two differ and the grade's source is `import`.
    """

    __tablename__ = "credit_files"

    customer_id: str = Field(primary_key=True, max_length=64)
    grade: str | None = None
    source: str = Field(default="score", max_length=16)  # score | manual
    score: int | None = None
    previous_grade: str | None = None
    grade_changed_at: datetime | None = instant_column(nullable=True)
    #: A manual grade stays until this day (inclusive); NULL with source manual: until set again.
    manual_until: date | None = None
    reason: str | None = None
    on_hold: bool = False
    hold_since: datetime | None = instant_column(nullable=True)
    updated_at: datetime = instant_column(nullable=False)


class CreditWarning(SQLModel, table=True):
    """One early warning (rules/warnings.yaml) raised for a customer, open until acknowledged or cleared."""

    __tablename__ = "credit_warnings"
    __table_args__ = (Index("ix_credit_warnings_rule_customer", "rule", "customer_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(max_length=128)
    customer_id: str = Field(index=True, max_length=64)
    severity: str = Field(max_length=16)
    status: str = Field(default="open", max_length=16)  # open | acknowledged | cleared
    raised_at: datetime = instant_column(nullable=False)
    cleared_at: datetime | None = instant_column(nullable=True)
    acknowledged_at: datetime | None = instant_column(nullable=True)
    acknowledged_by: str | None = None
    note: str | None = None


# -- inbound mail (engine.inbound, engine.replies, engine.store.inbound) --------------------------------------


class InboundMessage(SQLModel, table=True):
    """A received message, processed once: `message_id` is unique, and so is (`mailbox`, `uid`).

    `kind` is bounce, auto_reply or reply; `status` matched, unmatched, assigned (by a person) or confirmed
    (a suggested intent was turned into a collector action). `raw` keeps the message as received (.eml)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("mailbox", "uid"), Index("ix_inbound_messages_status", "status"))

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    mailbox: str = Field(max_length=255)
    uid: str = Field(max_length=255)
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    match_by: str | None = Field(default=None, max_length=16)
    sender: str | None = Field(default=None, max_length=320)
    subject: str = ""
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    invoice_ids: list[int] = json_column(nullable=False, default=list)
    notification_id: int | None = None
    content_hash: str = Field(max_length=64)
    data: dict[str, Any] = json_column(nullable=False, default=dict)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = instant_column(nullable=False)
    confirmed_at: datetime | None = instant_column(nullable=True)
    confirmed_by: str | None = None


class InboundHold(SQLModel, table=True):
    """Notices held back because of what came in: a hard-bounced address (until the customer's address
    changes), a reply's pause (until `until`), an out-of-office (until its return date)."""

    __tablename__ = "inbound_holds"
    __table_args__ = (Index("ix_inbound_holds_customer", "customer_id", "released_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # bounced_address, reply_pause, out_of_office
    customer_id: str = Field(max_length=64)
    invoice_id: int | None = None
    address: str | None = Field(default=None, max_length=320)
    until: datetime | None = instant_column(nullable=True)
    reason: str
    message: int = Field(index=True)
    created_at: datetime = instant_column(nullable=False)
    released_at: datetime | None = instant_column(nullable=True)

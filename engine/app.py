"""`Dunning`: one installation — settings, database, policies, channels — and what can be asked of it.

The CLI is a thin shell over this class; tests and the daemon drive it directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from channels.base import Channel, ChannelContext
from channels.registry import channel_type
from engine.channel_services import StoreCaseFiles, StoreTaskSink
from engine.clock import Clock, SystemClock, iso, local_day, local_iso
from engine.config import Settings
from engine.contact import ContactGate, gate_for
from engine.credit.desk import CreditDesk
from engine.dispatch import Dispatcher, DispatchReport
from engine.errors import DunningError, NotFound
from engine.importer import Importer, ImportReport
from engine.notice_context import NoticeContext
from engine.policy.loader import load_policies
from engine.policy.model import PolicySet
from engine.statement import statement_of_account
from engine.store import queries, workspace
from engine.store.database import Repository
from engine.store.models import NotificationStatus
from engine.store.outbox import HELD_PREFIX
from engine.sweep import Sweeper, SweepReport
from engine.templates import Renderer


@dataclass
class RunReport:
    sweep: SweepReport
    dispatch: DispatchReport | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.sweep.as_dict(), "dispatch": self.dispatch.as_dict() if self.dispatch else None}


class Dunning:
    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, repo: Repository | None = None, create: bool = True
    ):
        """`create=False` (commands that only read): a missing database is `NoDatabase`, none is created."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.repo = repo or Repository.open(
            settings.database_url, busy_seconds=settings.database_busy_seconds, create=create
        )
        #: Sweeps skip invoices whose next action day has not come; False re-evaluates every open invoice.
        self.incremental = True

    # -- configuration-derived parts -------------------------------------------------------------

    @cached_property
    def policies(self) -> PolicySet:
        return load_policies(
            self.settings.rules_path,
            known_channels=self.settings.channel_settings().keys(),
            default_country=self.settings.country,
        )

    @property
    def recipients(self) -> dict[str, str]:
        return {name: spec.recipient for name, spec in self.settings.channel_settings().items()}

    def build_channels(self) -> dict[str, Channel]:
        context = ChannelContext(
            output_dir=self.settings.output_path,
            company=self.settings.company.model_dump(),
            channel_settings=self.settings.channel_settings(),
            case_files=StoreCaseFiles(self.repo),
            tasks=StoreTaskSink(self.repo),
            now=self.clock.now,
        )
        return {
            name: channel_type(spec.type)(name, spec.options, context)
            for name, spec in self.settings.channel_settings().items()
        }

    def sweeper(self) -> Sweeper:
        return Sweeper(
            self.repo,
            self.policies,
            zone=self.settings.zone,
            recipients=self.recipients,
            clock=self.clock,
            incremental=self.incremental,
            extra_facts=self.credit.sweep_facts,
            after_sweep=self.credit.after_sweep,
        )

    @cached_property
    def credit(self) -> CreditDesk:
        """Credit scoring, grades, limits, holds and early warnings (rules/credit.yaml, rules/warnings.yaml)."""
        return CreditDesk(
            self.repo,
            rules_path=self.settings.rules_path,
            zone=self.settings.zone,
            clock=self.clock,
            known_channels=self.settings.channel_settings().keys(),
            legal_stages=self.legal_stages,
            recipients=self.recipients,
        )

    def legal_stages(self) -> set[str]:
        """Stage names that hand an invoice to lawyers: named legal… or using the legal channel."""
        policies = self.policies_if_valid()
        return {
            s.name
            for p in (policies.policies if policies else ())
            for s in p.stages
            if "legal" in s.name.lower() or "legal" in s.channels
        }

    def dispatcher(self, channels: dict[str, Channel] | None = None) -> Dispatcher:
        return Dispatcher(
            self.repo,
            channels if channels is not None else self.build_channels(),
            Renderer(self.settings.templates_path, self.stage_templates(), self.stage_titles()),
            self.settings.dispatch,
            self.settings.company.model_dump(),
            clock=self.clock,
            gate=self.contact_gate,
            recipients=self.recipients,
            enrich=self.notice_context().enrich,
            link_maker=self.link_maker(),
        )

    def notice_context(self) -> NoticeContext:
        """Charges, total due, deadline, contact, pay link and the statement for each message dispatched."""
        return NoticeContext(self, statements=lambda customer, at: statement_of_account(self, customer, at))

    def link_maker(self) -> Any:
        """customer id -> signed link to the customer's page, or None without `web.public_url`."""
        from engine.links import link_maker  # plain hmac, no web framework

        web = self.settings.web
        return link_maker(web.public_url, web.link_days, self.clock.now)

    @cached_property
    def contact_gate(self) -> ContactGate | None:
        """Quiet hours and the contact cap from the configuration (None when neither is set)."""
        return gate_for(self.settings)

    def importer(self, actor: str = "system") -> Importer:
        # importing must work even while a policy file is being fixed
        return Importer(
            self.repo, zone=self.settings.zone, clock=self.clock, policies=self.policies_if_valid(), actor=actor
        )

    # -- actions ---------------------------------------------------------------------------------

    def import_file(self, kind: str, path: Path | str) -> ImportReport:
        return self.importer().import_file(kind, path)

    def run(self, as_of: datetime | None = None, *, dispatch: bool = True) -> RunReport:
        """One sweep at `as_of` (default now), then dispatch what is due at that instant."""
        instant = as_of or self.clock.now()
        sweep = self.sweeper().run(instant)
        sent = self.dispatch(instant) if dispatch else None
        return RunReport(sweep, sent)

    def dispatch(self, now: datetime | None = None) -> DispatchReport:
        return self.dispatcher().run(now or self.clock.now())

    # -- questions -------------------------------------------------------------------------------

    def latest_sweep(self) -> datetime | None:
        return queries.latest_sweep(self.repo)

    def open_invoices(self, as_of: datetime | None = None) -> list[dict[str, Any]]:
        """Every open invoice, with days overdue counted in the company time zone at `as_of`
        (default: the latest sweep's instant, else now)."""
        instant = as_of or self.latest_sweep() or self.clock.now()
        today = local_day(instant, self.settings.zone)
        return [
            {**status_entry(r, today), "due_on": r["due_on"], "stage_entered_at": r["stage_entered_at"]}
            for r in queries.open_invoices(self.repo)
        ]

    def stage_order(self) -> dict[str, int]:
        """Each stage name's position on the ladder (the first policy naming it decides), for sorting."""
        order: dict[str, int] = {}
        policies = self.policies_if_valid()
        for policy in policies.policies if policies else ():
            for index, stage in enumerate(policy.stages):
                order.setdefault(stage.name, index)
        return order

    def stage_summary(self, invoices: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per stage: invoice count and open amount per currency, in ladder order."""
        order = {"current": -1, **self.stage_order()}
        counts: dict[str, int] = defaultdict(int)
        amounts: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for invoice in invoices:
            counts[invoice["stage"]] += 1
            amounts[invoice["stage"]][invoice["currency"]] += invoice["open_amount"]
        stages = sorted(counts, key=lambda s: (order.get(s, 1000), s))
        return [{"stage": s, "invoices": counts[s], "open_amount": dict(amounts[s])} for s in stages]

    def stage_templates(self) -> dict[tuple[str, str], str]:
        """(policy, stage) → the stage's `template:` name, for the stages that name one."""
        policies = self.policies_if_valid()
        if policies is None:
            return {}
        return {(p.name, st.name): st.template for p in policies.policies for st in p.stages if st.template}

    def stage_titles(self) -> dict[tuple[str, str], dict[str, str]]:
        """(policy, stage) → the stage's `title:` by language tag, for the stages that give one."""
        policies = self.policies_if_valid()
        if policies is None:
            return {}
        return {(p.name, st.name): dict(st.titles) for p in policies.policies for st in p.stages if st.titles}

    def policies_if_valid(self) -> PolicySet | None:
        """The policies in force, or None while a policy file is invalid (for work that can do without)."""
        try:
            return self.policies
        except DunningError:
            return None

    def invoice_id(self, number: str) -> int:
        found = queries.invoice_id(self.repo, number)
        if found is None:
            raise NotFound(f"no invoice numbered {number!r}; `dunning status` lists the open ones")
        return found

    def history(
        self, number: str | None = None, *, customer: str | None = None, local: bool = False
    ) -> list[dict[str, Any]]:
        """The invoice's events in the order they happened — or, with `customer`, the events of that customer
        and all its invoices; notification events carry their delivery state from the outbox (status,
        sent_at, attempts, error). Instants are UTC, or with `local` in the company's time zone (with its
        offset), as finance reads them."""
        zone = self.settings.zone

        def when(instant: datetime | None) -> str | None:
            return local_iso(instant, zone) if local else iso(instant)

        if customer is not None:
            if not queries.customer_exists(self.repo, customer):
                raise NotFound(f"no customer with id {customer!r}; check the id in your customers file")
            events, outbox = queries.history_rows(self.repo, customer=customer)
        else:
            events, outbox = queries.history_rows(self.repo, invoice=self.invoice_id(number or ""))
        history = []
        for event in events:
            entry: dict[str, Any] = {"kind": event["kind"], "at": when(event["at"]), "actor": event["actor"]}
            entry.update(event["data"] or {})
            if event["kind"] == "notification":
                notice = outbox.get(entry.get("key"))
                if notice is not None:
                    entry.update(
                        status=notice["status"],
                        sent_at=when(notice["sent_at"]),
                        attempts=notice["attempts"],
                        error=notice["error"],
                    )
            history.append(entry)
        return history

    def awaiting_approval(self, *, limit: int = 500) -> list[dict[str, Any]]:
        """The invoices an `approval: required` stage waits on, oldest request first (`dunning approvals`)."""
        return [
            {
                "number": r["number"],
                "customer_id": r["customer_id"],
                "customer_name": r["customer_name"],
                "amount": r["amount"],
                "open_amount": r["open_amount"],
                "currency": r["currency"],
                "due_on": r["due_on"],
                "stage": r["stage"],
                "awaiting_stage": r["awaiting_stage"],
                "waiting_since": iso(r["requested_at"]),
                "policy": r["policy"],
                "owner": r["owner"],
            }
            for r in workspace.awaiting_approval(self.repo, limit=limit)
        ]

    def approvals_waiting(self) -> int:
        return workspace.approvals_waiting(self.repo)

    def notified_invoices(self, at: datetime) -> list[str]:
        """Numbers of the invoices a sweep at `at` queued notifications for."""
        return queries.notified_invoices(self.repo, at)

    def outbox(self, status: str | None = None, *, invoice: str | None = None) -> list[dict[str, Any]]:
        """The outbox rows (those with `status`, those about invoice number `invoice`), each with when it is
        tried next (`next_attempt_at`, pending rows only) and why it waits (`held`: quiet hours, the contact
        cap, a hard-bounced address, a reply being read), as the dispatcher recorded it."""
        invoice_id = self.invoice_id(invoice) if invoice is not None else None
        return [
            {**outbox_entry(r), "next_attempt_at": iso(_next_attempt(r)), "held": _held_reason(r)}
            for r in queries.outbox_rows(self.repo, status, invoice_id)
        ]


def status_entry(row: Any, today: date) -> dict[str, Any]:
    """An open invoice as `dunning status` lists it (and the REST API's invoice lists begin), on `today`."""
    return {
        "number": row["number"],
        "customer_id": row["customer_id"],
        "stage": row["stage"],
        "open_amount": row["open_amount"],
        "currency": row["currency"],
        "policy": row["policy"],
        "days_overdue": (today - row["due_on"]).days,
    }


def outbox_entry(row: Any) -> dict[str, Any]:
    """A notification as `dunning outbox --json` lists it (and the REST API's outbox begins)."""
    return {
        "id": row["id"],
        "invoice": row["number"],
        "customer_id": row["customer_id"],
        "stage": row["stage"],
        "channel": row["channel"],
        "recipient": row["recipient"],
        "status": row["status"],
        "repeat": row["repeat_no"],
        "created_at": iso(row["created_at"]),
        "sent_at": iso(row["sent_at"]),
        "attempts": row["attempts"],
        "error": row["error"],
        "key": row["key"],
    }


def json_number(amount: Decimal) -> int | float:
    """An amount as a JSON number (exact for any amount below 10^11 with up to 4 decimals)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _next_attempt(row: Any) -> datetime | None:
    """When the dispatcher may next try a pending notice: its due time, or its retry time if later."""
    if row["status"] != NotificationStatus.PENDING:
        return None
    retry = row["next_attempt_at"]
    due: datetime = row["due_at"]
    return retry if retry is not None and retry > due else due


def _held_reason(row: Any) -> str | None:
    error = row["error"] or ""
    if row["status"] == NotificationStatus.PENDING and error.startswith(HELD_PREFIX):
        return error[len(HELD_PREFIX) :]
    return None


def json_ready(value: Any) -> Any:
    """Amounts become JSON numbers (json_number), instants and days ISO text."""
    if isinstance(value, Decimal):
        return json_number(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value

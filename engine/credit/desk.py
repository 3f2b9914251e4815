"""The credit desk: scores, reviews and sets grades, checks orders against limits, holds, raises early warnings.

One `CreditDesk` per installation (`Dunning.credit`). The rule files are read from the rules folder at each
use, so an edited credit.yaml or warnings.yaml takes effect at the next review or sweep (a file that fails its
check is refused with FILE:LINE:COLUMN problems; a sweep then skips the credit work and logs why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from engine.clock import Clock, local_day
from engine.credit.incentives import incentives as incentives_report
from engine.credit.rules import CreditPolicy, CreditRules, load_credit_rules
from engine.credit.scoring import BROKEN, CustomerBook, Score, credit_facts, measure_values, rounded, score
from engine.currencies import is_currency, money_text, unknown_currency_message
from engine.errors import CreditRefused, DunningError, EvaluationError, NotFound, PolicyError
from engine.policy.expressions import CompiledExpression
from engine.reports.figures import load_book
from engine.store import credit as store
from engine.store.database import Repository

logger = logging.getLogger("dunning.credit")
ZERO = Decimal(0)
SOURCES = ("import", "score", "manual")
#: Utilisation bands of `report credit` (upper bounds, included), then over the limit, then no limit known.
UTILISATION_BANDS = ("0-0.5", "0.5-0.8", "0.8-1", "over_1", "no_limit")


def _utilisation_band(value: Decimal | None) -> str:
    if value is None:
        return "no_limit"
    if value <= Decimal("0.5"):
        return "0-0.5"
    if value <= Decimal("0.8"):
        return "0.5-0.8"
    return "0.8-1" if value <= 1 else "over_1"


@dataclass
class Assessment:
    """One customer's credit standing at an as-of day: the grade in force and the score the book gives now."""

    customer: dict[str, Any]
    file: dict[str, Any] | None
    grade: str | None
    source: str
    limit: Decimal | None
    payment_terms_days: int | None
    measures: dict[str, Any]
    facts: dict[str, Any]
    scored: Score | None

    @property
    def customer_id(self) -> str:
        return str(self.customer["id"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "grade": self.grade,
            "score": self.scored.score if self.scored else None,
            "source": self.source,
            "limit": self.limit,
            "payment_terms_days": self.payment_terms_days,
            "factors": self.scored.breakdown() if self.scored else [],
        }


def order_amount(text: str) -> Decimal:
    """The amount of `credit check --amount` (and the web's `amount=`): a finite decimal, else CreditRefused."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise CreditRefused(f"--amount {text!r} is not an amount; write e.g. 5000 or 1234.50")
    return value


def grade_source(customer: Mapping[str, Any], file: Mapping[str, Any] | None) -> str:
    """import, unless the credit desk set the grade in force (an import may have changed it since)."""
    if file is None or file.get("grade") != customer.get("credit_grade"):
        return "import"
    return str(file.get("source") or "score")


def manual_in_force(file: Mapping[str, Any] | None, day: date) -> bool:
    if file is None or file.get("source") != "manual":
        return False
    until = file.get("manual_until")
    return until is None or until >= day


class CreditDesk:
    def __init__(
        self,
        repo: Repository,
        *,
        rules_path: Path,
        zone: tzinfo,
        clock: Clock,
        known_channels: Collection[str] = (),
        legal_stages: Callable[[], Collection[str]] = lambda: (),
        recipients: Mapping[str, str] | None = None,
    ):
        self.repo = repo
        self.rules_path = rules_path
        self.zone = zone
        self.clock = clock
        self.known_channels = tuple(known_channels)
        self.legal_stages = legal_stages
        #: channel name -> the customer field it is addressed to (as for dunning notifications)
        self.recipients = dict(recipients or {})
        #: False: sweeps skip holds and warnings (simulations: they would cost a read of the whole book a day)
        self.at_sweeps = True
        self._cached: tuple[Any, CreditRules] | None = None

    # -- rules -------------------------------------------------------------------------------------------

    def rules(self) -> CreditRules:
        """The credit rules as the files say now (PolicyError with every problem when one is invalid).

        Re-read when a rule file changes (name, size, modification time), so every sweep chunk can ask."""
        stamp = _stamp(self.rules_path)
        if self._cached is None or self._cached[0] != stamp:
            self._cached = (stamp, load_credit_rules(self.rules_path, known_channels=self.known_channels))
        return self._cached[1]

    def policy(self) -> CreditPolicy:
        policy = self.rules().credit
        if policy is None:
            raise CreditRefused(
                f"no credit policy: write {self.rules_path / 'credit.yaml'} (rules/README.md "
                "shows one) to score and grade customers"
            )
        return policy

    # -- assessment --------------------------------------------------------------------------------------

    def assess(
        self,
        as_of: date,
        *,
        customer: str | None = None,
        policy: CreditPolicy | None = None,
        ids: Collection[str] | None = None,
    ) -> list[Assessment]:
        """Every customer's (or one's) standing at the end of `as_of`, scored when a credit policy exists."""
        book = load_book(self.repo, self.zone, as_of)
        wanted = [customer] if customer is not None else ids
        with self.repo.read() as session:
            conn = session.connection()
            customers = store.customers(conn, wanted)
            if customer is not None and not customers:
                raise NotFound(f"no customer with id {customer!r}; check the id in your customers file")
            files = store.credit_files(conn, wanted)
            disputes = store.dispute_days(conn, self.zone, as_of)
            warnings = store.open_warning_counts(conn, wanted)
            legal = store.open_in_stages(conn, self.legal_stages(), wanted)
        books: dict[str, CustomerBook] = {c["id"]: CustomerBook(c["id"]) for c in customers}
        by_invoice = {}
        for invoice in book.invoices:
            target = books.get(invoice.customer_id)
            if target is not None:
                target.invoices.append(invoice)
                by_invoice[invoice.id] = target
        for kind, invoice_id, day in book.outcomes:
            if kind in BROKEN and invoice_id in by_invoice:
                by_invoice[invoice_id].broken_days.append(day)
        for customer_id, days in disputes.items():
            if customer_id in books:
                books[customer_id].dispute_days.extend(days)
        results = []
        for row in customers:
            file = files.get(row["id"])
            grade = row.get("credit_grade")
            grade_rule = policy.grade_named(grade) if policy else None
            limit = row.get("credit_limit")
            if limit is None and grade_rule is not None:
                limit = grade_rule.limit
            measures = measure_values(
                books[row["id"]],
                as_of,
                policy.window_days if policy else 365,
                credit_currency=policy.currency if policy else None,
                limit=limit,
            )
            facts = self._facts(
                row, file, measures, as_of, policy, warnings.get(row["id"], 0), legal.get(row["id"], 0), limit
            )
            scored = score(policy, measures, facts) if policy else None
            results.append(
                Assessment(
                    customer=row,
                    file=file,
                    grade=grade,
                    source=grade_source(row, file),
                    limit=limit,
                    payment_terms_days=grade_rule.payment_terms_days if grade_rule else None,
                    measures=measures,
                    facts=facts,
                    scored=scored,
                )
            )
        return results

    def _facts(
        self,
        row: Mapping[str, Any],
        file: Mapping[str, Any] | None,
        measures: Mapping[str, Any],
        as_of: date,
        policy: CreditPolicy | None,
        open_warnings: int,
        legal: int,
        limit: Decimal | None,
    ) -> dict[str, Any]:
        changed = file.get("grade_changed_at") if file else None
        previous = file.get("previous_grade") if file and file.get("grade") == row.get("credit_grade") else None
        dropped = False
        if policy is not None and previous is not None:
            old, new = policy.rank(previous), policy.rank(row.get("credit_grade"))
            dropped = old is not None and new is not None and new > old
        return {
            "customer.id": row["id"],
            "customer.name": row["name"],
            "customer.credit_grade": row.get("credit_grade"),
            "customer.segment": row.get("segment"),
            "customer.owner": row.get("owner"),
            "customer.language": row.get("language"),
            "customer.timezone": row.get("timezone"),
            "customer.tags": tuple(row.get("tags") or ()),
            "customer.industry": row.get("industry"),
            "customer.region": row.get("region"),
            "customer.total_open": measures["open_total"],
            "customer.total_overdue": measures["open_overdue"],
            "customer.overdue_count": measures["overdue_count"],
            "customer.credit_limit": limit,
            "customer.utilisation": measures["utilisation"],
            "customer.previous_grade": previous,
            "customer.grade_changed_days_ago": (as_of - local_day(changed, self.zone)).days if changed else None,
            "customer.open_warnings": open_warnings,
            **credit_facts(measures),
            "credit.legal_invoices": legal,
            "credit.grade_dropped": dropped,
        }

    def score(self, as_of: date, customer: str | None = None) -> list[Assessment]:
        return self.assess(as_of, customer=customer, policy=self.policy())

    # -- grades ------------------------------------------------------------------------------------------

    def review(self, as_of: datetime, *, apply: bool = False, actor: str = "system") -> list[dict[str, Any]]:
        """Re-grade every customer from its score (manual grades in force stay); with `apply`, record it all.

        Returns the changes: {customer_id, old, new, score, source, factors}."""
        policy = self.policy()
        day = local_day(as_of, self.zone)
        assessments = self.assess(day, policy=policy)
        recorded_at = self.clock.now()
        changes: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for a in assessments:
            assert a.scored is not None
            manual = manual_in_force(a.file, day)
            new = a.file["grade"] if manual and a.file else a.scored.grade
            source = "manual" if manual else "score"
            base = dict(a.file) if a.file else {"customer_id": a.customer_id, "on_hold": False, "hold_since": None}
            base.update(score=a.scored.score, updated_at=recorded_at)
            if not manual:
                base.update(source="score", manual_until=None, reason=None)
            if new != a.grade:
                change = {
                    "customer_id": a.customer_id,
                    "old": a.grade,
                    "new": new,
                    "score": a.scored.score,
                    "source": source,
                    "factors": a.scored.breakdown(),
                }
                changes.append(change)
                base.update(grade=new, previous_grade=a.grade, grade_changed_at=as_of)
                events.append(
                    store.event(
                        as_of,
                        recorded_at,
                        "grade_changed",
                        a.customer_id,
                        {
                            "old": a.grade,
                            "new": new,
                            "source": source,
                            "score": a.scored.score,
                            "factors": _plain(a.scored.breakdown()),
                            "credit_policy": policy.path,
                            "credit_policy_hash": policy.hash,
                            "old_source": a.source,
                        },
                        actor,
                    )
                )
            else:
                base["grade"] = a.grade
            files.append(base)
        if apply:
            events.append(
                {
                    "at": as_of,
                    "recorded_at": recorded_at,
                    "kind": "credit_review",
                    "invoice_id": None,
                    "customer_id": None,
                    "actor": actor,
                    "data": {"regraded": len(changes), "credit_policy_hash": policy.hash},
                }
            )
            with self.repo.write() as session:
                conn = session.connection()
                store.save_credit_files(conn, files)
                store.set_grades(conn, {c["customer_id"]: c["new"] for c in changes})
                store.record(conn, events)
            self.evaluate(as_of, actor=actor)  # holds and warnings follow the new grades at once
        return changes

    def latest_review(self) -> datetime | None:
        """The as-of instant of the latest applied review (None before the first)."""
        with self.repo.read() as session:
            return store.latest_event_at(session.connection(), "credit_review")

    def set_grade(
        self,
        customer: str,
        grade: str,
        *,
        reason: str,
        until: date | None = None,
        actor: str = "system",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A grade set by hand: recorded, and sticky until `until` (inclusive; without it, until set again)."""
        if not reason or not reason.strip():
            raise CreditRefused("a manual grade needs a reason (--reason TEXT)")
        policy = self.rules().credit
        if policy is not None and policy.grade_named(grade) is None:
            names = [g.grade for g in policy.grades]
            from engine.yamlsource import did_you_mean

            raise CreditRefused(
                f"grade {grade!r} is not a grade of {policy.path} ({', '.join(names)}){did_you_mean(grade, names)}"
            )
        when = at or self.clock.now()
        if until is not None and until < local_day(when, self.zone):
            raise CreditRefused(f"--until {until.isoformat()} is in the past; give a later day or leave it out")
        recorded_at = self.clock.now()
        with self.repo.write() as session:
            conn = session.connection()
            rows = store.customers(conn, [customer])
            if not rows:
                raise NotFound(f"no customer with id {customer!r}; check the id in your customers file")
            old = rows[0].get("credit_grade")
            file = store.credit_files(conn, [customer]).get(customer)
            base = (
                dict(file) if file else {"customer_id": customer, "on_hold": False, "hold_since": None, "score": None}
            )
            base.update(grade=grade, source="manual", manual_until=until, reason=reason.strip(), updated_at=recorded_at)
            if old != grade:
                base.update(previous_grade=old, grade_changed_at=when)
            store.save_credit_files(conn, [base])
            store.set_grades(conn, {customer: grade})
            data = {
                "old": old,
                "new": grade,
                "source": "manual",
                "reason": reason.strip(),
                "until": until.isoformat() if until else None,
                "old_source": grade_source(rows[0], file),
            }
            if policy is not None:
                data["credit_policy_hash"] = policy.hash
            store.record(conn, [store.event(when, recorded_at, "grade_changed", customer, data, actor)])
        return {"customer_id": customer, **data}

    # -- limits ------------------------------------------------------------------------------------------

    def check(self, customer: str, amount: Decimal, currency: str | None = None) -> dict[str, Any]:
        """May an order of `amount` ship? {customer_id, ok, limit, open, amount, headroom, reasons}."""
        if amount <= 0:
            raise CreditRefused(f"--amount must be more than 0, got {amount}")
        if currency is not None and not is_currency(currency.strip().upper()):
            raise CreditRefused(f"--currency {unknown_currency_message(currency.strip())}")
        policy = self.rules().credit
        day = local_day(self.clock.now(), self.zone)
        assessment = self.assess(day, customer=customer, policy=policy)[0]
        currency = (currency or (policy.currency if policy else "")).upper()
        with self.repo.read() as session:
            conn = session.connection()
            open_amounts = store.open_by_currency(conn, customer)
        reasons: list[str] = []
        base = policy.currency if policy else None
        open_amount = open_amounts.get(base, ZERO) if base else sum(open_amounts.values(), ZERO)
        limit = assessment.limit
        headroom = limit - open_amount if limit is not None else None
        if limit is None:
            reasons.append(
                "no credit limit: the customer has no credit_limit and its grade "
                f"{assessment.grade!r} has none in credit.yaml"
            )
        if base and currency != base:
            reasons.append(f"the order is in {currency} but limits are in {base}, and no exchange rate is known")
        foreign = sorted(c for c, value in open_amounts.items() if base and c != base and value)
        if foreign:
            reasons.append(f"open invoices in {', '.join(foreign)} cannot be converted to {base}")
        if headroom is not None and amount > headroom:
            unit = base or currency
            reasons.append(
                f"over limit: open {money_text(open_amount, unit)} + order {money_text(amount, unit)} exceeds the "
                f"limit {money_text(limit, unit)} by {money_text(open_amount + amount - limit, unit)}"
            )
        legal = assessment.facts.get("credit.legal_invoices") or 0
        if legal:
            reasons.append(f"{legal} invoice(s) in legal collection")
        if assessment.file and assessment.file.get("on_hold"):
            reasons.append("the customer is on credit hold")
        return {
            "customer_id": customer,
            "ok": not reasons,
            "limit": limit,
            "open": open_amount,
            "amount": amount,
            "headroom": headroom,
            "reasons": reasons,
        }

    # -- warnings and holds, at every sweep ---------------------------------------------------------------

    def after_sweep(self, as_of: datetime) -> None:
        """Evaluate holds and early warnings as of the sweep (its own transaction, after the sweep's commit)."""
        if not self.at_sweeps:
            return
        try:
            rules = self.rules()
        except PolicyError as exc:
            logger.warning("credit rules invalid; holds and warnings not evaluated at this sweep:\n%s", exc)
            return
        if rules.credit is None and not rules.warnings:
            return
        self.evaluate(as_of, rules)

    def evaluate(self, as_of: datetime, rules: CreditRules | None = None, *, actor: str = "system") -> dict[str, int]:
        """Raise and clear warnings, put on and release holds; returns counts of what happened."""
        rules = rules or self.rules()
        day = local_day(as_of, self.zone)
        assessments = self.assess(day, policy=rules.credit)
        recorded_at = self.clock.now()
        counts = {"raised": 0, "cleared": 0, "held": 0, "released": 0}
        events: list[dict[str, Any]] = []
        notices: list[dict[str, Any]] = []
        with self.repo.write() as session:
            conn = session.connection()
            active = store.active_warnings(conn)
            for a in assessments:
                for rule in rules.warnings:
                    holds = _verdict(rule.when, a.facts, a.customer_id, f"warning {rule.name}")
                    if holds is None:
                        continue  # cannot be computed on this customer's values: left as it is
                    current = active.get((rule.name, a.customer_id))
                    if holds and current is None:
                        warning_id = store.raise_warning(conn, rule.name, a.customer_id, rule.severity, as_of)
                        events.append(
                            store.event(
                                as_of,
                                recorded_at,
                                "warning_raised",
                                a.customer_id,
                                {
                                    "warning": warning_id,
                                    "rule": rule.name,
                                    "severity": rule.severity,
                                    "notify": list(rule.notify),
                                    "when": rule.when.source,
                                    "because": rule.when.explain(a.facts),
                                },
                                actor,
                            )
                        )
                        notices += self._notices(
                            "credit_warning", f"warning:{rule.name}", f"w{warning_id}", a.customer, rule.notify, as_of
                        )
                        counts["raised"] += 1
                    elif not holds and current is not None:
                        store.clear_warning(conn, current["id"], as_of)
                        events.append(
                            store.event(
                                as_of,
                                recorded_at,
                                "warning_cleared",
                                a.customer_id,
                                {
                                    "warning": current["id"],
                                    "rule": rule.name,
                                },
                                actor,
                            )
                        )
                        counts["cleared"] += 1
                hold = rules.credit.holds if rules.credit else None
                if hold is None:
                    continue
                on_hold = bool(a.file and a.file.get("on_hold"))
                held = released = None  # None: cannot be computed on this customer's values (logged)
                if on_hold:
                    verdict = _verdict(hold.release_when or hold.when, a.facts, a.customer_id, "credit hold release")
                    released = verdict if hold.release_when or verdict is None else not verdict
                else:
                    held = _verdict(hold.when, a.facts, a.customer_id, "credit hold")
                if held:
                    kind, value = "credit_hold", True
                    because = hold.when.explain(a.facts)
                elif on_hold and released:
                    kind, value = "credit_release", False
                    because = (hold.release_when or hold.when).explain(a.facts)
                else:
                    continue
                # a hold alone says nothing about the grade: its source stays the import's
                base = (
                    dict(a.file)
                    if a.file
                    else {"customer_id": a.customer_id, "grade": a.grade, "source": "import", "score": None}
                )
                base.update(on_hold=value, hold_since=as_of if value else None, updated_at=recorded_at)
                store.save_credit_files(conn, [base])
                events.append(
                    store.event(
                        as_of,
                        recorded_at,
                        kind,
                        a.customer_id,
                        {
                            "because": because,
                            "notify": list(hold.notify),
                            "utilisation": a.facts["customer.utilisation"],
                            "grade": a.grade,
                        },
                        actor,
                    )
                )
                notices += self._notices(
                    kind, "credit", as_of.strftime("%Y%m%dT%H%M%S"), a.customer, hold.notify, as_of
                )
                counts["held" if value else "released"] += 1
            store.queue_notices(conn, notices)
            events += [
                store.event(
                    as_of,
                    recorded_at,
                    "notification",
                    n["customer_id"],
                    {
                        "key": n["key"],
                        "channel": n["channel"],
                        "recipient": n["recipient"],
                        "stage": n["stage"],
                        "repeat": 0,
                        "policy": n["policy"],
                    },
                    actor,
                )
                for n in notices
            ]
            store.record(conn, events)
        return counts

    def _notices(
        self,
        stage: str,
        label: str,
        occasion: str,
        customer: Mapping[str, Any],
        targets: Collection[str],
        as_of: datetime,
    ) -> list[dict[str, Any]]:
        """Outbox rows telling `targets` (owner, an address, a channel) about a hold, release or warning.

        A channel target is addressed like a dunning notice (its `recipient:` field of the customer); an email
        address and the owner (when the owner field is an email address) go through the `email` channel."""
        notices = []
        for target in targets:
            if target in self.recipients:
                channel, field_name = target, self.recipients[target]
                recipient = customer.get(field_name) if field_name != "id" else customer["id"]
            elif target == "owner":
                channel, recipient = "email", customer.get("owner")
                if not recipient or "@" not in str(recipient):
                    logger.info(
                        "%s for %s: the owner %r has no email address; not notified", stage, customer["id"], recipient
                    )
                    continue
            else:
                channel, recipient = "email", target
            notices.append(
                {
                    "key": f"{stage}:{customer['id']}:{occasion}:{channel}:{recipient}"[:255],
                    "invoice_id": None,
                    "customer_id": customer["id"],
                    "policy": label,
                    "stage": stage,
                    "channel": channel,
                    "repeat_no": 0,
                    "recipient": recipient,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": as_of,
                    "due_at": as_of,
                }
            )
        return notices

    def warnings(
        self,
        *,
        open_only: bool = False,
        customer: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
        with_customer: bool = False,
    ) -> list[dict[str, Any]]:
        """`dunning warnings --json`, oldest first (or newest): every warning (or open ones, or one
        customer's), those after `after_id` in that order, at most `limit` of them; `with_customer` adds the
        customer's `customer_name` and `owner` (for the web pages)."""
        with self.repo.read() as session:
            rows = store.list_warnings(
                session.connection(),
                open_only=open_only,
                customer=customer,
                after_id=after_id,
                limit=limit,
                newest_first=newest_first,
            )
        if with_customer:
            return [_warning(r) | {"customer_name": r["customer_name"], "owner": r["owner"]} for r in rows]
        return [_warning(r) for r in rows]

    def warning(self, warning_id: int) -> dict[str, Any]:
        """One warning as `dunning warnings --json` lists it; NotFound when there is none with that id."""
        with self.repo.read() as session:
            found = store.warning(session.connection(), warning_id)
        if found is None:
            raise NotFound(f"no warning with id {warning_id}; `dunning warnings` lists them")
        return _warning(found)

    def standing(self, customer: str) -> dict[str, Any]:
        """A customer's credit standing as the book is now, without scoring it (no read of the whole book):
        {customer_id, grade, source, limit, currency, payment_terms_days, open, utilisation, on_hold}.
        `open` is in the limits' currency (credit.yaml's `currency`); utilisation is open ÷ limit."""
        policy = self.rules().credit
        with self.repo.read() as session:
            conn = session.connection()
            rows = store.customers(conn, [customer])
            if not rows:
                raise NotFound(f"no customer with id {customer!r}; check the id in your customers file")
            file = store.credit_files(conn, [customer]).get(customer)
            open_amounts = store.open_by_currency(conn, customer)
        row = rows[0]
        grade_rule = policy.grade_named(row.get("credit_grade")) if policy else None
        limit = row.get("credit_limit")
        if limit is None and grade_rule is not None:
            limit = grade_rule.limit
        base = policy.currency if policy else None
        open_amount = open_amounts.get(base, ZERO) if base else sum(open_amounts.values(), ZERO)
        return {
            "customer_id": customer,
            "grade": row.get("credit_grade"),
            "source": grade_source(row, file),
            "limit": limit,
            "currency": base,
            "payment_terms_days": grade_rule.payment_terms_days if grade_rule else None,
            "open": open_amount,
            "utilisation": rounded(open_amount / limit) if limit else None,
            "on_hold": bool(file and file.get("on_hold")),
        }

    def acknowledge(
        self, warning_id: int, *, note: str | None, actor: str = "system", at: datetime | None = None
    ) -> None:
        when = at or self.clock.now()
        with self.repo.write() as session:
            conn = session.connection()
            found = store.warning(conn, warning_id)
            if found is None:
                raise NotFound(f"no warning with id {warning_id}; `dunning warnings` lists them")
            if found["status"] != "open":
                raise CreditRefused(
                    f"warning {warning_id} is {found['status']}, not open; only open warnings can be acknowledged"
                )
            store.acknowledge_warning(conn, warning_id, actor, note, when)
            store.record(
                conn,
                [
                    store.event(
                        when,
                        self.clock.now(),
                        "warning_acknowledged",
                        found["customer_id"],
                        {
                            "warning": warning_id,
                            "rule": found["rule"],
                            "note": note,
                        },
                        actor,
                    )
                ],
            )

    # -- reason codes ----------------------------------------------------------------------------------------

    def reason_group(self, code: str) -> str:
        """The group of a reason code (rules/reasons.yaml, else the built-in list); CreditRefused if unknown."""
        reasons = self.rules().reasons
        if code not in reasons:
            from engine.yamlsource import did_you_mean

            raise CreditRefused(
                f"unknown reason code {code!r}{did_you_mean(code, reasons)}; the codes are: "
                f"{', '.join(sorted(reasons))} (rules/reasons.yaml)"
            )
        return reasons[code]

    def record_reason(
        self,
        code: str,
        kind: str,
        *,
        numbers: Collection[str] = (),
        task: int | None = None,
        actor: str = "system",
        at: datetime | None = None,
    ) -> None:
        """Record why (`code`) for an action of `kind` on invoices (or a task's invoices): one `reason_code`
        event per invoice, with its open amount then, for `report reasons`."""
        group = self.reason_group(code)
        when = at or self.clock.now()
        with self.repo.write() as session:
            conn = session.connection()
            wanted = list(numbers) + (store.task_invoice_numbers(conn, task) if task is not None else [])
            rows = store.invoices_by_number(conn, wanted)
            store.record(
                conn,
                [
                    {
                        "at": when,
                        "recorded_at": self.clock.now(),
                        "kind": "reason_code",
                        "invoice_id": row["id"],
                        "customer_id": row["customer_id"],
                        "actor": actor,
                        "data": {
                            "invoice": row["number"],
                            "code": code,
                            "group": group,
                            "for": kind,
                            "amount": str(row["open_amount"] if row["open_amount"] else row["amount"]),
                            "currency": row["currency"],
                            **({"task": task} if task is not None else {}),
                        },
                    }
                    for row in rows
                ],
            )

    def reasons_report(self, since: date | None = None, until: date | None = None) -> dict[str, Any]:
        """Per reason code and per group: how many times it was given and the amount concerned, per currency."""
        rules = self.rules()
        with self.repo.read() as session:
            events = store.events_of_kind(session.connection(), "reason_code")
        codes: dict[tuple[str, str], dict[str, Any]] = {}
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            day = local_day(event["at"], self.zone)
            if (since and day < since) or (until and day > until):
                continue
            data = event["data"] or {}
            code, currency = data.get("code", "?"), data.get("currency", "?")
            group = rules.reasons.get(code, data.get("group", "?"))
            amount = Decimal(data.get("amount") or 0)
            for table, key in ((codes, (code, currency)), (groups, (group, currency))):
                entry = table.setdefault(key, {"count": 0, "amount": ZERO})
                entry["count"] += 1
                entry["amount"] += amount
        return {
            "from": since,
            "to": until,
            "codes": [
                {"code": c, "group": rules.reasons.get(c, "?"), "currency": cur, **v}
                for (c, cur), v in sorted(codes.items())
            ],
            "groups": [{"group": g, "currency": cur, **v} for (g, cur), v in sorted(groups.items())],
        }

    # -- reports -------------------------------------------------------------------------------------------

    def incentives(self, since: date, until: date) -> dict[str, Any]:
        """The incentives report (engine.credit.incentives) for since..until, under rules/incentives.yaml."""
        if since > until:
            raise CreditRefused(f"--from {since} is after --to {until}; give the period's first day first")
        rules = self.rules().incentives
        if rules is None:
            raise CreditRefused(
                f"no incentive rules: write {self.rules_path / 'incentives.yaml'} (rules/README.md "
                "shows one) to compute commissions"
            )
        return incentives_report(load_book(self.repo, self.zone, until), rules, since, until)

    def report(self, since: date, as_of: date) -> dict[str, Any]:
        """Grade distribution, the grade migrations of since..as_of, utilisation bands, over limit or on hold."""
        policy = self.rules().credit
        assessments = self.assess(as_of, policy=policy)
        distribution: dict[str, int] = {}
        bands = {label: 0 for label in UTILISATION_BANDS}
        over, held = [], []
        for a in assessments:
            grade = a.grade or "(none)"
            distribution[grade] = distribution.get(grade, 0) + 1
            use = a.measures["utilisation"]
            bands[_utilisation_band(use)] += 1
            if use is not None and use > 1:
                over.append(
                    {
                        "customer_id": a.customer_id,
                        "grade": a.grade,
                        "limit": a.limit,
                        "open": a.measures["open_credit_currency"],
                        "utilisation": use,
                    }
                )
            if a.file and a.file.get("on_hold"):
                held.append({"customer_id": a.customer_id, "grade": a.grade, "since": a.file.get("hold_since")})
        migration: dict[str, dict[str, int]] = {}
        with self.repo.read() as session:
            changes = store.grade_changes(session.connection())
        for change in changes:
            day = local_day(change["at"], self.zone)
            if since <= day <= as_of:
                data = change["data"] or {}
                old, new = data.get("old") or "(none)", data.get("new") or "(none)"
                migration.setdefault(old, {})[new] = migration.setdefault(old, {}).get(new, 0) + 1
        return {
            "as_of": as_of,
            "from": since,
            "grades": distribution,
            "migration": migration,
            "utilisation": bands,
            "over_limit": over,
            "on_hold": held,
            "currency": policy.currency if policy else None,
        }

    # -- the sweep's facts ----------------------------------------------------------------------------------

    def sweep_facts(self, conn: Any, today: date, ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """customer.credit_limit / utilisation / previous_grade / grade_changed_days_ago / open_warnings /
        industry / region for the customers a sweep chunk reads (inside the sweep's transaction)."""
        try:
            policy = self.rules().credit
        except DunningError:
            policy = None
        customers = store.customers(conn, ids)
        files = store.credit_files(conn, ids)
        warnings = store.open_warning_counts(conn, ids)
        open_amounts = store.open_in_currency(conn, ids, policy.currency) if policy else {}
        facts: dict[str, dict[str, Any]] = {}
        for row in customers:
            file = files.get(row["id"])
            grade_rule = policy.grade_named(row.get("credit_grade")) if policy else None
            limit = row.get("credit_limit")
            if limit is None and grade_rule is not None:
                limit = grade_rule.limit
            changed = file.get("grade_changed_at") if file and file.get("grade") == row.get("credit_grade") else None
            facts[row["id"]] = {
                "customer.industry": row.get("industry"),
                "customer.region": row.get("region"),
                "customer.credit_limit": limit,
                "customer.utilisation": (open_amounts.get(row["id"], ZERO) / limit).quantize(Decimal("0.0001"))
                if limit and policy
                else None,
                "customer.previous_grade": file.get("previous_grade") if changed else None,
                "customer.grade_changed_days_ago": (today - local_day(changed, self.zone)).days if changed else None,
                "customer.open_warnings": warnings.get(row["id"], 0),
            }
        return facts


def _warning(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "rule", "customer_id", "severity", "status", "raised_at", "cleared_at", "acknowledged_by", "note")
    return {key: row[key] for key in keys}


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    from engine.credit.rules import RULE_FILES

    found = []
    for name in sorted(RULE_FILES):
        try:
            info = (folder / name).stat()
        except OSError:
            continue
        found.append((name, info.st_mtime_ns, info.st_size))
    return tuple(found)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _verdict(expression: CompiledExpression, facts: Mapping[str, Any], customer_id: str, what: str) -> bool | None:
    """The expression on a customer's facts; None (logged) when it cannot be computed on them (a value outside
    the bounds, e.g. a NaN written into the database by hand): that rule leaves the customer as it is."""
    try:
        return expression.evaluate(facts)
    except EvaluationError as error:
        logger.warning(
            "customer %s: %s; %s left as it is until the value or the rule is fixed", customer_id, error, what
        )
        return None

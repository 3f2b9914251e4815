"""`dunning explain` in the reader's language, for the invoice page.

English is `Explanation.lines()` itself (what the CLI prints). Another language builds the same sentences
from the explanation's fields with the translator's texts (keys are English templates in
engine/web/catalog.py). The reasons `explain` hands over already worded — why a policy applies, a pause, what
holds a notice back — are matched against the shapes engine.authoring.explain and engine.policy.decide
write and re-worded; a reason of a shape not listed here is shown as it is, and the conditions inside them
(`customer.credit_grade = "C"`) stay as the policy file spells them.
"""

from __future__ import annotations

import re
from typing import Any

from engine.web.i18n import DEFAULT_LANGUAGE, Translator

#: The reason shapes `explain` writes: (pattern, the English template of its translation in the catalog).
REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (
            r"^the default policy: no other policy's applies_to holds for this invoice$",
            "the default policy: no other policy's applies_to holds for this invoice",
        ),
        (r'^its applies_to "(?P<source>.*)" holds: (?P<why>.*)$', 'its applies_to "{source}" holds: {why}'),
        (
            r'^(?P<name>[^:]+): its applies_to "(?P<source>.*)" does not hold — (?P<why>.*)$',
            '{name}: its applies_to "{source}" does not hold — {why}',
        ),
        (
            r"^Policy change: it was under (?P<old>.+) in (?P<stage>.+); the next sweep moves it to (?P<new>.+), "
            r"landing in (?P<landing>.+) without notifying\.$",
            "Policy change: it was under {old} in {stage}; the next sweep moves it to {new}, landing in {landing} "
            "without notifying.",
        ),
        (
            r"^Policy change: it was under (?P<old>.+) in (?P<stage>.+); the next sweep moves it to (?P<new>.+)\.$",
            "Policy change: it was under {old} in {stage}; the next sweep moves it to {new}.",
        ),
        (r"^Closed: paid in full on (?P<on>\S+); nothing more will happen to it\.$", "Closed: paid in full on {on}."),
        (r"^Closed: written off on (?P<on>\S+); nothing more will happen to it\.$", "Closed: written off on {on}."),
        (r"^Closed: paid in full; nothing more will happen to it\.$", "Closed: paid in full."),
        (r"^Closed: written off; nothing more will happen to it\.$", "Closed: written off."),
        (r"^paused: (?P<pause>.*)$", "paused: {pause}"),
        (r"^disputed since (?P<since>\S+) \((?P<reason>.*)\)$", "disputed since {since} ({reason})"),
        (r"^disputed since (?P<since>\S+)$", "disputed since {since}"),
        (
            r"^payment plan since (?P<since>\S+): (?P<count>\d+) installment\(s\), (?P<total>.*)$",
            "payment plan since {since}: {count} installment(s), {total}",
        ),
        (
            r"^promised since (?P<since>\S+): (?P<amount>.*) by (?P<by>\S+); escalation resumes after "
            r"(?P<grace>\S+) if unpaid$",
            "promised since {since}: {amount} by {by}; escalation resumes after {grace} if unpaid",
        ),
        (r"^promised since (?P<since>\S+): (?P<amount>.*) by (?P<by>\S+)$", "promised since {since}: {amount} by {by}"),
        (
            r"^waiting for approval to enter (?P<stage>\S+) since (?P<since>\S+) \((?P<who>.*)\)$",
            "waiting for approval to enter {stage} since {since} ({who})",
        ),
        (
            r"^waiting for approval to enter (?P<stage>\S+) \((?P<who>.*)\)$",
            "waiting for approval to enter {stage} ({who})",
        ),
        (
            r"^(?P<stage>\S+) \(at (?P<days>\d+) days overdue\) will be skipped as things stand: (?P<why>.*) "
            r"\(needs (?P<source>.*)\)$",
            "{stage} (at {days} days overdue) will be skipped as things stand: {why} (needs {source})",
        ),
        (r"^(?P<stage>\S+) skipped: (?P<why>.*) \(needs (?P<source>.*)\)$", "{stage} skipped: {why} (needs {source})"),
        (r"^(?P<stage>\S+) skipped: (?P<why>.*)$", "{stage} skipped: {why}"),
        (
            r"^(?P<stage>\S+) is due at (?P<after>\d+) days overdue; now (?P<days>-?\d+)$",
            "{stage} is due at {after} days overdue; now {days}",
        ),
        (
            r"^(?P<stage>\S+) is due but min_days_between_stages is (?P<min>\d+): (?P<days>\d+) day\(s\) in "
            r"(?P<current>\S+) so far$",
            "{stage} is due but min_days_between_stages is {min}: {days} day(s) in {current} so far",
        ),
        (r"^(?P<stage>\S+): all (?P<max>\d+) repeat\(s\) sent$", "{stage}: all {max} repeat(s) sent"),
        (
            r"^(?P<stage>\S+): next repeat after (?P<every>\d+) days; (?P<gap>\d+) so far$",
            "{stage}: next repeat after {every} days; {gap} so far",
        ),
        (r"^email notices held: (?P<reason>.*)$", "email notices held: {reason}"),
        (r"^notices held: (?P<reason>.*)$", "notices held: {reason}"),
    )
)
#: The reasons' parts that name a stage (shown by its translated name).
STAGE_PARTS = frozenset({"stage", "current", "landing"})
#: Who may approve, as engine.authoring.explain.APPROVERS words it.
APPROVERS = "`dunning approve {number}`, or a manager in the web workspace"
APPROVER = re.compile(r"^`dunning approve (?P<number>.+)`, or a manager in the web workspace$")


def reason_text(t: Translator, reason: str) -> str:
    """A reason `explain` worded, in `t`'s language when its shape is known (else as it is)."""
    for pattern, template in REASONS:
        match = pattern.match(reason)
        if match is None:
            continue
        parts = {
            name: (t.gettext(value) if name in STAGE_PARTS else value) for name, value in match.groupdict().items()
        }
        if "pause" in parts:  # a reason inside the reason
            parts["pause"] = reason_text(t, parts["pause"])
        approver = APPROVER.match(parts.get("who", ""))
        if approver:
            parts["who"] = t.gettext(APPROVERS, number=approver.group("number"))
        return t.gettext(template, **parts)
    return reason


def explanation_lines(found: Any, t: Translator) -> list[str]:
    """The explanation's sentences (an engine.authoring.explain.Explanation) in `t`'s language."""
    if t.language == DEFAULT_LANGUAGE:
        return list(found.lines())
    _ = t.gettext
    out = [
        _(
            "Invoice {number} of {customer} ({customer_id}): {open} open of {amount}, due {due}; {overdue} on {day}.",
            number=found.number,
            customer=found.customer_name,
            customer_id=found.customer_id,
            open=t.money(found.open_amount, found.currency),
            amount=t.money(found.amount, found.currency),
            due=t.date(found.due_on),
            overdue=overdue_text(t, found.days_overdue, found.day_count),
            day=t.date(found.today),
        )
    ]
    if found.closed:
        out.append(reason_text(t, found.closed))
        return out
    charges = getattr(found, "charges", None)
    if charges is not None:
        out.append(charges_text(t, charges, found.currency))
    if found.policy:
        out.append(_("Policy: {policy} — {reason}.", policy=found.policy, reason=reason_text(t, found.policy_reason)))
    out.extend(_("  (not {reason})", reason=reason_text(t, reason)) for reason in found.policies_not_matching)
    if found.policy_change:
        out.append(reason_text(t, found.policy_change))
    if found.stage == "current":
        out.append(_("Stage: current — not in any stage of the ladder yet."))
    else:
        out.append(stage_text(t, found))
    if found.paused:
        out.append(_("Paused: {pause}.", pause=reason_text(t, found.paused)))
    if found.next_action:
        out.append(next_text(t, found))
    elif not found.paused:
        out.append(_("Next: nothing more will happen by itself under this policy."))
    if found.holding:
        out.append(_("Held back:"))
        out.extend(f"  - {reason_text(t, reason)}" for reason in found.holding)
    return out


def overdue_text(t: Translator, days: int, day_count: str) -> str:
    business = day_count == "business"
    if days > 0:
        return t.ngettext(
            days,
            "{n} business day overdue" if business else "{n} day overdue",
            "{n} business days overdue" if business else "{n} days overdue",
        )
    if days == 0:
        return t.gettext("due today")
    return t.ngettext(
        -days,
        "due in {n} business day" if business else "due in {n} day",
        "due in {n} business days" if business else "due in {n} days",
    )


def stage_text(t: Translator, found: Any) -> str:
    values = {"stage": t.gettext(found.stage), "rule": found.stage_rule}
    if found.stage_since is None:
        template = "Stage: {stage}"
    else:
        template = "Stage: {stage} since {since} ({days})"
        values.update(
            since=t.date(found.stage_since),
            days=t.ngettext((found.today - found.stage_since).days, "{n} day", "{n} days"),
        )
    if found.stage_rule and found.stage_rule_at:
        template += ', put there by the rule "{rule}" on {on}'
        values["on"] = t.date(found.stage_rule_at)
    elif found.stage_rule:
        template += ', put there by the rule "{rule}"'
    return t.gettext(template + ".", **values)


def next_text(t: Translator, found: Any) -> str:
    n = found.next_action
    values = {
        "stage": t.gettext(n["stage"]),
        "on": t.date(n["on"]) if n.get("on") else "–",
        "rule": n["rule"],
        "repeat": n.get("repeat"),
        "channels": ", ".join(t.gettext(c) for c in n["channels"]),
        "approvers": t.gettext(APPROVERS, number=found.number),
    }
    approval = n.get("approval")
    if approval and approval.get("waiting_since"):
        values["since"] = t.date(approval["waiting_since"])
        return t.gettext(
            "Next: waiting since {since} for an approval to enter {stage} ({rule}): nothing happens until someone "
            "approves it ({approvers}); once approved it enters {stage}, notified by {channels}.",
            **values,
        )
    if approval:
        return t.gettext(
            "Next: due for {stage} on {on} ({rule}), a stage that needs an approval: from then it waits, silent, "
            "until someone approves it ({approvers}); once approved it enters {stage}, notified by {channels}.",
            **values,
        )
    if n["action"] == "escalate":
        return t.gettext("Next: enters {stage} on {on} ({rule}), notified by {channels}.", **values)
    return t.gettext("Next: {stage} is sent again (repeat {repeat}) on {on} by {channels}.", **values)


def charges_text(t: Translator, charges: dict[str, Any], currency: str) -> str:
    if "error" in charges:
        return t.gettext("Charges: cannot be computed: {error}.", error=charges["error"])
    return t.gettext(
        "Charges: principal open {principal} + interest {interest} + compensation {compensation} + fees {fees} = "
        "total due {total}{basis}.",
        principal=t.money(charges["principal_open"], currency),
        interest=t.money(charges["interest"], currency),
        compensation=t.money(charges["compensation"], currency),
        fees=t.money(charges["fees"], currency),
        total=t.money(charges["total_due"], currency),
        basis=f" ({charges['basis']})" if charges.get("basis") else "",
    )

"""Rendering notifications from the templates finance edits (rules/templates/).

Templates run in Jinja2's sandbox with undefined names as errors: a template can neither run code nor read
files, and a typo fails loudly instead of mailing a customer "Dear ,". A template's first line
`Subject: ...` is the subject; the rest is the body.

Lookup, first found wins: `<stage>.<channel>.txt`, `<stage>.txt`, `<channel>.txt`, `default.txt`
(a built-in default is used when the folder has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, DictLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import DunningError

BUILTIN_DEFAULT = """Subject: {{ stage_title }}: invoice {{ invoice.number }} ({{ invoice.open_amount | money(invoice.currency) }} open)
Dear {{ customer.name }},

our records show invoice {{ invoice.number }} of {{ invoice.issued_on }} for \
{{ invoice.amount | money(invoice.currency) }}, due on {{ invoice.due_on }}, with \
{{ invoice.open_amount | money(invoice.currency) }} still open\
{% if invoice.days_overdue > 0 %} ({{ invoice.days_overdue }} days overdue){% endif %}.

Please arrange payment or contact us if anything is unclear.

{{ company.name }}
"""


class TemplateProblem(DunningError):
    pass


def money(value: Any, currency: str = "") -> str:
    amount = Decimal(value).quantize(Decimal("0.01"))
    text = f"{amount:,.2f}"
    return f"{text} {currency}".strip()


class Renderer:
    def __init__(self, folder: Path | None):
        loaders: list[Any] = []
        if folder is not None and folder.is_dir():
            loaders.append(FileSystemLoader(str(folder)))
        loaders.append(DictLoader({"default.txt": BUILTIN_DEFAULT}))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        self.env.filters["money"] = money

    def template_for(self, stage: str, channel: str) -> str:
        names = [f"{stage}.{channel}.txt", f"{stage}.txt", f"{channel}.txt", "default.txt"]
        for name in names:
            try:
                self.env.get_template(name)
            except TemplateError:
                continue
            return name
        return "default.txt"

    def render(self, stage: str, channel: str, context: Mapping[str, Any]) -> tuple[str, str]:
        """(subject, body) for a notification; TemplateProblem names the template and what went wrong."""
        name = self.template_for(stage, channel)
        title = stage.replace("_", " ").title()
        try:
            text = self.env.get_template(name).render(stage_title=title, **context)
        except TemplateError as exc:
            where = f"{name}:{exc.lineno}" if getattr(exc, "lineno", None) else name
            raise TemplateProblem(f"template {where}: {exc}; fix the template in rules/templates") from None
        first, _, rest = text.partition("\n")
        if first.lower().startswith("subject:"):
            return first[len("subject:"):].strip(), rest.lstrip("\n")
        return title, text

"""Rendering notifications from the templates finance edits (rules/templates/).

Templates run in Jinja2's sandbox with undefined names as errors: a template can neither run code nor read
files, and a typo fails loudly instead of mailing a customer "Dear ,". HTML templates (`.html`) are
autoescaped, so a customer named `<script>` stays text. A text template's first line `Subject: ...` is the
subject; the rest is the plain-text body.

Lookup, first found wins, for each of the customer's language tags (`zh_CN`, then `zh`) and then without
one (English):

    <stage>.<channel>[.<lang>].txt   <stage>[.<lang>].txt   <channel>[.<lang>].txt   default[.<lang>].txt

The HTML part is looked up the same way with `.html`; the built-in HTML default lays out the text body, so
every message has both parts. Filters: `money(currency)` and `date` format for the customer's locale
(`1,234.50 EUR` / `2026-03-04` when the customer has no language), `number`, `paragraphs` (text → HTML), and
the counting ones, through babel's CLDR plural rules for the customer's language (English without one):
`days` (`1 day`, `2 days`; `1天`), `count(one, other)` (`{{ n | count("invoice", "invoices") }}` → `2
invoices`; a language without plural forms takes `other`, e.g. `{{ n | count("次") }}` → `2 次`) and
`ordinal` (`2nd`, `3rd`; the bare number in other languages).

`stage_title` is the stage's `title:` from the policy in the customer's language, else a built-in title
for the usual stage names in that language (`STAGE_TITLES`), else the stage name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from babel.units import format_unit
from jinja2 import ChoiceLoader, DictLoader, FileSystemLoader, StrictUndefined, TemplateError, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from engine.credit.templates import BUILTIN_TEMPLATES as CREDIT_TEMPLATES
from engine.errors import TemplateProblem

BUILTIN_DEFAULT = """Subject: {{ stage_title }}: invoice {{ invoice.number }} ({{ invoice.open_amount | money(invoice.currency) }} open)
Dear {{ customer.name }},

Our records show invoice {{ invoice.number }} of {{ invoice.issued_on }} for \
{{ invoice.amount | money(invoice.currency) }}, due on {{ invoice.due_on }}, with \
{{ invoice.open_amount | money(invoice.currency) }} still open\
{% if invoice.days_overdue > 0 %} ({{ invoice.days_overdue | days }} overdue){% endif %}.\
{% if invoices | length > 1 %}

These invoices of yours are all open:
{% for inv in invoices %}- {{ inv.number }}: {{ inv.open_amount | money(inv.currency) }} open, due {{ inv.due_on }}, \
{{ inv.days_overdue | days }} overdue
{% endfor %}{% endif %}

Please arrange payment or contact us if anything is unclear.
{% if details is defined %}
{{ details }}
{% endif %}
{{ company.name }}
"""

BUILTIN_HTML = """<!DOCTYPE html>
<html lang="{{ language }}"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; line-height: 1.4">
{{ body | paragraphs }}
</body></html>
"""


#: Titles of the usual stage names per language, for a policy that gives no `title:` for that language.
STAGE_TITLES: dict[str, dict[str, str]] = {
    "zh": {
        "courtesy": "到期提醒",
        "reminder": "付款提醒",
        "second_reminder": "再次提醒",
        "letter": "催款函",
        "final_notice": "最后催告",
        "phone": "电话催收",
        "call": "电话催收",
        "visit": "上门拜访",
        "legal": "法律程序",
        "statement": "对账单",
    },
}
#: The title of any other stage in a language with a table above (never the English stage name in Chinese).
GENERIC_TITLES = {"zh": "付款通知"}
_ORDINAL_SUFFIXES = {"one": "st", "two": "nd", "few": "rd"}


def stage_title(stage: str, language: str | None, titles: Mapping[str, str] | None = None) -> str:
    """The stage's title for a customer speaking `language`: the policy's `title:` for that language, the
    built-in title of the stage name, the policy's plain title (English customers), or the stage name."""
    titles = titles or {}
    tags = language_tags(language)
    for tag in tags:
        if tag in titles:
            return titles[tag]
    base = tags[-1] if tags else "en"
    if base != "en" and base in STAGE_TITLES:
        return STAGE_TITLES[base].get(stage.lower(), GENERIC_TITLES[base])
    return titles.get("en") or titles.get("") or stage.replace("_", " ").title()


def _plural_locale(language: str | None) -> Locale:
    return locale_for(language) or Locale("en")


def days(value: Any, language: str | None = None) -> str:
    """`1 day`, `2 days`, `1,234 days` (`1天` in Chinese): CLDR's plural rules through babel."""
    return str(format_unit(int(value), "duration-day", length="long", locale=_plural_locale(language)))


def count(value: Any, one: str, other: str | None = None, language: str | None = None) -> str:
    """`1 invoice` / `2 invoices`: `one` for CLDR's "one" category of the language, else `other`."""
    form = one if _plural_locale(language).plural_form(abs(int(value))) == "one" else (other or one)
    return f"{value} {form}"


def ordinal(value: Any, language: str | None = None) -> str:
    """`1st`, `2nd`, `3rd`, `11th` in English (CLDR's ordinal rules); the bare number in other languages."""
    locale = _plural_locale(language)
    if locale.language != "en":
        return str(value)
    return f"{value}{_ORDINAL_SUFFIXES.get(locale.ordinal_form(int(value)), 'th')}"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    #: The language tag the customer asked for, normalised ("zh_CN"); "en" when none.
    language: str


def language_tags(language: str | None) -> list[str]:
    """`zh-CN` → [`zh_CN`, `zh`]; None → []: the template suffixes to try, most specific first."""
    if not language:
        return []
    tag = language.strip().replace("-", "_")
    if not tag:
        return []
    tags = [tag]
    base = tag.split("_")[0].lower()
    if base != tag:
        tags.append(base)
    return tags


def is_known_locale(language: str) -> bool:
    """Whether babel knows the locale exactly (`en`, `en-GB`, `zh-CN`); what the importer accepts."""
    try:
        Locale.parse(language.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def locale_for(language: str | None) -> Locale | None:
    if not language:
        return None
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        tags = language_tags(language)
        if len(tags) > 1:
            return locale_for(tags[-1])
        return None


def money(value: Any, currency: str = "", language: str | None = None) -> str:
    """An amount with its currency: `1,234.50 EUR` without a locale, the locale's own form with one."""
    amount = Decimal(value).quantize(Decimal("0.01"))
    locale = locale_for(language)
    if locale is not None and currency:
        return format_currency(amount, currency, locale=locale)
    text = f"{amount:,.2f}"
    return f"{text} {currency}".strip()


def local_date(value: Any, language: str | None = None, style: str = "long") -> str:
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    locale = locale_for(language)
    if locale is None:
        return value.isoformat()
    return format_date(value, format=style, locale=locale)


def _language(context: Context) -> str | None:
    language = context.get("language")
    return language if isinstance(language, str) and language else None


@pass_context
def _money_filter(context: Context, value: Any, currency: str = "") -> str:
    return money(value, currency, _language(context))


@pass_context
def _date_filter(context: Context, value: Any, style: str = "long") -> str:
    return local_date(value, _language(context), style)


@pass_context
def _number_filter(context: Context, value: Any) -> str:
    locale = locale_for(_language(context))
    return format_decimal(value, locale=locale) if locale else f"{value:,}"


@pass_context
def _days_filter(context: Context, value: Any) -> str:
    return days(value, _language(context))


@pass_context
def _count_filter(context: Context, value: Any, one: str, other: str | None = None) -> str:
    return count(value, one, other, _language(context))


@pass_context
def _ordinal_filter(context: Context, value: Any) -> str:
    return ordinal(value, _language(context))


def _paragraphs(text: str) -> Markup:
    blocks = [block.strip("\n") for block in str(text).split("\n\n") if block.strip()]
    return Markup("\n").join(
        Markup("<p>") + Markup("<br>\n").join(escape(line) for line in block.split("\n")) + Markup("</p>")
        for block in blocks
    )


#: While a template renders, the CR and LF of values are held escaped (U+E002, a private-use character,
#: then a letter; the escape character itself is escaped too, so every value comes back exactly).
_ESCAPE = "\ue002"
_HOLD = str.maketrans({_ESCAPE: _ESCAPE + "e", "\r": _ESCAPE + "r", "\n": _ESCAPE + "n"})
_HELD = re.compile(_ESCAPE + "([ern])")
_RELEASED = {"e": _ESCAPE, "r": "\r", "n": "\n"}
_ONE_LINE = {"e": _ESCAPE, "r": "", "n": " "}


def _hold_line_breaks(value: Any) -> Any:
    """Jinja's `finalize`: every `{{ ... }}` output passes here before it joins the text."""
    if isinstance(value, Markup):
        return Markup(str(value).translate(_HOLD))
    if isinstance(value, str):
        return value.translate(_HOLD)
    return value


def _release(text: str) -> str:
    return _HELD.sub(lambda found: _RELEASED[found[1]], text)


def _one_line(text: str) -> str:
    return _HELD.sub(lambda found: _ONE_LINE[found[1]], text.replace("\r", ""))


class Renderer:
    """Renders notifications from `folder`. `stage_templates` maps (policy, stage) to the stage's `template:`
    name, which then takes the stage name's place when the template files are looked up; `stage_titles`
    maps (policy, stage) to its `title:` by language tag."""

    def __init__(
        self,
        folder: Path | None,
        stage_templates: Mapping[tuple[str, str], str] | None = None,
        stage_titles: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    ):
        self.stage_templates = dict(stage_templates or {})
        self.stage_titles = dict(stage_titles or {})
        loaders: list[Any] = []
        if folder is not None and folder.is_dir():
            loaders.append(FileSystemLoader(str(folder)))
        loaders.append(DictLoader({"default.txt": BUILTIN_DEFAULT, "default.html": BUILTIN_HTML, **CREDIT_TEMPLATES}))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            keep_trailing_newline=True,
            finalize=_hold_line_breaks,
        )
        self.env.filters["money"] = _money_filter
        self.env.filters["date"] = _date_filter
        self.env.filters["number"] = _number_filter
        self.env.filters["paragraphs"] = _paragraphs
        self.env.filters["days"] = _days_filter
        self.env.filters["count"] = _count_filter
        self.env.filters["ordinal"] = _ordinal_filter
        self._found: dict[tuple[str, str, str | None, str], str | None] = {}

    def _exists(self, name: str) -> bool:
        try:
            self.env.get_template(name)
        except TemplateError:
            return False
        return True

    def find(self, stage: str, channel: str, language: str | None = None, ext: str = "txt") -> str | None:
        """The template file name for this notification, or None (only possible for `html`)."""
        cache_key = (stage, channel, language, ext)
        if cache_key in self._found:
            return self._found[cache_key]
        bases = [f"{stage}.{channel}", stage, channel, "default"]
        found = None
        for suffix in [f".{tag}" for tag in language_tags(language)] + [""]:
            for base in bases:
                name = f"{base}{suffix}.{ext}"
                if self._exists(name):
                    found = name
                    break
            if found:
                break
        self._found[cache_key] = found
        return found

    def template_for(self, stage: str, channel: str) -> str:
        return self.find(stage, channel) or "default.txt"

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except TemplateError as exc:
            where = f"{name}:{exc.lineno}" if getattr(exc, "lineno", None) else name
            raise TemplateProblem(f"template {where}: {exc}; fix the template in rules/templates") from None
        except Exception as exc:  # a bad value (e.g. money of None) must name the template, not crash dispatch
            raise TemplateProblem(
                f"template {name}: {type(exc).__name__}: {exc}; fix the template in rules/templates"
            ) from None

    def render(self, stage: str, channel: str, context: Mapping[str, Any]) -> tuple[str, str]:
        """(subject, body) for a notification; TemplateProblem names the template and what went wrong."""
        rendered = self.render_parts(stage, channel, context, html=False)
        return rendered.subject, rendered.text

    def render_parts(
        self,
        stage: str,
        channel: str,
        context: Mapping[str, Any],
        *,
        language: str | None = None,
        html: bool = True,
        policy: str | None = None,
    ) -> Rendered:
        """Subject, plain text and (with `html`) the HTML part, in the customer's language; the templates are
        those of the stage's `template:` name when its policy gives one."""
        tags = language_tags(language)
        title = stage_title(stage, language, self.stage_titles.get((policy or "", stage)))
        # customer_link: the customer's own page (set by dispatch when web.public_url is configured)
        values = {"stage_title": title, "customer_link": None, **context, "language": tags[0] if tags else None}
        stage = self.stage_templates.get((policy or "", stage), stage)
        text = self._render(self.find(stage, channel, language) or "default.txt", values)
        # Line breaks that came from data are held as placeholders until here: only the template's own first
        # line can be the subject, and the subject never carries a CR or LF (a value's becomes a space).
        first, _, rest = text.partition("\n")
        if first.lower().startswith("subject:"):
            subject, body = _one_line(first[len("subject:") :]).strip(), _release(rest.lstrip("\n"))
        else:
            subject, body = title, _release(text)
        page = None
        if html:
            name = self.find(stage, channel, language, "html") or "default.html"
            page = _release(self._render(name, {**values, "subject": subject, "body": body}))
        return Rendered(subject=subject, text=body, html=page, language=tags[0] if tags else "en")

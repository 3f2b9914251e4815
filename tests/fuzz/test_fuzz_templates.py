"""Fuzzed customer data through the shipped and built-in templates: Jinja syntax, markup and line breaks in
names, numbers and the company's own fields are rendered literally (escaped in HTML), never executed, and
never break a message's subject onto a second line."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from engine.templates import Renderer
from tests.fuzz.conftest import examples
from tests.fuzz.hostile import nasty_text

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"
STAGES = ["courtesy", "reminder", "phone", "letter", "visit", "legal", "final", "unknown"]
SHIPPED = Renderer(TEMPLATES)
BUILTIN = Renderer(None)
NAME, NUMBER, COMPANY = "XNAMEX", "XNUMBERX", "XCOMPANYX"


def context(name: str, number: str, company: str) -> dict[str, Any]:
    invoice = {
        "number": number,
        "amount": Decimal("1200.50"),
        "open_amount": Decimal("1000.00"),
        "currency": "EUR",
        "issued_on": date(2026, 1, 1),
        "due_on": date(2026, 2, 1),
        "days_overdue": 30,
    }
    return {
        "customer": {
            "id": "C1",
            "name": name,
            "email": "ap@example.com",
            "phone": "+1",
            "address": "1 Main St",
            "owner": "alice",
            "language": None,
        },
        "invoice": invoice,
        "invoices": [invoice],
        "stage": "reminder",
        "policy": "standard",
        "repeat": 0,
        "company": {"name": company, "address": company, "payment_instructions": company},
        "as_of": datetime(2026, 3, 3, tzinfo=timezone.utc),
        "totals": {"EUR": Decimal("1000.00")},
        "grouped": False,
    }


def hostile_values() -> st.SearchStrategy[str]:
    return nasty_text.filter(lambda t: NAME not in t and NUMBER not in t and COMPANY not in t)


@settings(max_examples=examples(150))
@given(
    hostile_values(),
    hostile_values(),
    hostile_values(),
    st.sampled_from(STAGES),
    st.sampled_from(["email", "letter", "phone"]),
    st.sampled_from([None, "zh", "de", "zh_CN"]),
    st.sampled_from([SHIPPED, BUILTIN]),
)
def test_hostile_data_is_rendered_literally(
    name: str, number: str, company: str, stage: str, channel: str, language: str | None, renderer: Renderer
) -> None:
    plain = renderer.render_parts(stage, channel, context(NAME, NUMBER, COMPANY), language=language)
    rendered = renderer.render_parts(stage, channel, context(name, number, company), language=language)

    assert "\r" not in rendered.subject and "\n" not in rendered.subject, rendered.subject
    expected_subject = plain.subject.replace(NAME, name).replace(NUMBER, number).replace(COMPANY, company)
    # (an empty company value legitimately drops the optional blocks it fills, e.g. the payment instructions)
    if not any(mark in expected_subject for mark in ("\r", "\n")) and company:
        assert rendered.subject == expected_subject.strip()
        # Same text around the values, the values themselves verbatim: nothing in them was executed.
        expected = plain.text.replace(NAME, name).replace(NUMBER, number).replace(COMPANY, company)
        # (an empty value on the body's first line lets the template's next line start the body)
        assert rendered.text in (expected, expected.lstrip("\n"))
    assert rendered.html is not None and plain.html is not None
    for value, mark in ((name, NAME), (company, COMPANY)):
        # (a paragraph of whitespace alone is dropped from the HTML part, as any blank paragraph is)
        if mark in plain.html and value.strip() and "\n" not in value and "\r" not in value:
            assert str(escape(value)) in rendered.html
    assert "<script>" not in rendered.html


def test_a_line_break_in_an_invoice_number_stays_out_of_the_subject() -> None:
    # Found by the property above (failed on 21c05f0): a CR stayed in the subject, and an LF cut the subject
    # short and pushed "Bcc: ..." to the top of the body.
    for renderer in (SHIPPED, BUILTIN):
        rendered = renderer.render_parts("reminder", "email", context("Acme", "INV-1\r\nBcc: x@y.example", "Co"))
        assert rendered.subject.startswith("Reminder: invoice INV-1 Bcc: x@y.example"), rendered.subject
        assert "\r" not in rendered.subject and "\n" not in rendered.subject
        assert rendered.text.startswith("Dear Acme,")
        assert "INV-1\r\nBcc: x@y.example" in rendered.text

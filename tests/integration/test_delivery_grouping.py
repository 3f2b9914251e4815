"""`group_by: customer` (one message per customer, stage and repeat), fallback validation, legal case files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from channels.memory import MemoryChannel
from engine.errors import PolicyError
from tests.conftest import DEFAULT_POLICY, MEMORY_CHANNELS

GROUPED = """\
name: grouped
applies_to: "customer.credit_grade in ['A', 'B']"
group_by: customer
stages:
  - name: reminder
    after_days: 3
    channels: [email]
    repeat: {every_days: 7, max: 1}
  - name: legal
    after_days: 60
    channels: [legal]
"""


@pytest.fixture
def book(make_book):  # type: ignore[no-untyped-def]
    book = make_book({"10-grouped.yaml": GROUPED, "90-default.yaml": DEFAULT_POLICY})
    book.customers(
        {"id": "C1", "name": "Alpha", "credit_grade": "A"}, {"id": "C2", "name": "Beta", "credit_grade": "A"}
    )
    book.invoice("INV-1", "C1", "100.00", "2026-03-01")
    book.invoice("INV-2", "C1", "250.00", "2026-03-01")
    book.invoice("INV-3", "C2", "75.00", "2026-03-01")
    book.invoice("INV-4", "C1", "40.00", "2026-03-05")  # reaches the reminder later
    return book


def test_one_message_per_customer_lists_all_its_invoices(book) -> None:  # type: ignore[no-untyped-def]
    report = book.run("2026-03-04")
    assert report.dispatch.sent["email"] == 2
    by_customer = {m.customer["id"]: m for m in MemoryChannel.sent}
    assert [i["number"] for i in by_customer["C1"].invoices] == ["INV-1", "INV-2"]
    assert [i["number"] for i in by_customer["C2"].invoices] == ["INV-3"]
    assert by_customer["C1"].grouped and "INV-2" in by_customer["C1"].body  # the list in the text
    # per-invoice state and history stay per invoice, pointing at the one grouped notice
    for number in ("INV-1", "INV-2"):
        assert book.stage(number) == "reminder"
        (notice,) = [e for e in book.app.history(number) if e["kind"] == "notification"]
        assert notice["status"] == "sent" and notice["key"] == by_customer["C1"].key
    assert by_customer["C1"].key.startswith("customer:C1/reminder@20260304T090000Z/0/email")


def test_a_later_invoice_and_repeats_make_their_own_group(book) -> None:  # type: ignore[no-untyped-def]
    book.run("2026-03-04")
    MemoryChannel.clear()
    book.run("2026-03-08")  # INV-4 enters the reminder alone
    assert [[i["number"] for i in m.invoices] for m in MemoryChannel.sent] == [["INV-4"]]
    MemoryChannel.clear()
    book.run("2026-03-11")  # the first repeat of INV-1 and INV-2 (and INV-3 for C2)
    groups = sorted([i["number"] for i in m.invoices] for m in MemoryChannel.sent)
    assert groups == [["INV-1", "INV-2"], ["INV-3"]] and {m.repeat_no for m in MemoryChannel.sent} == {1}


def test_a_paid_invoice_drops_out_of_its_queued_group(book) -> None:  # type: ignore[no-untyped-def]
    book.app.run(__import__("tests.conftest").conftest.at("2026-03-04"), dispatch=False)
    book.pay("INV-1", "100.00", "2026-03-04")
    book.app.dispatch(__import__("tests.conftest").conftest.at("2026-03-04", 10))
    (c1,) = [m for m in MemoryChannel.sent if m.customer["id"] == "C1"]
    assert [i["number"] for i in c1.invoices] == ["INV-2"]


def test_legal_case_file_has_pdf_json_and_csv(make_book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pypdf = pytest.importorskip("pypdf")
    channels = {**MEMORY_CHANNELS, "legal": {"type": "legal", "recipient": "address"}}
    book = make_book({"10-grouped.yaml": GROUPED, "90-default.yaml": DEFAULT_POLICY}, channels=channels)
    book.customers(
        {"id": "C9", "name": "深圳示例有限公司", "credit_grade": "B", "address": "深圳市南山区 1 号", "owner": "zhang"}
    )
    book.invoice("INV-9", "C9", "50000.00", "2026-01-01", currency="CNY")
    book.invoice("INV-10", "C9", "7000.00", "2026-01-01", currency="CNY")
    for day in ("2026-01-04", "2026-01-11", "2026-03-02"):
        book.run(day)
    (folder,) = (tmp_path / "out" / "legal").iterdir()
    assert {p.name for p in folder.iterdir()} == {
        "case.pdf",
        "case.json",
        "invoices.csv",
        "history.csv",
        "deliveries.csv",
    }
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    assert case["customer"]["name"] == "深圳示例有限公司" and case["customer"]["owner"] == "zhang"
    assert [i["number"] for i in case["invoices"]] == ["INV-9", "INV-10"] and case["totals"] == {"CNY": "57000.00"}
    assert [(i["amount"], i["open_amount"]) for i in case["invoices"]] == [
        ("50000.00", "50000.00"),
        ("7000.00", "7000.00"),
    ]
    kinds = [h["kind"] for h in case["history"]]
    assert "import" in kinds and "transition" in kinds and "notification" in kinds
    assert [d["status"] for d in case["deliveries"] if d["channel"] == "email"] == ["sent", "sent"]
    rows = list(csv.DictReader(io.StringIO((folder / "invoices.csv").read_text(encoding="utf-8-sig"))))
    assert [r["number"] for r in rows] == ["INV-9", "INV-10"]
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(str(folder / "case.pdf")).pages)
    assert "深圳示例有限公司" in text and "INV-10" in text and "深圳市南山区" in text


@pytest.mark.parametrize(
    "fallback, message",
    [
        ("{phone: letter}", "does not send on 'phone'"),
        ("{email: lettre}", "unknown fallback channel 'lettre'"),
        ("{email: email}", "cannot be its own fallback"),
    ],
)
def test_fallback_is_validated(tmp_path: Path, fallback: str, message: str) -> None:
    from engine.policy.loader import load_policies

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yaml").write_text(
        f"name: p\nstages:\n  - name: reminder\n    after_days: 3\n    channels: [email]\n    fallback: {fallback}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=message):
        load_policies(rules, known_channels={"email", "letter", "phone"})


def test_what_channels_hand_on_carries_the_currencys_minor_units(book) -> None:  # type: ignore[no-untyped-def]
    from channels.webhook import payload

    book.invoice("INV-5", "C2", "50000.00", "2026-03-01")
    book.pay("INV-5", "2503.07", "2026-03-02")
    book.invoice("INV-6", "C2", "5000", "2026-03-01", currency="JPY")
    book.run("2026-03-04")
    [beta] = [m for m in MemoryChannel.sent if m.customer["id"] == "C2"]
    body = json.loads(payload(beta))
    assert [(i["number"], i["amount"], i["open_amount"]) for i in body["invoices"]] == [
        ("INV-3", "75.00", "75.00"),
        ("INV-5", "50000.00", "47496.93"),  # not 47496.9300: what the receiving system shows a person
        ("INV-6", "5000", "5000"),
    ]

"""The importer: every kind of bad row located as FILE:ROW: column:, all-or-nothing writes, re-import semantics,
payments that settle invoices. Each test runs on its own SQLite file."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from engine.clock import FixedClock
from engine.errors import DunningError, ImportRejected
from engine.importer import Importer, ImportReport, payment_dedupe_key
from engine.policy.model import Policy, PolicySet, PolicySource, Stage
from engine.store.database import Repository
from engine.store.models import Customer, Event, Invoice, Notification, Payment

CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
INVOICES = Invoice.__table__  # type: ignore[attr-defined]
PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 10, 8, 30, tzinfo=timezone.utc)
INVOICE_HEADER = "number,customer_id,currency,amount,issued_on,due_on,tags"

#: files(name, text) writes a dedented file into the test's folder and returns its path.
Files = Callable[[str, str], Path]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository.open(f"sqlite:///{tmp_path}/t.db")
    yield repo
    repo.dispose()


@pytest.fixture
def importer(repo: Repository) -> Importer:
    return Importer(repo, zone=BERLIN, clock=FixedClock(NOW), actor="tester")


@pytest.fixture
def files(tmp_path: Path) -> Files:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def book(importer: Importer) -> Importer:
    """Two customers and three EUR invoices (INV-1 1000.00, INV-2 250.00, INV-3 0.30)."""
    importer.import_rows(
        "customers",
        [
            {"id": "C1", "name": "Acme GmbH", "email": "ap@acme.example"},
            {"id": "C2", "name": "Beta Ltd"},
        ],
    )
    importer.import_rows(
        "invoices",
        [
            invoice("INV-1", "1000.00"),
            invoice("INV-2", "250.00", customer="C2"),
            invoice("INV-3", "0.30"),
        ],
    )
    return importer


def invoice(
    number: str,
    amount: str,
    *,
    customer: str = "C1",
    currency: str = "EUR",
    issued_on: str = "2026-02-01",
    due_on: str = "2026-03-01",
) -> dict[str, str]:
    return {
        "number": number,
        "customer_id": customer,
        "currency": currency,
        "amount": amount,
        "issued_on": issued_on,
        "due_on": due_on,
    }


def pay(number: str, amount: str, paid_on: str = "2026-03-05", reference: str | None = None) -> dict[str, Any]:
    return {"invoice": number, "amount": amount, "paid_on": paid_on, "reference": reference}


def problems(importer: Importer, kind: str, path: Path) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        importer.import_file(kind, path)
    return [str(p) for p in caught.value.problems]


def only(found: list[str], prefix: str) -> str:
    """The one problem starting with `prefix` (FILE:ROW: column:)."""
    matching = [p for p in found if p.startswith(prefix)]
    assert len(matching) == 1, f"expected one problem starting {prefix!r}, got {found}"
    return matching[0]


def table(repo: Repository, tbl: Any, *where: Any) -> list[dict[str, Any]]:
    with repo.read() as session:
        query = select(tbl).where(*where).order_by(tbl.c[list(tbl.primary_key.columns)[0].name])
        return [dict(r) for r in session.connection().execute(query).mappings()]


def count(repo: Repository, tbl: Any) -> int:
    with repo.read() as session:
        return int(session.connection().execute(select(func.count()).select_from(tbl)).scalar() or 0)


def one_invoice(repo: Repository, number: str) -> dict[str, Any]:
    [row] = table(repo, INVOICES, INVOICES.c.number == number)
    return row


def events(repo: Repository, kind: str | None = None) -> list[dict[str, Any]]:
    rows = table(repo, EVENTS)
    return [e for e in rows if kind is None or e["kind"] == kind]


def execute(repo: Repository, statement: Any) -> None:
    with repo.write() as session:
        session.connection().execute(statement)


# -- file shape --------------------------------------------------------------------------------------------------


def test_unknown_column_is_reported_at_the_header_with_a_suggestion(book: Importer, files: Files) -> None:
    path = files(
        "inv.csv",
        """\
        number,customer_id,currency,amout,issued_on,due_on,colour
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,red
        """,
    )
    found = problems(book, "invoices", path)
    assert only(found, f"{path}:1: colour: ") == (
        f"{path}:1: colour: unknown column 'colour'; expected one of number, customer_id, currency, amount, "
        "issued_on, due_on, tags"
    )
    assert only(found, f"{path}:1: amout: ").endswith("did you mean 'amount'?")
    # the required column the typo hides is missing, once, at the header (not again on every row)
    assert only(found, f"{path}:1: amount: ").endswith(
        "missing required column 'amount'; the header must name "
        "number, customer_id, currency, amount, issued_on, due_on"
    )
    assert len(found) == 3


def test_missing_required_value(book: Importer, files: Files) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        INV-9,,EUR,100.00,2026-01-01,2026-02-01,
        INV-10,C1,EUR,,2026-01-01,2026-02-01,
        """,
    )
    found = problems(book, "invoices", path)
    assert only(found, f"{path}:2: customer_id: ") == f"{path}:2: customer_id: missing value; customer_id is required"
    assert "missing value; amount is required (expected a plain decimal such as 1234.50)" in only(
        found, f"{path}:3: amount: "
    )


def test_optional_columns_may_be_left_out_of_the_header(importer: Importer, files: Files, repo: Repository) -> None:
    path = files("c.csv", "name,id\nAcme,C1\n")
    assert importer.import_file("customers", path).created == 1
    assert table(repo, CUSTOMERS)[0] == {
        "id": "C1",
        "name": "Acme",
        "email": None,
        "phone": None,
        "address": None,
        "credit_grade": None,
        "segment": None,
        "owner": None,
        "language": None,
        "timezone": None,
        "tags": [],
        "action_tags": None,
        "credit_limit": None,
        "industry": None,
        "region": None,
    }


def test_empty_file_and_file_without_header(importer: Importer, files: Files) -> None:
    empty = files("empty.csv", "\n  \n")
    assert problems(importer, "customers", empty) == [
        f"{empty}:1: (file): the file is empty; expected a header row "
        "(id,name,email,phone,address,credit_grade,segment,owner,language,timezone,tags,credit_limit,industry,region) "
        "and then one row per line"
    ]
    headless = files("headless.csv", "C1,Acme\nC2,Beta\n")
    [problem] = problems(importer, "customers", headless)
    assert problem.startswith(f"{headless}:1: (header): the first line names no known column")
    assert "expected a header row such as id,name,email" in problem


def test_header_defects(importer: Importer, files: Files) -> None:
    path = files("c.csv", "id,name,Name,\nC1,Acme,Acme,\n")
    assert problems(importer, "customers", path) == [
        f"{path}:1: name: column 'name' appears twice in the header; keep one",
        f"{path}:1: (column 4): empty column name in the header; name the column or remove the extra comma",
    ]


def test_a_header_alone_imports_nothing(importer: Importer, files: Files) -> None:
    report = importer.import_file("customers", files("c.csv", "id,name\n"))
    assert report.as_dict() == {"kind": "customers", "created": 0, "updated": 0, "unchanged": 0, "closed": 0, "rows": 0}


def test_malformed_rows(book: Importer, files: Files) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,
        INV-10,C1,EUR,1,000.00,2026-01-01,2026-02-01,
        INV-11,C1,EUR,"100.00"x,2026-01-01,2026-02-01,
        """,
    )
    found = problems(book, "invoices", path)
    assert only(found, f"{path}:3: (row): ") == (
        f'{path}:3: (row): has 8 fields but the header has 7; quote values that contain a comma ("a, b")'
    )
    assert only(found, f"{path}:4: (row): ").startswith(f"{path}:4: (row): malformed CSV (")
    assert len(found) == 2


def test_rows_are_file_lines_even_with_multi_line_quoted_values(importer: Importer, files: Files) -> None:
    path = files(
        "c.csv",
        """\
        id,name,address,email

        C1,Acme,"1 Main St
        Springfield",ap@acme.example
        C2,Beta,,not-an-email
        """,
    )
    assert problems(importer, "customers", path) == [
        f"{path}:5: email: 'not-an-email' is not an email address; expected one address such as ap@example.com"
    ]


def test_a_byte_order_mark_is_tolerated(importer: Importer, tmp_path: Path, repo: Repository) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffid,name\r\nC1,Åcme\r\n".encode())
    assert importer.import_file("customers", path).created == 1
    assert table(repo, CUSTOMERS)[0]["name"] == "Åcme"


def test_text_that_is_not_utf8_is_located(importer: Importer, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,name\nC1,Acme\nC2,Caf\xe9\n".encode("latin-1"))
    assert problems(importer, "customers", path) == [
        f"{path}:3: (file): byte 0xe9 is not UTF-8; save the file as UTF-8 (in Excel: CSV UTF-8)"
    ]


def test_unreadable_file_and_unknown_kind(importer: Importer, tmp_path: Path) -> None:
    with pytest.raises(DunningError, match="no such file"):
        importer.import_file("customers", tmp_path / "missing.csv")
    with pytest.raises(DunningError, match="unknown import kind 'refunds'; expected one of customers, invoices"):
        importer.import_rows("refunds", [])


# -- values ------------------------------------------------------------------------------------------------------


def test_amount_problems(book: Importer, files: Files) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        A2,C1,EUR,-5,2026-01-01,2026-02-01,
        A3,C1,EUR,0.00,2026-01-01,2026-02-01,
        A4,C1,EUR,12abc,2026-01-01,2026-02-01,
        A5,C1,EUR,NaN,2026-01-01,2026-02-01,
        A6,C1,EUR,"1,234.50",2026-01-01,2026-02-01,
        A7,C1,EUR,"12,50",2026-01-01,2026-02-01,
        A8,C1,EUR,1e3,2026-01-01,2026-02-01,
        A9,C1,EUR,Infinity,2026-01-01,2026-02-01,
        """,
    )
    found = problems(book, "invoices", path)
    assert only(found, f"{path}:2: amount: ").endswith("negative amount -5; amounts must be greater than zero")
    assert only(found, f"{path}:3: amount: ").endswith("zero amount 0.00; amounts must be greater than zero")
    assert only(found, f"{path}:4: amount: ").endswith(
        "'12abc' is not a number; expected a plain decimal such as 1234.50 (no currency symbol, no exponent)"
    )
    assert "is not an amount" in only(found, f"{path}:5: amount: ")
    thousands = only(found, f"{path}:6: amount: ")
    assert "thousands separator" in thousands and "ambiguous" in thousands and thousands.endswith(": 1234.50")
    assert "decimal commas and thousands separators are ambiguous" in only(found, f"{path}:7: amount: ")
    assert "is not a number" in only(found, f"{path}:8: amount: ")
    assert "is not an amount" in only(found, f"{path}:9: amount: ")
    assert len(found) == 8


def test_decimals_follow_the_currency_minor_unit(book: Importer, files: Files, repo: Repository) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        D2,C1,EUR,1.005,2026-01-01,2026-02-01,
        D3,C1,JPY,100.5,2026-01-01,2026-02-01,
        D4,C1,BHD,1.0005,2026-01-01,2026-02-01,
        """,
    )
    found = problems(book, "invoices", path)
    assert found == [
        f"{path}:2: amount: 1.005 has 3 decimal places; EUR allows at most 2",
        f"{path}:3: amount: 100.5 has 1 decimal places; JPY allows at most 0",
        f"{path}:4: amount: 1.0005 has 4 decimal places; BHD allows at most 3",
    ]
    fine = files(
        "fine.csv",
        f"""\
        {INVOICE_HEADER}
        D2,C1,EUR,100.500,2026-01-01,2026-02-01,
        D3,C1,jpy,12000,2026-01-01,2026-02-01,
        D4,C1,BHD,1.005,2026-01-01,2026-02-01,
        """,
    )
    assert book.import_file("invoices", fine).created == 3
    assert one_invoice(repo, "D3")["currency"] == "JPY"  # lower case is normalised
    assert one_invoice(repo, "D4")["amount"] == Decimal("1.005")


def test_currency_must_be_a_three_letter_code(book: Importer, files: Files) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        X2,C1,EURO,1.00,2026-01-01,2026-02-01,
        X3,C1,E1R,1.00,2026-01-01,2026-02-01,
        X4,C1,€,1.00,2026-01-01,2026-02-01,
        """,
    )
    found = problems(book, "invoices", path)
    assert only(found, f"{path}:2: currency: ") == (
        f"{path}:2: currency: 'EURO' is not a currency code; expected a 3-letter ISO 4217 code such as EUR, USD or JPY"
    )
    assert only(found, f"{path}:3: currency: ") and only(found, f"{path}:4: currency: ")


def test_dates(book: Importer, files: Files) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        E2,C1,EUR,1.00,2026-13-01,2026-02-01,
        E3,C1,EUR,1.00,2026-01-01,31/03/2026,
        E4,C1,EUR,1.00,2026-02-30,2026-03-01,
        E5,C1,EUR,1.00,2026-03-01,2026-02-28,
        E6,C1,EUR,1.00,20260101,2026-02-28,
        """,
    )
    found = problems(book, "invoices", path)
    assert found == [
        f"{path}:2: issued_on: '2026-13-01' is not a valid date (no such day); expected a date as YYYY-MM-DD such "
        "as 2026-03-31",
        f"{path}:3: due_on: '31/03/2026' is not a date; expected a date as YYYY-MM-DD such as 2026-03-31",
        f"{path}:4: issued_on: '2026-02-30' is not a valid date (no such day); expected a date as YYYY-MM-DD such "
        "as 2026-03-31",
        f"{path}:5: due_on: due date 2026-02-28 is before the issue date 2026-03-01; expected due_on on or after "
        "issued_on",
        f"{path}:6: issued_on: '20260101' is not a date; expected a date as YYYY-MM-DD such as 2026-03-31",
    ]


def test_duplicates_within_a_file(importer: Importer, files: Files) -> None:
    customers = files("c.csv", "id,name\nC1,Acme\nC2,Beta\nC1,Acme again\n")
    assert problems(importer, "customers", customers) == [
        f"{customers}:4: id: duplicate id 'C1': already on row 2 of this file; each customer may appear once"
    ]
    importer.import_rows("customers", [{"id": "C1", "name": "Acme"}])
    invoices = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        INV-1,C1,EUR,1.00,2026-01-01,2026-02-01,
        INV-1,C1,EUR,1.00,2026-01-01,2026-02-01,
        """,
    )
    assert problems(importer, "invoices", invoices) == [
        f"{invoices}:3: number: duplicate number 'INV-1': already on row 2 of this file; each invoice may appear once"
    ]


def test_unknown_customer(book: Importer, files: Files) -> None:
    path = files("inv.csv", f"{INVOICE_HEADER}\nINV-9,NOPE,EUR,1.00,2026-01-01,2026-02-01,\n")
    assert problems(book, "invoices", path) == [
        f"{path}:2: customer_id: no customer with id 'NOPE'; import the customer first or correct the id"
    ]


def test_customer_email_and_timezone(importer: Importer, files: Files) -> None:
    path = files(
        "c.csv",
        """\
        id,name,email,timezone
        C1,Acme,ap@acme,Europe/Berlni
        C2,Beta,"a@b.example, c@d.example",Mars/Olympus
        C3,Gamma,ap@gamma.example,Asia/Shanghai
        """,
    )
    found = problems(importer, "customers", path)
    assert found == [
        f"{path}:2: email: 'ap@acme' is not an email address; expected one address such as ap@example.com",
        f"{path}:2: timezone: unknown time zone 'Europe/Berlni'; expected an IANA name such as Europe/Berlin; "
        "did you mean 'Europe/Berlin'?",
        f"{path}:3: email: 'a@b.example, c@d.example' is not an email address; expected one address such as "
        "ap@example.com",
        f"{path}:3: timezone: unknown time zone 'Mars/Olympus'; expected an IANA name such as Europe/Berlin",
    ]


def test_customer_tags_and_timezone_are_stored(importer: Importer, files: Files, repo: Repository) -> None:
    path = files(
        "c.csv",
        """\
        id,name,timezone,tags
        C1,Acme,Asia/Shanghai, key ; vip;key;
        C2,Beta,,
        """,
    )
    assert importer.import_file("customers", path).created == 2
    acme, beta = table(repo, CUSTOMERS)
    assert (acme["timezone"], acme["tags"]) == ("Asia/Shanghai", ["key", "vip"])
    assert (beta["timezone"], beta["tags"]) == (None, [])
    [imported, _] = events(repo, "import")
    assert imported["data"] == {"customer": "C1", "name": "Acme", "timezone": "Asia/Shanghai", "tags": ["key", "vip"]}
    assert (imported["invoice_id"], imported["customer_id"], imported["actor"]) == (None, "C1", "tester")


# -- all or nothing ------------------------------------------------------------------------------------------------


def test_several_problems_are_reported_together_in_row_order_and_nothing_is_written(
    book: Importer, files: Files, repo: Repository
) -> None:
    before = (count(repo, INVOICES), count(repo, EVENTS))
    path = files(
        "bad.csv",
        f"""\
        {INVOICE_HEADER}
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,
        INV-10,NOPE,EUR,100.00,2026-01-01,2026-02-01,
        INV-11,C1,EUR,-5,2026-01-01,2026-02-01,
        INV-12,C1,EUR,100.00,2026-13-01,2026-02-01,
        INV-9,C1,EUR,100.00,2026-01-01,2026-02-01,
        INV-1,C1,EUR,2000.00,2026-02-01,2026-03-01,
        """,
    )
    with pytest.raises(ImportRejected) as caught:
        book.import_file("invoices", path)
    found = [str(p) for p in caught.value.problems]
    assert [p.split(": ")[0] + ": " + p.split(": ")[1] for p in found] == [
        f"{path}:3: customer_id",
        f"{path}:4: amount",
        f"{path}:5: issued_on",
        f"{path}:6: number",
    ]
    assert "4 bad row value(s); nothing was imported" in str(caught.value)
    # the good new row (INV-9) and the good change (INV-1) were not written either
    assert (count(repo, INVOICES), count(repo, EVENTS)) == before
    assert one_invoice(repo, "INV-1")["amount"] == Decimal("1000.00")


def test_nothing_is_written_into_an_empty_database_either(importer: Importer, files: Files, repo: Repository) -> None:
    path = files("c.csv", "id,name,email\nC1,Acme,ap@acme.example\nC2,Beta,broken\n")
    problems(importer, "customers", path)
    assert (count(repo, CUSTOMERS), count(repo, EVENTS)) == (0, 0)


# -- JSON Lines --------------------------------------------------------------------------------------------------


def test_json_lines_import(book: Importer, files: Files, repo: Repository) -> None:
    path = files(
        "inv.jsonl",
        """\
        {"number": "J-1", "customer_id": "C1", "currency": "eur", "amount": 1234.50, "issued_on": "2026-02-01", "due_on": "2026-03-01", "tags": ["export", "vip"]}

        {"number": "J-2", "customer_id": "C2", "currency": "JPY", "amount": 5000, "issued_on": "2026-02-01", "due_on": "2026-03-01", "tags": "a;b"}
        """,
    )
    assert book.import_file("invoices", path).created == 2
    j1, j2 = one_invoice(repo, "J-1"), one_invoice(repo, "J-2")
    assert (j1["currency"], j1["amount"], j1["open_amount"], j1["tags"]) == (
        "EUR",
        Decimal("1234.50"),
        Decimal("1234.50"),
        ["export", "vip"],
    )
    assert (j2["amount"], j2["tags"]) == (Decimal("5000"), ["a", "b"])


def test_json_lines_problems_are_located_at_their_line(book: Importer, files: Files) -> None:
    path = files(
        "inv.ndjson",
        """\
        {"number": "J-1", "customer_id": "C1", "currency": "EUR", "amount": "1.00", "issued_on": "2026-02-01", "due_on": "2026-03-01"}
        {"number": "J-2", "customer_id": "C1", "currency": "EUR", "amount": "1.00", "issued_on": "2026-02-01"
        ["not", "an", "object"]
        {"number": "J-4", "customer_id": "C1", "currency": "EUR", "amount": NaN, "issued_on": "2026-02-01", "due_on": "2026-03-01"}
        {"number": "J-5", "customer": "C1", "currency": "EUR", "amount": "1.00", "issued_on": "2026-02-01", "due_on": "2026-03-01"}
        {"number": "J-6", "customer_id": "C1", "currency": "EUR", "amount": true, "issued_on": "2026-02-01", "due_on": "2026-03-01"}
        """,
    )
    found = problems(book, "invoices", path)
    assert only(found, f"{path}:2: (line): ").startswith(f"{path}:2: (line): not valid JSON (")
    assert only(found, f"{path}:3: (line): ") == f"{path}:3: (line): expected an object of column to value, got list"
    assert "NaN is not allowed in JSON" in only(found, f"{path}:4: (line): ")
    assert only(found, f"{path}:5: customer: ").endswith("did you mean 'customer_id'?")
    assert (
        only(found, f"{path}:5: customer_id: ")
        == f"{path}:5: customer_id: missing; every invoice row needs a value for customer_id"
    )
    assert only(found, f"{path}:6: amount: ").endswith(
        "true is not an amount; expected a plain decimal such as 1234.50"
    )
    assert len(found) == 6


def test_json_lines_are_recognised_by_their_first_character(importer: Importer, files: Files, repo: Repository) -> None:
    path = files("customers.txt", '\n{"id": "C1", "name": "Acme", "tags": ["key"], "timezone": "Europe/Paris"}\n')
    assert importer.import_file("customers", path).created == 1
    assert table(repo, CUSTOMERS)[0]["tags"] == ["key"]


def test_import_rows_accepts_typed_values_and_numbers_rows_from_one(book: Importer, repo: Repository) -> None:
    report = book.import_rows(
        "invoices",
        [
            {
                "number": "T-1",
                "customer_id": "C1",
                "currency": "EUR",
                "amount": Decimal("10.10"),
                "issued_on": date(2026, 2, 1),
                "due_on": date(2026, 3, 1),
                "tags": ["x"],
            }
        ],
    )
    assert report.created == 1 and one_invoice(repo, "T-1")["amount"] == Decimal("10.10")
    with pytest.raises(ImportRejected) as caught:
        book.import_rows("payments", [pay("T-1", "1.00"), pay("T-404", "1.00")], source="bank feed")
    assert [str(p) for p in caught.value.problems] == [
        "bank feed:2: invoice: no invoice numbered 'T-404'; import the invoice first or correct the number"
    ]


# -- re-imports --------------------------------------------------------------------------------------------------


def test_reimporting_identical_rows_changes_nothing(book: Importer, files: Files, repo: Repository) -> None:
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        INV-1,C1,EUR,1000.00,2026-02-01,2026-03-01,
        INV-2,C2,EUR,250,2026-02-01,2026-03-01,
        """,
    )
    before = events(repo)
    report = book.import_file("invoices", path)
    assert (report.created, report.updated, report.unchanged, report.rows) == (0, 0, 2, 2)
    assert events(repo) == before
    customers = files("c.csv", "id,name,email\nC1,Acme GmbH,ap@acme.example\n")
    assert book.import_file("customers", customers).unchanged == 1
    assert events(repo) == before


def test_a_changed_invoice_is_updated_and_the_change_recorded(book: Importer, files: Files, repo: Repository) -> None:
    book.import_rows("payments", [pay("INV-1", "400.00", reference="R1")])
    path = files(
        "inv.csv",
        f"""\
        {INVOICE_HEADER}
        INV-1,C1,EUR,1200.00,2026-02-01,2026-03-15,priority
        """,
    )
    report = book.import_file("invoices", path)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    row = one_invoice(repo, "INV-1")
    assert (row["amount"], row["open_amount"], row["due_on"], row["tags"]) == (
        Decimal("1200.00"),
        Decimal("800.00"),
        date(2026, 3, 15),
        ["priority"],
    )
    [change] = events(repo, "update")
    assert change["data"] == {
        "invoice": "INV-1",
        "changes": {
            "amount": ["1000.00", "1200.00"],
            "due_on": ["2026-03-01", "2026-03-15"],
            "tags": [[], ["priority"]],
        },
    }
    assert (change["invoice_id"], change["customer_id"], change["actor"]) == (row["id"], "C1", "tester")
    assert change["at"] == NOW and change["recorded_at"] == NOW


def test_an_invoice_cannot_be_lowered_below_what_was_paid(book: Importer, files: Files, repo: Repository) -> None:
    book.import_rows("payments", [pay("INV-1", "400.00", reference="R1")])
    path = files("inv.csv", f"{INVOICE_HEADER}\nINV-1,C1,EUR,300.00,2026-02-01,2026-03-01,\n")
    assert problems(book, "invoices", path) == [
        f"{path}:2: amount: 300.00 is below the 400.00 already paid on invoice INV-1; expected at least that much"
    ]
    assert one_invoice(repo, "INV-1")["open_amount"] == Decimal("600.00")


def test_amount_changes_keep_the_stage_consistent(book: Importer, repo: Repository) -> None:
    book.import_rows("payments", [pay("INV-2", "250.00", reference="R1"), pay("INV-1", "400.00", reference="R2")])
    assert one_invoice(repo, "INV-2")["stage"] == "paid"
    # raised above what was paid: the invoice is open again
    book.import_rows("invoices", [invoice("INV-2", "300.00", customer="C2"), invoice("INV-1", "400.00")])
    inv2, inv1 = one_invoice(repo, "INV-2"), one_invoice(repo, "INV-1")
    assert (inv2["stage"], inv2["open_amount"], inv2["closed_at"]) == ("current", Decimal("50.00"), None)
    # lowered to exactly what was paid: settled
    assert (inv1["stage"], inv1["open_amount"], inv1["closed_at"]) == ("paid", Decimal("0"), NOW)
    moves = [
        (e["data"]["invoice"], e["data"]["from"], e["data"]["to"], e["data"]["rule"])
        for e in events(repo, "transition")
    ]
    assert moves[-2:] == [
        ("INV-2", "paid", "current", "amount raised above what was paid"),
        ("INV-1", "current", "paid", "amount lowered to what was already paid"),
    ]


def test_a_changed_customer_is_updated_and_its_invoices_woken(book: Importer, files: Files, repo: Repository) -> None:
    execute(repo, update(INVOICES).values(next_action_on=date(2026, 4, 1)))
    path = files("c.csv", "id,name,credit_grade,tags\nC1,Acme GmbH,B,key;vip\n")
    report = book.import_file("customers", path)
    assert (report.updated, report.unchanged) == (1, 0)
    acme = table(repo, CUSTOMERS, CUSTOMERS.c.id == "C1")[0]
    # columns the file does not have are left alone
    assert (acme["credit_grade"], acme["tags"], acme["email"]) == ("B", ["key", "vip"], "ap@acme.example")
    [change] = events(repo, "update")
    assert change["data"] == {"customer": "C1", "changes": {"credit_grade": [None, "B"], "tags": [[], ["key", "vip"]]}}
    assert change["invoice_id"] is None and change["customer_id"] == "C1"
    assert {r["number"]: r["next_action_on"] for r in table(repo, INVOICES)} == {
        "INV-1": None,
        "INV-2": date(2026, 4, 1),
        "INV-3": None,
    }


def test_an_empty_optional_cell_clears_the_field(book: Importer, files: Files, repo: Repository) -> None:
    book.import_file("customers", files("c.csv", "id,name,email\nC1,Acme GmbH,\n"))
    assert table(repo, CUSTOMERS, CUSTOMERS.c.id == "C1")[0]["email"] is None


# -- payments ----------------------------------------------------------------------------------------------------


def test_new_invoices_start_current_with_an_import_event(book: Importer, repo: Repository) -> None:
    row = one_invoice(repo, "INV-1")
    assert (row["stage"], row["policy"], row["open_amount"], row["updated_at"]) == (
        "current",
        None,
        Decimal("1000.00"),
        NOW,
    )
    first = next(e for e in events(repo, "import") if e["invoice_id"] == row["id"])
    assert first["data"] == {
        "invoice": "INV-1",
        "customer_id": "C1",
        "currency": "EUR",
        "amount": "1000.00",
        "issued_on": "2026-02-01",
        "due_on": "2026-03-01",
        "tags": [],
    }
    assert (first["at"], first["recorded_at"], first["actor"], first["customer_id"]) == (NOW, NOW, "tester", "C1")


def test_a_partial_payment_reduces_the_open_amount(book: Importer, files: Files, repo: Repository) -> None:
    execute(repo, update(INVOICES).values(next_action_on=date(2026, 4, 1)))
    path = files("p.csv", "invoice,amount,paid_on,reference\nINV-1,400.10,2026-03-05,BANK-1\n")
    report = book.import_file("payments", path)
    assert (report.created, report.unchanged, report.closed) == (1, 0, 0)
    row = one_invoice(repo, "INV-1")
    assert (row["open_amount"], row["stage"], row["next_action_on"]) == (Decimal("599.90"), "current", None)
    [payment] = table(repo, PAYMENTS)
    assert (payment["amount"], payment["paid_on"], payment["reference"], payment["dedupe_key"]) == (
        Decimal("400.10"),
        date(2026, 3, 5),
        "BANK-1",
        "INV-1|ref:BANK-1",
    )
    [event] = events(repo, "payment")
    assert event["data"] == {
        "invoice": "INV-1",
        "amount": "400.10",
        "paid_on": "2026-03-05",
        "reference": "BANK-1",
        "open_amount": "599.90",
    }
    # midnight of the payment date in the company time zone
    assert event["at"] == datetime(2026, 3, 5, tzinfo=BERLIN) == datetime(2026, 3, 4, 23, tzinfo=timezone.utc)
    assert event["recorded_at"] == NOW and event["invoice_id"] == row["id"]


def _queue(repo: Repository, number: str, status: str, key: str) -> None:
    invoice_id = one_invoice(repo, number)["id"]
    with repo.write() as session:
        session.add(
            Notification(
                key=key,
                invoice_id=invoice_id,
                customer_id="C1",
                policy="standard",
                stage="reminder",
                channel="email",
                status=status,
                created_at=NOW,
                due_at=NOW,
            )
        )


def test_a_settling_payment_closes_the_invoice_and_cancels_queued_notices(book: Importer, repo: Repository) -> None:
    _queue(repo, "INV-1", "pending", "n1")
    _queue(repo, "INV-1", "sent", "n2")
    _queue(repo, "INV-2", "pending", "n3")
    report = book.import_rows(
        "payments", [pay("INV-1", "600.00", reference="R1"), pay("INV-1", "400.00", "2026-03-06", reference="R2")]
    )
    assert (report.created, report.closed) == (2, 1)
    row = one_invoice(repo, "INV-1")
    closed_at = datetime(2026, 3, 6, tzinfo=BERLIN)
    assert (row["stage"], row["open_amount"], row["closed_at"]) == ("paid", Decimal("0"), closed_at)
    kinds = [(e["kind"], e["data"].get("open_amount")) for e in events(repo) if e["invoice_id"] == row["id"]]
    assert kinds[-3:] == [("payment", "400.00"), ("payment", "0.00"), ("transition", None)]
    transition = events(repo, "transition")[-1]
    assert transition["data"] == {
        "invoice": "INV-1",
        "from": "current",
        "to": "paid",
        "rule": "payment settled the open amount",
        "policy": None,
        "policy_hash": None,
    }
    assert transition["at"] == closed_at
    outbox = {n["key"]: (n["status"], n["error"]) for n in table(repo, NOTIFICATIONS)}
    assert outbox == {"n1": ("cancelled", "invoice paid before sending"), "n2": ("sent", None), "n3": ("pending", None)}


def test_a_settling_payment_names_the_governing_policy_version(repo: Repository, book: Importer) -> None:
    policy = Policy(
        name="standard",
        stages=(Stage(name="reminder", after_days=3, channels=("email",)),),
        source=PolicySource(path="rules/standard.yaml", text="...", sha256="ab" * 32),
    )
    execute(repo, update(INVOICES).where(INVOICES.c.number == "INV-2").values(policy="standard", stage="reminder"))
    importer = Importer(repo, zone=BERLIN, clock=FixedClock(NOW), policies=PolicySet((policy,)))
    assert importer.import_rows("payments", [pay("INV-2", "250.00")]).closed == 1
    transition = events(repo, "transition")[-1]["data"]
    assert (transition["from"], transition["policy"], transition["policy_hash"]) == ("reminder", "standard", "ab" * 32)
    assert events(repo, "transition")[-1]["actor"] == "system"


def test_a_repeated_payment_is_a_no_op(book: Importer, files: Files, repo: Repository) -> None:
    path = files(
        "p.csv",
        """\
        invoice,amount,paid_on,reference
        INV-1,100.00,2026-03-05,BANK-1
        INV-1,100.00,2026-03-05,BANK-1
        INV-1,50,2026-03-05,
        INV-1,50.00,2026-03-05,
        """,
    )
    first = book.import_file("payments", path)
    assert (first.created, first.unchanged) == (2, 2)
    again = book.import_file("payments", path)
    assert (again.created, again.unchanged) == (0, 4)
    assert count(repo, PAYMENTS) == 2 and len(events(repo, "payment")) == 2
    assert one_invoice(repo, "INV-1")["open_amount"] == Decimal("850.00")
    assert {p["dedupe_key"] for p in table(repo, PAYMENTS)} == {"INV-1|ref:BANK-1", "INV-1|50|2026-03-05"}
    assert payment_dedupe_key("INV-1", Decimal("50.00"), date(2026, 3, 5), None) == "INV-1|50|2026-03-05"


def test_a_recorded_payment_repeated_after_the_invoice_was_paid_is_still_a_no_op(book: Importer) -> None:
    book.import_rows("payments", [pay("INV-2", "250.00", reference="R1")])
    assert book.import_rows("payments", [pay("INV-2", "250.00", reference="R1")]).unchanged == 1


def test_overpayment_is_rejected_taking_earlier_rows_into_account(
    book: Importer, files: Files, repo: Repository
) -> None:
    path = files(
        "p.csv",
        """\
        invoice,amount,paid_on,reference
        INV-2,300.00,2026-03-05,R1
        INV-1,600.00,2026-03-05,R2
        INV-1,500.00,2026-03-06,R3
        INV-2,250.00,2026-03-06,R4
        INV-2,0.01,2026-03-07,R5
        """,
    )
    found = problems(book, "payments", path)
    assert found == [
        f"{path}:2: amount: payment of 300.00 exceeds the open amount 250.00 of invoice INV-2; expected at most "
        "that much",
        f"{path}:4: amount: payment of 500.00 exceeds the open amount 400.00 of invoice INV-1 after the earlier "
        "rows of this file; expected at most that much",
        f"{path}:6: invoice: invoice INV-2 is paid in full by row 5 of this file; this payment of 0.01 would "
        "overpay it",
    ]
    assert count(repo, PAYMENTS) == 0 and one_invoice(repo, "INV-1")["open_amount"] == Decimal("1000.00")


def test_payments_on_paid_or_written_off_invoices_are_rejected(book: Importer, files: Files, repo: Repository) -> None:
    book.import_rows("payments", [pay("INV-2", "250.00", reference="R1")])
    execute(repo, update(INVOICES).where(INVOICES.c.number == "INV-1").values(stage="written_off"))
    path = files("p.csv", "invoice,amount,paid_on,reference\nINV-2,1.00,2026-03-08,R9\nINV-1,1.00,2026-03-08,R10\n")
    assert problems(book, "payments", path) == [
        f"{path}:2: invoice: invoice INV-2 is already paid; a payment on it is refused (a repeat of a recorded "
        "payment must carry the same reference)",
        f"{path}:3: invoice: invoice INV-1 is already written off; a payment on it is refused (a repeat of a "
        "recorded payment must carry the same reference)",
    ]


def test_payment_problems(book: Importer, files: Files) -> None:
    path = files(
        "p.csv",
        """\
        invoice,amount,paid_on,reference,payer
        INV-404,1.00,2026-03-05,R1,x
        INV-1,1.001,2026-03-05,R2,x
        INV-1,-1,2026-03-05,R3,x
        INV-1,1.00,yesterday,R4,x
        ,1.00,2026-03-05,R5,x
        """,
    )
    assert problems(book, "payments", path) == [
        f"{path}:1: payer: unknown column 'payer'; expected one of invoice, amount, paid_on, reference",
        f"{path}:2: invoice: no invoice numbered 'INV-404'; import the invoice first or correct the number",
        f"{path}:3: amount: 1.001 has 3 decimal places; invoice INV-1 is in EUR, which allows at most 2",
        f"{path}:4: amount: negative amount -1; amounts must be greater than zero",
        f"{path}:5: paid_on: 'yesterday' is not a date; expected a date as YYYY-MM-DD such as 2026-03-31",
        f"{path}:6: invoice: missing value; invoice is required",
    ]
    with pytest.raises(ImportRejected) as caught:
        book.import_rows("payments", [pay("INV-1", "1.00", reference="R" * 181)])
    assert [str(p) for p in caught.value.problems] == [
        "<rows>:1: reference: reference is 181 characters long; expected at most 180"
    ]


def test_decimal_exactness(book: Importer, repo: Repository) -> None:
    report = book.import_rows("payments", [pay("INV-3", "0.10", reference="A"), pay("INV-3", "0.20", reference="B")])
    assert report.closed == 1
    row = one_invoice(repo, "INV-3")
    assert (row["stage"], row["open_amount"]) == ("paid", Decimal("0"))
    assert sum(p["amount"] for p in table(repo, PAYMENTS)) == Decimal("0.30")
    # 0.1 + 0.2 as floats would not be 0.3: the float given by a caller is read by its shortest text
    book.import_rows("invoices", [invoice("F-1", "0.30")])
    assert (
        book.import_rows(
            "payments",
            [
                {"invoice": "F-1", "amount": 0.1, "paid_on": "2026-03-05"},
                {"invoice": "F-1", "amount": 0.2, "paid_on": "2026-03-05"},
            ],
        ).closed
        == 1
    )


def test_many_rows_in_one_transaction(importer: Importer, repo: Repository) -> None:
    importer.import_rows("customers", [{"id": f"C{i}", "name": f"Customer {i}"} for i in range(50)])
    rows = [invoice(f"N-{i}", f"{10 + i % 90}.{i % 100:02d}", customer=f"C{i % 50}") for i in range(12_000)]
    assert importer.import_rows("invoices", rows).created == 12_000
    assert count(repo, INVOICES) == 12_000
    imported = events(repo, "import")
    by_id = {r["id"]: r["number"] for r in table(repo, INVOICES)}
    assert all(by_id[e["invoice_id"]] == e["data"]["invoice"] for e in imported if e["invoice_id"] is not None)
    payments = [pay(f"N-{i}", "10.00", reference=f"R{i}") for i in range(12_000)]
    assert importer.import_rows("payments", payments).created == 12_000
    assert one_invoice(repo, "N-5")["open_amount"] == Decimal("5.05")


def test_report_as_dict() -> None:
    report = ImportReport(kind="payments", created=2, updated=0, unchanged=1, closed=1, rows=3)
    assert report.as_dict() == {"kind": "payments", "created": 2, "updated": 0, "unchanged": 1, "closed": 1, "rows": 3}
    assert json.dumps(report.as_dict())


def test_an_actions_tag_outlives_reimports_until_the_contact_it_is_about_changes(
    book: Importer, repo: Repository
) -> None:
    from engine.store.tasks import tag_customer

    book.import_rows("customers", [{"id": "C1", "name": "Acme GmbH", "email": "ap@acme.example", "tags": "key"}])
    with repo.write() as session:
        tag_customer(session.connection(), "C1", "wrong_contact")  # a call's outcome

    def stored() -> tuple[list[str], list[str] | None]:
        (row,) = table(repo, CUSTOMERS, CUSTOMERS.c.id == "C1")
        return row["tags"], row["action_tags"]

    assert stored() == (["key", "wrong_contact"], ["wrong_contact"])
    # without a tags column, and with its own tags: the action's tag stays, nothing is an update
    assert book.import_rows("customers", [{"id": "C1", "name": "Acme GmbH"}]).unchanged == 1
    assert book.import_rows("customers", [{"id": "C1", "name": "Acme GmbH", "tags": "key"}]).unchanged == 1
    assert stored() == (["key", "wrong_contact"], ["wrong_contact"])
    # a new name is no answer to a wrong contact; a new email (here without a tags column) is
    book.import_rows("customers", [{"id": "C1", "name": "Acme AG"}])
    assert stored() == (["key", "wrong_contact"], ["wrong_contact"])
    book.import_rows("customers", [{"id": "C1", "name": "Acme AG", "email": "billing@acme.example"}])
    assert stored() == (["key"], None)
    (update_event,) = [e for e in table(repo, EVENTS, EVENTS.c.kind == "update") if "email" in e["data"]["changes"]]
    assert update_event["data"]["changes"]["tags"] == [["key", "wrong_contact"], ["key"]]

"""Render what an English and a Chinese customer receive to PNG for the README: docs/screenshots/*.png.

    .venv/bin/python scripts/screenshots.py [OUT_FOLDER]

Builds a throw-away installation (SQLite in a temp folder, the shipped templates and rate files, a demo
company), runs the sweeps that send reminders and letters, writes the statements, and renders the PDFs with
poppler's `pdftoppm` and each e-mail's HTML part with headless Chromium. Needs poppler-utils, chromium and
the fonts `.ci/run` installs.
"""

from __future__ import annotations

import email
import email.header
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from channels.pdf import statement_document  # noqa: E402
from engine.app import Dunning  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.statement import statement_of_account  # noqa: E402
from tests.conftest import at  # noqa: E402
from tests.integration.test_customer_documents import CHINA, COMPANY, POLICY, SECRET  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DUNNING_PAYMENT_LINK_SECRET", SECRET)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        rules = root / "rules"
        shutil.copytree(ROOT / "rules" / "rates", rules / "rates")
        (rules / "10-china.yaml").write_text(CHINA, encoding="utf-8")
        (rules / "90-default.yaml").write_text(POLICY, encoding="utf-8")
        channels = {
            "email": {"type": "email", "recipient": "email", "eml_dir": str(root / "eml")},
            "letter": {"type": "letter", "recipient": "address"},
        }
        settings = Settings(
            database=f"sqlite:///{root / 'demo.db'}",
            rules=rules,
            templates=ROOT / "rules" / "templates",
            output_dir=root / "out",
            base_dir=root,
            channels=channels,
            company=COMPANY,
            timezone="Europe/Berlin",
        )
        clock = FixedClock(at("2026-01-01", 0))
        app = Dunning(settings, clock=clock)
        app.repo.create_schema()
        importer = app.importer()
        importer.import_rows(
            "customers",
            [
                {
                    "id": "C-ACME",
                    "name": "Acme Robotics Ltd",
                    "address": "221 Baker Street, London NW1 6XE",
                    "owner": "anna",
                    "language": "en",
                    "email": "ap@acme.example",
                },
                {
                    "id": "C-YH",
                    "name": "上海远航物流有限公司",
                    "address": "上海市徐汇区漕溪北路 398 号",
                    "owner": "chen",
                    "language": "zh_CN",
                    "email": "cw@yuanhang.example",
                },
            ],
        )
        importer.import_rows(
            "invoices",
            [
                {
                    "number": "INV-2026-0101",
                    "customer_id": "C-ACME",
                    "currency": "EUR",
                    "amount": "10000.00",
                    "issued_on": "2026-01-01",
                    "due_on": "2026-01-31",
                },
                {
                    "number": "INV-2026-0102",
                    "customer_id": "C-ACME",
                    "currency": "EUR",
                    "amount": "2450.00",
                    "issued_on": "2026-01-28",
                    "due_on": "2026-02-27",
                },
                {
                    "number": "INV-2026-0201",
                    "customer_id": "C-YH",
                    "currency": "CNY",
                    "amount": "86000.00",
                    "issued_on": "2026-01-05",
                    "due_on": "2026-02-04",
                },
                {
                    "number": "INV-2026-0202",
                    "customer_id": "C-YH",
                    "currency": "CNY",
                    "amount": "12500.50",
                    "issued_on": "2026-01-30",
                    "due_on": "2026-03-01",
                },
            ],
        )
        importer.import_rows(
            "payments",
            [
                {"invoice": "INV-2026-0101", "amount": "4000.00", "paid_on": "2026-02-15", "reference": "BANK-7781"},
                {"invoice": "INV-2026-0201", "amount": "20000.00", "paid_on": "2026-02-20", "reference": "BANK-8802"},
            ],
        )
        for day in ("2026-02-08", "2026-03-09"):
            clock.at = at(day)
            app.run(at(day))
        company = settings.company.model_dump()
        for customer, tag in (("C-ACME", "en"), ("C-YH", "zh")):
            statement = statement_of_account(app, customer, at("2026-03-09", 12), at("2026-02-01").date())
            pdf = root / f"statement-{tag}.pdf"
            pdf.write_bytes(statement_document(statement.as_dict(), company, statement.customer.get("language")))
            render_pdf(pdf, out / f"statement-{tag}")
        for number, tag in (("INV-2026-0101", "en"), ("INV-2026-0201", "zh")):
            [letter] = (root / "out" / "letters").glob(f"*-{number}.pdf")
            render_pdf(letter, out / f"letter-{tag}")
            [eml] = (root / "eml").glob(f"*-{number}_letter_*_email.eml")
            render_email(eml, out / f"email-{tag}.png", root)
    for path in sorted(out.glob("*.png")):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def render_pdf(pdf: Path, stem: Path) -> None:
    subprocess.run(
        ["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(stem)], check=True
    )


def decoded(header: str) -> str:
    return str(email.header.make_header(email.header.decode_header(header)))


def render_email(eml: Path, png: Path, temp: Path) -> None:
    message = email.message_from_bytes(eml.read_bytes())
    subject = decoded(message["Subject"])
    [html] = [p.get_payload(decode=True).decode() for p in message.walk() if p.get_content_type() == "text/html"]
    page = temp / f"{png.stem}.html"
    header = (
        f"<div style='font:13px sans-serif;color:#555;border-bottom:1px solid #ccc;padding:8px;margin-bottom:8px'>"
        f"<b>From:</b> {escape(decoded(message['From']))}<br><b>To:</b> {escape(decoded(message['To']))}<br>"
        f"<b>Subject:</b> {escape(subject)}</div>"
    )
    page.write_text(re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header, html, count=1), encoding="utf-8")
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={png}",
            "--window-size=760,820",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")

"""The stage key `template:` is honoured: the stage's notices render from that template (issue 11, defect 12),
and a name that could leave the templates folder is refused at check time."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.test_cli import Cli


def test_notices_render_from_the_named_template(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write(
        "rules/house.yaml",
        """\
        name: house
        stages:
          - {name: reminder, after_days: 1, channels: [log], template: friendly}
          - {name: letter, after_days: 30, channels: [log]}
        """,
    )
    cli.write("rules/templates/friendly.txt", "Subject: A friendly word about {{ invoice.number }}\n\nHello.\n")
    cli.write("customers.csv", "id,name,email\nC1,Acme,ap@acme.example\n")
    cli.write(
        "invoices.csv", "number,customer_id,currency,amount,issued_on,due_on\nI1,C1,EUR,10.00,2026-01-01,2026-01-31\n"
    )
    cli("import", "customers", "customers.csv")
    cli("import", "invoices", "invoices.csv")
    cli("run", "--as-of", "2026-02-05")
    log = (tmp_path / "out" / "notifications.log").read_text()
    assert "A friendly word about I1" in log
    cli("run", "--as-of", "2026-03-05")  # the letter stage names no template: the default one
    log = (tmp_path / "out" / "notifications.log").read_text()
    assert log.count("A friendly word about I1") == 1 and "subject: Letter" in log


def test_a_template_name_with_path_characters_is_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'dunning.db'}")
    cli.write(
        "rules/house.yaml",
        """\
        name: house
        stages:
          - {name: reminder, after_days: 1, channels: [log], template: ../../etc/passwd}
        """,
    )
    result = cli("policy", "check", ok=False)
    assert result.returncode == 1
    assert "house.yaml:3:" in result.stderr and "template" in result.stderr

"""schemathesis against the OpenAPI document: for generated requests to every operation, no 5xx, and every
answer matches the status codes, media types and schemas the document promises.

Bounded to stay well under two minutes: a handful of examples per operation, no shrinking. The background
job starters are left out (each would copy the book for a simulation); test_api_roles covers them.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import build_web_book

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 8


def test_no_server_errors_and_answers_match_the_document(tmp_path: Path) -> None:
    web = build_web_book(tmp_path)
    headers = {"Authorization": f"Bearer {web.tokens['admin']}"}
    loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", web.app)
    operations = [result.ok() for result in loaded.get_all_operations()]
    tested = []
    for operation in operations:
        if operation.method.upper() == "POST" and operation.path in ("/api/v1/simulations", "/api/v1/policy-diffs"):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def call(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=CHECKS)

        call()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) == len(operations) - 2 >= 20

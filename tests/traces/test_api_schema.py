"""The OpenAPI schema is true to the API: Schemathesis generates requests from
``/api/schema/`` (valid and invalid ones) and sends them to a real Daphne with an admin
API key; no answer may be a 5xx, have a status the operation does not document, or a
body or content type other than the one documented.

Reproducible: a fixed seed and Hypothesis derandomized; the examples, coverage and
fuzzing phases together send at least ``MIN_CASES`` requests.

Left out: ``DELETE /api/v1/api-keys/{key_id}``, which would revoke the key the test runs
with (every later answer a 401); revoking is tested in test_key_commands.py and
test_members.py.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.servers import Daphne, daphne, database_url, server_env
from traces.ingest import ingest_trace
from traces.models import ApiKey, KeyScope, Project
from traces.trace import ExecutionTrace

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20261205
MIN_CASES = 1000
# Fuzzing examples per operation (the coverage phase adds its own cases on top).
FUZZ_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    # Production settings (DEBUG off): a URL no route matches answers the API's JSON 404,
    # not Django's debug page. Exports run in the server (no REDIS_URL) into a temp dir.
    with tempfile.TemporaryDirectory(prefix="schemathesis-exports-") as exports:
        env = server_env(
            database_url(connection.settings_dict),
            DEBUG="false",
            SECRET_KEY="schemathesis-test-key-" + "x" * 40,
            EXPORT_DIR=exports,
        )
        with daphne(env) as live:
            yield live


@pytest.fixture
def admin_key(project: Project, fixtures_dir: Path) -> str:
    """An admin key of a project with runs (a success, a failure and its group)."""
    for name in ("research_agent_success.json", "tool_timeout_failure.json"):
        ingest_trace(project, ExecutionTrace.from_json((fixtures_dir / name).read_bytes()))
    return ApiKey.issue(project, scope=KeyScope.ADMIN)[1]


@pytest.fixture
def api_schema(server: Daphne, admin_key: str) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": FUZZ_EXAMPLES,
                "deterministic": True,
            },
        }
    )
    return schemathesis.openapi.from_url(
        f"{server.origin}/api/schema/?format=json", config=config, timeout=30
    )


@pytest.fixture(scope="module")
def sent() -> Iterator[list[str]]:
    """Every request the test sent; at least ``MIN_CASES`` of them, or it proved little."""
    requests: list[str] = []
    yield requests
    print(f"schemathesis sent {len(requests)} requests")
    assert len(requests) >= MIN_CASES, f"only {len(requests)} requests were generated"


# DashStream bodies are protobuf frames: bytes, some of them frames (the encoder's own
# framing of nothing, and of a message), the rest noise the endpoint must refuse cleanly.
_FRAMES = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda body: len(body).to_bytes(4, "big") + body, st.binary(max_size=256)),
)
schemathesis.openapi.media_type("application/x-protobuf", st.binary(max_size=512))
schemathesis.openapi.media_type("application/x-dashstream-frames", _FRAMES)

schema = schemathesis.pytest.from_fixture("api_schema").exclude(
    method="DELETE", path="/api/v1/api-keys/{key_id}"
)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_answer_is_the_one_the_schema_documents(
    case: Any, admin_key: str, sent: list[str]
) -> None:
    sent.append(f"{case.method} {case.formatted_path}")
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_key}"}, checks=CHECKS, timeout=60
    )


def test_a_url_under_the_api_that_no_route_matches_answers_the_json_error(
    api: Any, settings: Any
) -> None:
    settings.DEBUG = False
    response = api.get("/api/v1/alert-rules/not-a-number")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "no such URL: /api/v1/alert-rules/not-a-number"}
    page = api.get("/projects/no/such/page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_an_error_of_a_csv_or_markdown_request_is_the_json_error_body(api: Any) -> None:
    for url in ("/api/v1/reviews/export?format=csv&project=elsewhere", "/api/v1/runs/no?format=md"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json", url
        assert response.json()["detail"], url


def test_every_operation_documents_the_error_answers_with_the_error_body() -> None:
    out = io.StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )
    spec = json.loads(out.getvalue())
    assert spec["components"]["schemas"]["Error"]["required"] == ["detail"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "401", "403", "404"} <= set(responses), (method, path)
            for code, response in responses.items():
                if code.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    groups = spec["paths"]["/api/v1/failure-groups"]["get"]["responses"]["200"]
    page = groups["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][page]["properties"]) == {
        "next",
        "previous",
        "results",
    }

"""Whole traces larger than the other producer bodies through a real Daphne: the route's
own limit (``TRACE_UPLOAD_MAX_BYTES``, set small here so the bodies stay quick) is
enforced as the body arrives and again after gzip, a trace past the old 20 MB limit is
stored whole, and a refusal writes nothing. Memory is measured by
``benchmarks/large_ingest.py``, not here."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from django.db import connection

from tests.servers import Daphne, daphne, database_url, server_env
from tests.test_bodylimit import endless_chunks, exchange, refused
from traces import parsing, store
from traces.errors import InputError
from traces.models import Run, StateSnapshot, Step
from traces.parsing import parse_trace
from traces.trace import NOT_UTF8, ExecutionTrace, state_value

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
UPLOAD_LIMIT = 26 * MB
OLD_LIMIT = 20 * MB


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(
        database_url(connection.settings_dict),
        TRACE_UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT),
        TRACE_MAX_BODY_BYTES=str(OLD_LIMIT),
        INGEST_RATE="0",
    )
    with daphne(env) as live:
        yield live


def large_trace(fixtures_dir: Path, size: int) -> dict[str, Any]:
    """The research agent's run in DashFlow's form, its steps repeated until the body is
    about ``size`` bytes, each step's states new (a page of its own text)."""
    trace: dict[str, Any] = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    template = trace["nodes_executed"]
    page = 8192
    steps = []
    for i in range(size // (2 * page + 2048)):
        step = copy.deepcopy(template[i % len(template)])
        step["index"] = i
        step["state_before"] = {"step": i, "page": f"{i:08d} before " + "b" * page}
        step["state_after"] = {"step": i, "page": f"{i:08d} after " + "a" * page}
        steps.append(step)
    trace["nodes_executed"] = steps
    return trace


def headers(api_key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", **extra}


def nothing_stored() -> bool:
    return not (Run.objects.exists() or Step.objects.exists() or StateSnapshot.objects.exists())


def test_a_trace_over_the_old_limit_is_stored_whole_plain_and_gzipped(
    server: Daphne, api_key: str, fixtures_dir: Path
) -> None:
    trace = large_trace(fixtures_dir, 25 * MB)
    body = json.dumps(trace).encode()
    assert OLD_LIMIT < len(body) < UPLOAD_LIMIT

    response = server.request("POST", "/api/v1/traces", body, headers(api_key), timeout=300)

    assert response.status == 201, response.body[:500]
    assert response.json()["execution_id"] == trace["execution_id"]
    run = Run.objects.get(execution_id=trace["execution_id"])
    assert json.loads(store.load_trace(run).to_json()) == trace
    # The same trace gzipped, with other spacing: recognised as stored (its digest is that
    # of the decoded trace, not of the body's bytes).
    again = gzip.compress(json.dumps(trace, indent=1).encode())
    response = server.request(
        "POST", "/api/v1/traces", again, headers(api_key, **{"Content-Encoding": "gzip"}), 300
    )
    assert response.status == 200, response.body[:500]
    assert response.json()["created"] is False
    assert Run.objects.count() == 1


def test_a_body_over_the_upload_limit_is_refused_naming_it(server: Daphne, api_key: str) -> None:
    answer, _ = exchange(
        server,
        "POST /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Length: {UPLOAD_LIMIT + 1}\r\n",
    )

    error = refused(answer, "TRACE_UPLOAD_MAX_BYTES")
    assert error["rule"] == (
        f"body is larger than TRACE_UPLOAD_MAX_BYTES={UPLOAD_LIMIT} bytes"
        f" (Content-Length: {UPLOAD_LIMIT + 1})"
    )
    assert nothing_stored()


def test_a_chunked_trace_is_refused_once_past_the_upload_limit(
    server: Daphne, api_key: str
) -> None:
    answer, sent = exchange(
        server,
        "POST /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        f"Authorization: Bearer {api_key}\r\n",
        chunks=endless_chunks(),
    )

    refused(answer, "TRACE_UPLOAD_MAX_BYTES")
    assert UPLOAD_LIMIT < sent < UPLOAD_LIMIT + 40 * MB
    assert nothing_stored()


def test_gzip_inflating_past_the_upload_limit_is_refused(
    server: Daphne, api_key: str, fixtures_dir: Path
) -> None:
    trace = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    trace["final_state"] = {"padding": " " * UPLOAD_LIMIT}
    bomb = gzip.compress(json.dumps(trace).encode())
    assert len(bomb) < MB

    response = server.request(
        "POST", "/api/v1/traces", bomb, headers(api_key, **{"Content-Encoding": "gzip"}), 120
    )

    assert response.status == 413, response.body[:500]
    rule = f"body is larger than TRACE_UPLOAD_MAX_BYTES={UPLOAD_LIMIT} bytes"
    assert response.json()["rule"] == rule
    assert nothing_stored()


def test_the_other_producer_routes_keep_their_own_limit(server: Daphne, api_key: str) -> None:
    answer, _ = exchange(
        server,
        "POST /api/v1/runs/run-1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Length: {OLD_LIMIT + 1}\r\n",
    )

    refused(answer, "TRACE_MAX_BODY_BYTES")
    assert nothing_stored()


# -- the parser's lazy states, without a server ---------------------------------------


def test_a_parsed_trace_keeps_its_states_undecoded_and_equal(fixtures_dir: Path) -> None:
    body = (fixtures_dir / "research_agent_success.json").read_bytes()
    document = json.loads(body)

    trace = parse_trace(body)

    first = trace.nodes_executed[0]
    assert isinstance(first.state_before, msgspec.Raw)
    assert state_value(first.state_before) == document["nodes_executed"][0]["state_before"]
    assert state_value(trace.final_state) == document["final_state"]


def test_the_digest_of_a_parsed_trace_is_that_of_its_decoded_json(
    fixture_files: list[Path],
) -> None:
    for path in fixture_files:
        body = path.read_bytes()
        decoded = ExecutionTrace.from_json(body)
        spaced = json.dumps(json.loads(body), indent=3).encode()

        digest = store.trace_digest(parse_trace(body))

        assert digest == hashlib.sha256(decoded.to_json()).hexdigest(), path.name
        assert store.trace_digest(parse_trace(spaced)) == digest, path.name
        assert store.trace_digest(decoded) == digest, path.name


def test_a_state_that_is_not_utf8_is_refused_naming_it(fixtures_dir: Path) -> None:
    document = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    document["nodes_executed"][1]["state_after"] = {"text": "MARK"}
    body = json.dumps(document).encode().replace(b"MARK", b"\xff\xfe")

    with pytest.raises(InputError) as refusal:
        parse_trace(body)

    assert refusal.value.path == "$.nodes_executed[1].state_after"
    assert refusal.value.rule == NOT_UTF8


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_depth_read_in_pieces_is_the_depth_read_whole(
    fixture_files: list[Path], monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    tricky = [
        b'{"a": "\\\\\\\\", "b": [["\\"]]"]]}',
        b'[["\\\\"], {"k\\\\\\"": [[[1]]]}]',
        b'{"s": "\\\\\\\\\\\\\\\\\\"[[[[", "t": [[]]}',
    ]
    documents = [path.read_bytes() for path in fixture_files] + tricky
    whole = [parsing.json_depth(d) for d in documents]

    monkeypatch.setattr(parsing, "_DEPTH_CHUNK", chunk)

    assert [parsing.json_depth(d) for d in documents] == whole
    assert whole[-3:] == [nesting(json.loads(d)) for d in tricky]


def nesting(value: Any) -> int:
    """The depth of decoded JSON, counted independently of the parser."""
    if isinstance(value, dict):
        return 1 + max((nesting(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((nesting(v) for v in value), default=0)
    return 0


def test_gzip_is_held_to_the_limit_as_sent_and_inflated() -> None:
    noise = os.urandom(20_000)  # incompressible: the gzip is larger than the limit
    packed = gzip.compress(noise)
    small = gzip.compress(b" " * 20_000)  # inflates past the limit

    for body in (packed, small):
        stream = io.BytesIO(body)
        with pytest.raises(InputError) as refusal:
            parsing.read_stream(stream.read, "gzip", "TRACE_MAX_BODY_BYTES", 10_000)
        assert refusal.value.status == 413
        assert refusal.value.rule == "body is larger than TRACE_MAX_BODY_BYTES=20971520 bytes"

    inflated = parsing.read_stream(io.BytesIO(small).read, "gzip", "TRACE_MAX_BODY_BYTES", 20_000)
    assert inflated == b" " * 20_000

"""The MCP server, driven by the SDK's own client over both transports.

HTTP: a real Daphne on the test database (``/mcp``, stateless JSON), the client
``streamable_http_client`` with the key in ``Authorization``. stdio: ``manage.py mcp``
spawned by ``stdio_client`` with the test database in its environment. The fixtures are
the shared DashFlow traces; the 2,000-step loop checks that no answer outgrows
``ANSWER_MAX_CHARS`` and that paging reaches every step.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.servers import ROOT, Daphne, daphne, database_url, server_env
from traces.ingest import ingest_trace
from traces.mcp.tools import ANSWER_MAX_CHARS
from traces.models import ApiKey, FailureGroup, KeyScope, Project, Run
from traces.parsing import parse_trace

real_server = pytest.mark.django_db(transaction=True)

TOOLS = {
    "list_runs",
    "get_run",
    "get_step",
    "watch_path",
    "search_steps",
    "list_failure_groups",
    "get_failure_group",
    "update_failure_group",
    "add_comment",
    "compare_runs",
}
FAILED = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"  # tool_timeout_failure.json


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def ingest(project: Project, fixtures_dir: Path, name: str) -> Run:
    run, _ = ingest_trace(project, parse_trace((fixtures_dir / name).read_bytes()))
    return run


@pytest.fixture
def runs(project: Project, other_project: Project, fixtures_dir: Path) -> dict[str, Run]:
    """acme: a success, the tool timeout, the 2,000-step loop; other: the subgraph child."""
    return {
        "success": ingest(project, fixtures_dir, "research_agent_success.json"),
        "failed": ingest(project, fixtures_dir, "tool_timeout_failure.json"),
        "long": ingest(project, fixtures_dir, "long_loop_2000.json"),
        "elsewhere": ingest(other_project, fixtures_dir, "subgraph_child.json"),
    }


class Tools:
    """A connected client session: ``call`` returns (is_error, the JSON answer or text)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.sizes: list[int] = []

    async def call(self, name: str, **arguments: Any) -> tuple[bool, Any]:
        result = await self.session.call_tool(name, arguments)
        text = "".join(getattr(c, "text", "") for c in result.content)
        self.sizes.append(len(text))
        if result.is_error:
            return True, text
        return False, json.loads(text)

    async def ok(self, name: str, **arguments: Any) -> Any:
        is_error, answer = await self.call(name, **arguments)
        assert not is_error, f"{name}({arguments}) failed: {answer}"
        return answer

    async def error(self, name: str, **arguments: Any) -> str:
        is_error, answer = await self.call(name, **arguments)
        assert is_error, f"{name}({arguments}) should have failed, got {answer}"
        assert isinstance(answer, str)
        # The SDK puts this before every tool error's own text.
        return answer.removeprefix(f"Error executing tool {name}: ")


@asynccontextmanager
async def over_http(server: Daphne, key: str) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{server.origin}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield Tools(session)


def with_http(server: Daphne, key: str, steps: Callable[[Tools], Awaitable[None]]) -> Tools:
    async def main() -> Tools:
        async with over_http(server, key) as tools:
            await steps(tools)
            return tools

    return anyio.run(main)


@real_server
def test_http_lists_every_tool_with_a_schema_and_a_description(
    server: Daphne, api_key: str
) -> None:
    async def steps(tools: Tools) -> None:
        listed = (await tools.session.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        for t in listed:
            assert t.description, t.name
            assert len(t.description) < 600, t.name
            assert t.input_schema["type"] == "object", t.name
        get_step = next(t for t in listed if t.name == "get_step")
        assert get_step.input_schema["required"] == ["execution_id", "index"]
        assert "path" in get_step.input_schema["properties"]

    with_http(server, api_key, steps)


@real_server
def test_http_answers_every_tool_on_the_fixtures(
    server: Daphne, api_key: str, runs: dict[str, Run], member: Any
) -> None:
    success = runs["success"].execution_id

    async def steps(tools: Tools) -> None:
        listed = await tools.ok("list_runs")
        assert {r["execution_id"] for r in listed["runs"]} == {
            success,
            FAILED,
            runs["long"].execution_id,
        }
        failed = await tools.ok("list_runs", status="failed", q="timeout")
        assert [r["execution_id"] for r in failed["runs"]] == [FAILED]
        first = await tools.ok("list_runs", limit=1)
        second = await tools.ok("list_runs", limit=1, cursor=first["next_cursor"])
        assert first["runs"][0]["execution_id"] != second["runs"][0]["execution_id"]

        run = await tools.ok("get_run", execution_id=FAILED)
        assert run["status"] == "failed"
        assert run["errors"][0]["error_type"] == "Timeout"
        assert [row[1] for row in run["steps"]["rows"]] == [
            "planner",
            "retriever",
            "reader",
            "critic",
            "retriever",
        ]
        assert {n["node"]: n["steps"] for n in run["nodes"]}["retriever"] == 2

        step = await tools.ok("get_step", execution_id=success, index=0)
        assert step["node"] == "planner"
        assert "messages" in step["diff_summary"]["keys"]
        assert {"op": "add", "path": "/messages/1"}.items() <= next(
            c for c in step["changes"] if c["path"].startswith("/messages")
        ).items()
        value = await tools.ok("get_step", execution_id=success, index=0, path="/plan")
        assert json.loads(value["after"]["text"])[0] == "search background"
        assert value["before"]["found"] is True

        watched = await tools.ok("watch_path", execution_id=success, path="/plan")
        assert watched["first_changed"] == 0
        assert watched["changes"][0]["node"] == "planner"

        found = await tools.ok("search_steps", execution_id=FAILED, error="exceeded")
        assert [(m["index"], m["node"]) for m in found["matches"]] == [(4, "retriever")]
        by_node = await tools.ok("search_steps", execution_id=FAILED, node="retriever")
        assert [m["index"] for m in by_node["matches"]] == [1, 4]

        compared = await tools.ok("compare_runs", a=FAILED, b=success)
        assert compared["divergence"]["node"] == "planner"
        assert compared["divergence"]["at"] == "before"
        assert "/question" in [c["path"] for c in compared["divergence"]["changes"]]
        assert compared["counts"]["inserted"] == 6
        assert compared["rows"][4] == ["retriever", 2, "paired", 4, 4, False]
        # A 2,000-step run's rows come a page at a time.
        paged = await tools.ok("compare_runs", a=runs["long"].execution_id, b=success)
        assert paged["row_count"] > len(paged["rows"])
        assert paged["next_offset"] == len(paged["rows"])
        refused = await tools.error("compare_runs", a=FAILED, b="nope")
        assert refused.startswith("b: run 'nope': not found")

        groups = await tools.ok("list_failure_groups")
        group = next(g for g in groups["groups"] if g["node"] == "retriever")
        assert group["message"] == "Timeout: GET <url> exceeded <num>s"
        detail = await tools.ok("get_failure_group", group_id=group["id"])
        assert detail["occurrences"][0]["execution_id"] == FAILED
        assert detail["occurrences"][0]["step_index"] == 4

        resource = await tools.session.read_resource(f"run://acme/{FAILED}")
        markdown = resource.contents[0]
        assert getattr(markdown, "mime_type", None) == "text/markdown"
        assert "Timeout" in getattr(markdown, "text", "")
        templates = (await tools.session.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["run://{project}/{execution_id}"]

        changed = await tools.ok(
            "update_failure_group", group_id=group["id"], status="triaged", assignee="alice"
        )
        assert (changed["status"], changed["assignee"]) == ("triaged", "alice")
        comment = await tools.ok(
            "add_comment", execution_id=FAILED, body="doc/4 timed out", index=4, path="/documents"
        )
        assert (comment["step_index"], comment["path"]) == (4, "/documents")

    with_http(server, api_key, steps)
    group = FailureGroup.objects.get(node="retriever", project=runs["failed"].project)
    assert group.status == "triaged"
    assert runs["failed"].comments.get().body == "doc/4 timed out"


@real_server
def test_http_answers_stay_bounded_on_the_2000_step_run(
    server: Daphne, api_key: str, runs: dict[str, Run]
) -> None:
    long = runs["long"].execution_id

    async def steps(tools: Tools) -> None:
        rows: list[list[Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = await tools.ok("get_run", execution_id=long, offset=offset)
            rows += page["steps"]["rows"]
            offset = page["steps"]["next_offset"]
        assert [row[0] for row in rows] == list(range(2000))
        step = await tools.ok("get_step", execution_id=long, index=1999)
        assert step["node"]
        matches = await tools.ok("search_steps", execution_id=long, node="retriever")
        assert matches["matches_total"] > len(matches["matches"]) > 0
        assert matches["next_offset"] == len(matches["matches"])
        watched = await tools.ok("watch_path", execution_id=long, path="/messages")
        assert watched["changes_total"] > len(watched["changes"])
        everything = await tools.ok(
            "search_steps", execution_id=long, path="/documents", value="example.org"
        )
        assert everything["matches_total"] >= 1000
        await tools.ok("get_step", execution_id=long, index=1000, path="")
        await tools.ok("list_runs", limit=20)

    tools = with_http(server, api_key, steps)
    assert max(tools.sizes) <= ANSWER_MAX_CHARS


@real_server
def test_http_refuses_a_request_without_a_live_key(server: Daphne, project: Project) -> None:
    row, raw = ApiKey.issue(project)
    row.revoke()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer dfk_nope"}, {"Authorization": f"Bearer {raw}"}):
        response = server.request("POST", "/mcp", body, headers)
        assert response.status == 401, (headers, response.body)
        assert response.json()["path"] == "Authorization"


@real_server
def test_http_read_key_is_refused_the_write_tools(
    server: Daphne, project: Project, runs: dict[str, Run]
) -> None:
    _, read_key = ApiKey.issue(project, scope=KeyScope.READ)
    group = FailureGroup.objects.filter(project=project).first()
    assert group is not None

    async def steps(tools: Tools) -> None:
        await tools.ok("get_failure_group", group_id=group.pk)
        refused = await tools.error("update_failure_group", group_id=group.pk, status="ignored")
        assert "scope is read" in refused
        refused = await tools.error("add_comment", execution_id=FAILED, body="hi")
        assert "scope is read" in refused

    with_http(server, read_key, steps)
    group.refresh_from_db()
    assert group.status == "new"
    assert not runs["failed"].comments.exists()


@real_server
def test_http_another_projects_runs_and_groups_are_not_found(
    server: Daphne, api_key: str, runs: dict[str, Run], other_project: Project
) -> None:
    elsewhere = runs["elsewhere"].execution_id
    other_group = FailureGroup.objects.create(
        project=other_project,
        fingerprint="x" * 64,
        node="n",
        message="m",
        first_seen=runs["elsewhere"].started_at,
        last_seen=runs["elsewhere"].started_at,
    )

    async def steps(tools: Tools) -> None:
        for name, arguments in (
            ("get_run", {}),
            ("get_step", {"index": 0}),
            ("watch_path", {"path": "/x"}),
            ("search_steps", {"node": "n"}),
        ):
            refused = await tools.error(name, execution_id=elsewhere, **arguments)
            assert refused == f"execution_id: run {elsewhere!r}: not found"
        refused = await tools.error("get_failure_group", group_id=other_group.pk)
        assert refused == f"group_id: failure group {other_group.pk}: not found"
        listed = await tools.ok("list_runs", q=elsewhere)
        assert listed["runs"] == []
        for uri in (f"run://other/{elsewhere}", f"run://acme/{elsewhere}"):
            with pytest.raises(MCPError, match="not found"):
                await tools.session.read_resource(uri)

    with_http(server, api_key, steps)


@real_server
def test_http_bad_arguments_are_tool_errors_naming_the_argument(
    server: Daphne, api_key: str, runs: dict[str, Run]
) -> None:
    async def steps(tools: Tools) -> None:
        assert "index" in await tools.error("get_step", execution_id=FAILED, index="four")
        assert "index" in await tools.error("get_step", execution_id=FAILED, index=99)
        assert (await tools.error("list_runs", limit=500)).startswith("limit: ")
        assert (await tools.error("list_runs", last="yesterday")).startswith("last: ")
        assert (await tools.error("list_runs", cursor="zzz")).startswith("cursor: ")
        assert "status" in await tools.error("list_runs", status="broken")
        assert (await tools.error("watch_path", execution_id=FAILED, path="x")).startswith("path: ")
        assert (await tools.error("search_steps", execution_id=FAILED)).startswith("node: ")
        assert (await tools.error("get_run", execution_id=FAILED, offset=-1)).startswith("offset: ")
        assert (await tools.error("add_comment", execution_id=FAILED, body=" ")).startswith(
            "body: "
        )
        assert "execution_id" in await tools.error("get_run")

    with_http(server, api_key, steps)


@real_server
def test_an_agent_finds_why_the_last_failed_run_failed_and_who_wrote_the_value(
    server: Daphne, api_key: str, runs: dict[str, Run]
) -> None:
    """The issue's "done when": only the tools, from the question to the step."""

    async def steps(tools: Tools) -> None:
        last = await tools.ok("list_runs", status="failed", graph_name="research-agent", limit=1)
        execution_id = last["runs"][0]["execution_id"]
        run = await tools.ok("get_run", execution_id=execution_id)
        error = run["errors"][0]
        assert (error["node"], error["step_index"]) == ("retriever", 4)
        assert "exceeded 30s" in error["message"]
        failing = await tools.ok("get_step", execution_id=execution_id, index=error["step_index"])
        assert failing["success"] is False
        assert failing["state_before"]["iteration"] == 1  # what the failing retriever received
        # Which step first wrote that value (the loop counter that sent it back to retrieve)?
        watched = await tools.ok("watch_path", execution_id=execution_id, path="/iteration")
        assert watched["first_changed"] == 3
        assert watched["changes"][0] == {
            "index": 3,
            "node": "critic",
            "found": True,
            "value": {"text": "1"},
        }
        wrote = await tools.ok(
            "search_steps", execution_id=execution_id, path="/messages", value="critique #1"
        )
        assert wrote["matches"][0]["node"] == "critic"

    with_http(server, api_key, steps)


def stdio_env(**extra: str) -> dict[str, str]:
    return server_env(database_url(connection.settings_dict), **extra)


@real_server
def test_stdio_serves_the_same_tools_with_the_keys_scope(
    project: Project, runs: dict[str, Run]
) -> None:
    _, read_key = ApiKey.issue(project, scope=KeyScope.READ)
    params = StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp", "--project", project.slug],
        env=stdio_env(DASHFLOW_API_KEY=read_key),
        cwd=ROOT,
    )

    async def main() -> None:
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = Tools(session)
            assert {t.name for t in (await session.list_tools()).tools} == TOOLS
            run = await tools.ok("get_run", execution_id=FAILED)
            assert run["errors"][0]["step_index"] == 4
            refused = await tools.error("add_comment", execution_id=FAILED, body="hi")
            assert "scope is read" in refused
            assert "not found" in await tools.error(
                "get_run", execution_id=runs["elsewhere"].execution_id
            )

    anyio.run(main)


@pytest.mark.django_db
def test_stdio_command_needs_a_live_key_of_the_project(
    project: Project, other_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHFLOW_API_KEY", raising=False)
    with pytest.raises(CommandError, match="name an API key"):
        call_command("mcp", "--project", project.slug)
    with pytest.raises(CommandError, match="unknown API key"):
        call_command("mcp", "--project", project.slug, "--key", "dfk_nope")
    _, other_key = ApiKey.issue(other_project)
    with pytest.raises(CommandError, match="not a key of project 'acme'"):
        call_command("mcp", "--project", project.slug, "--key", other_key)

"""The MCP server: one ``MCPServer`` whose tools act with the rights of one API key.

Both transports serve this one server: streamable HTTP at ``/mcp`` (``traces/mcp/http.py``
authenticates each request and sets ``current_key``) and stdio (``manage.py mcp``, which
sets it once for the process). A tool reads the key from ``current_key``, so its project
and scope are the caller's, and runs its work (``traces/mcp/tools.py``) in Django's sync
thread through ``database_sync_to_async``, which also closes stale connections.

Errors: an ``InputError`` becomes a tool error ``"<argument>: <rule>"`` (a NUL character
in any argument is one, before the tool runs: PostgreSQL text cannot hold it; a run of another
project is "not found", as the API's 404); arguments of the wrong type are refused by the
SDK's schema validation, which names the argument too.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Any, Literal

import msgspec
from channels.db import database_sync_to_async
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from pydantic import Field

from ..errors import InputError
from ..permissions import KeyPrincipal
from ..trace import NUL_RULE, refuse_nul_in
from . import tools

current_key: ContextVar[KeyPrincipal] = ContextVar("current_key")

INSTRUCTIONS = """\
DashFlow Trace Studio: the stored runs (ExecutionTraces) of agent graphs in one project.
A run is a sequence of steps (node executions), each with the state before and after it;
paths into a state are JSON Pointers such as /documents/0/url. To debug a failure:
list_runs(status="failed") -> get_run (errors, the failing step, the node sequence) ->
get_step (what that step received and changed) -> watch_path or search_steps (which step
first wrote a bad value). Failure groups gather the same error across runs. Answers are
compact JSON; long lists page with next_cursor / next_offset, and cut values end with
"…" (read them whole with get_step(path=...))."""

server: MCPServer[Any] = MCPServer(
    "dashflow-trace-studio", title="DashFlow Trace Studio", instructions=INSTRUCTIONS
)

ExecutionId = Annotated[str, Field(description="The run's execution_id (from list_runs)")]
Offset = Annotated[int, Field(description="Where to go on from: a previous next_offset")]
Pointer = Annotated[str, Field(description="A JSON Pointer into the state, e.g. /documents/0")]


def _answer(result: dict[str, Any]) -> str:
    text = msgspec.json.encode(result).decode()
    if len(text) > tools.ANSWER_MAX_CHARS:
        # Not expected (every tool pages or cuts); say so rather than flood the context.
        raise ToolError(
            f"answer of {len(text)} characters is over {tools.ANSWER_MAX_CHARS}: ask for less "
            "(a smaller limit, a path)"
        )
    return text


def tool(fn: Callable[..., dict[str, Any]]) -> Callable[..., Awaitable[str]]:
    """Register ``fn`` as a tool named after it: its signature is the schema and its
    docstring the description a model reads; it runs in Django's sync thread."""

    @functools.wraps(fn)
    async def call(**arguments: Any) -> str:
        try:
            for name, value in arguments.items():
                refuse_nul_in(name, value, NUL_RULE)
            result = await database_sync_to_async(fn)(**arguments)
        except InputError as exc:
            raise ToolError(f"{exc.path}: {exc.rule}") from None
        return _answer(result)

    server.add_tool(call, name=fn.__name__, structured_output=False)
    return call


def key() -> KeyPrincipal:
    """The API key this request acts with (set by the transport)."""
    return current_key.get()


@tool
def list_runs(
    status: Annotated[
        Literal["running", "completed", "failed"] | None, Field(description="Run status")
    ] = None,
    graph_name: Annotated[str | None, Field(description="Graph name, e.g. research-agent")] = None,
    node: Annotated[str | None, Field(description="Runs that executed this node")] = None,
    error_type: Annotated[str | None, Field(description="Runs with an error of this type")] = None,
    thread_id: str | None = None,
    q: Annotated[
        str | None,
        Field(
            description="Free text over node names, errors, metadata and ids; every word "
            '(or "quoted phrase") must match'
        ),
    ] = None,
    last: Annotated[str | None, Field(description="Started in the last n m/h/d/w: 24h, 7d")] = None,
    started_after: Annotated[str | None, Field(description="ISO time, inclusive")] = None,
    started_before: Annotated[str | None, Field(description="ISO time, exclusive")] = None,
    sort: Annotated[
        str | None,
        Field(
            description="-started_at (default, newest first), started_at, [-]duration_ms, "
            "[-]total_tokens"
        ),
    ] = None,
    limit: Annotated[int, Field(description=f"Runs per page, 1 to {tools.MAX_RUNS}")] = 10,
    cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """The project's runs, newest first: status, duration, tokens, steps, errors and the
    first error of each. Filters combine; page on with next_cursor."""
    filters = {
        "status": status,
        "graph_name": graph_name,
        "node": node,
        "error_type": error_type,
        "thread_id": thread_id,
        "q": q,
        "last": last,
        "started_after": started_after,
        "started_before": started_before,
        "sort": sort,
        "cursor": cursor,
    }
    return tools.list_runs(key(), filters, limit)


@tool
def get_run(
    execution_id: ExecutionId,
    offset: Annotated[int, Field(description="First step of the step list (a next_offset)")] = 0,
) -> dict[str, Any]:
    """One run: its summary, its errors (node, type, message, step_index), time and tokens
    per node, and the step sequence as rows [index, node, duration_ms, tokens_used,
    success, error] (paged by next_offset)."""
    return tools.get_run(key(), execution_id, offset)


@tool
def get_step(
    execution_id: ExecutionId,
    index: Annotated[int, Field(description="The step's index (as get_run lists it)")],
    path: Annotated[
        str | None,
        Field(description="Read the value at this JSON Pointer whole, before and after the step"),
    ] = None,
    offset: Offset = 0,
) -> dict[str, Any]:
    """One step: node, duration, tokens, error, the states before and after (a large one by
    its keys and sizes) and what the step changed as JSON Pointer paths. Cut values are
    marked elided; read one with path (and offset for the next slice)."""
    return tools.get_step(key(), execution_id, index, path, offset)


@tool
def watch_path(execution_id: ExecutionId, path: Pointer, offset: Offset = 0) -> dict[str, Any]:
    """Which steps changed the value at a JSON Pointer, in order, with the value each left
    (first_changed: the step that first wrote it)."""
    return tools.watch_path(key(), execution_id, path, offset)


@tool
def search_steps(
    execution_id: ExecutionId,
    node: Annotated[str | None, Field(description="Steps of this node")] = None,
    error: Annotated[str | None, Field(description="Steps whose error contains this text")] = None,
    path: Annotated[
        str | None, Field(description="Steps whose state after has a value at this JSON Pointer")
    ] = None,
    value: Annotated[
        str | None, Field(description="With path: the value's JSON text contains this text")
    ] = None,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Steps of one run that match every criterion given (node name, error text, a value
    at a path after the step), in execution order."""
    return tools.search_steps(key(), execution_id, node, error, path, value, offset)


@tool
def compare_runs(
    a: Annotated[str, Field(description="Execution id of run a (say, the failed run)")],
    b: Annotated[str, Field(description="Execution id of run b (say, the last success)")],
    offset: Offset = 0,
) -> dict[str, Any]:
    """Two runs aligned step by step (the k-th execution of a node against the k-th),
    with inserted / missing steps counted, and the first aligned step where their states
    differ: run a's state against run b's there, as changes."""
    return tools.compare_runs(key(), a, b, offset)


GroupId = Annotated[int, Field(description="The failure group's id (from list_failure_groups)")]


@tool
def list_failure_groups(
    status: Annotated[
        Literal["new", "triaged", "resolved", "ignored"] | None, Field(description="Group status")
    ] = None,
    node: str | None = None,
    error_type: str | None = None,
    assignee: Annotated[str | None, Field(description="Assignee's username")] = None,
    limit: Annotated[int, Field(description=f"Groups per page, 1 to {tools.MAX_GROUPS}")] = 10,
    cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Failure groups (the same error, normalised, across runs), most recently seen first:
    message, count, status, assignee, the latest affected runs."""
    return tools.list_failure_groups(key(), status, node, error_type, assignee, limit, cursor)


@tool
def get_failure_group(group_id: GroupId) -> dict[str, Any]:
    """One failure group: message, a raw sample, counts, status, and its latest
    occurrences (run, the failing step's index, message)."""
    return tools.get_failure_group(key(), group_id)


@tool
def update_failure_group(
    group_id: GroupId,
    status: Annotated[
        Literal["new", "triaged", "resolved", "ignored"] | None, Field(description="New status")
    ] = None,
    assignee: Annotated[str | None, Field(description="Username of a project member")] = None,
    unassign: Annotated[bool, Field(description="Remove the assignee")] = False,
) -> dict[str, Any]:
    """Change a failure group's status and/or assignee (needs a write key); logged."""
    return tools.update_failure_group(key(), group_id, status, assignee, unassign)


@tool
def add_comment(
    execution_id: ExecutionId,
    body: Annotated[str, Field(description="Markdown; @username mentions a member")],
    index: Annotated[int | None, Field(description="Comment on this step")] = None,
    path: Annotated[
        str | None, Field(description="With index: comment on this JSON Pointer of the step")
    ] = None,
) -> dict[str, Any]:
    """Comment on a run, one of its steps, or a path of a step's state (needs a write
    key); the run's viewers see it live."""
    return tools.add_comment(key(), execution_id, body, index, path)


@server.resource(
    "run://{project}/{execution_id}",
    name="run",
    description="A run as Markdown: summary, errors with their steps, the node sequence "
    f"(elided in the middle when long); at most {tools.RESOURCE_MAX_CHARS} characters.",
    mime_type="text/markdown",
)
async def run_resource(project: str, execution_id: str) -> str:
    try:
        markdown: str = await database_sync_to_async(tools.run_resource)(
            key(), project, execution_id
        )
    except InputError as exc:
        raise ResourceNotFoundError(exc.rule) from None
    return markdown

"""A run as Markdown: the header, the errors with their steps, the node sequence, one
step's diff, within the size bound whatever the run, and never broken by what a trace
holds."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from rest_framework.test import APIClient

from traces.errors import InputError
from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.parsing import parse_trace
from traces.run_markdown import DEFAULT_MAX_CHARS, code, fenced, run_markdown

pytestmark = pytest.mark.django_db


def ingest(project: Project, doc: dict[str, Any] | bytes) -> Run:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    run, _ = ingest_trace(project, parse_trace(body))
    return run


def fixture_run(project: Project, fixtures_dir: Path, name: str) -> Run:
    return ingest(project, (fixtures_dir / f"{name}.json").read_bytes())


def escaped(text: str) -> str:
    """``text`` as markdown-it escapes it in HTML."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def rendered(markdown: str) -> str:
    """The HTML a GFM-like renderer makes of ``markdown`` (tables on)."""
    return MarkdownIt("commonmark").enable("table").render(markdown)


def test_the_header_names_the_run(project: Project, fixtures_dir: Path) -> None:
    run = fixture_run(project, fixtures_dir, "research_agent_success")
    text = run_markdown(run)
    assert text.startswith("# Run `research-agent`\n")
    for line in (
        f"- **Execution:** `{run.execution_id}`",
        "- **Status:** completed",
        f"- **Duration:** {run.duration_ms:,} ms",
        f"- **Tokens:** {run.total_tokens:,}",
        "- **Nodes:** 11",
        f"- **Started:** `{run.started_at_text}`",
        "- **Thread:** `session-42`",
    ):
        assert line in text
    assert "## Errors" not in text
    assert "## Node sequence (11 steps)" in text
    # A short run is listed whole, without the "left out" hint.
    assert len(re.findall(r"^\|", text, re.M)) == 2 + 11
    assert "left out" not in text


def test_errors_are_listed_with_the_step_each_belongs_to(
    project: Project, fixtures_dir: Path
) -> None:
    run = fixture_run(project, fixtures_dir, "tool_timeout_failure")
    text = run_markdown(run)
    assert "- **Status:** failed" in text
    assert "## Errors (1)\n1. step 4 · `retriever` · `Timeout`: " in text
    assert "`Timeout: GET https://example.org/doc/4 exceeded 30s`" in text
    assert "| 4 | `retriever` | 894 | 0 | **failed** |" in text


def test_an_error_without_index_belongs_to_the_last_failed_step_of_its_node(
    project: Project, fixtures_dir: Path
) -> None:
    doc = json.loads((fixtures_dir / "tool_timeout_failure.json").read_text())
    doc["errors"][0]["execution_index"] = None
    doc["errors"].append({**doc["errors"][0], "node": "nowhere", "message": "lost"})
    text = run_markdown(ingest(project, doc))
    assert "1. step 4 · `retriever`" in text
    assert "2. no step · `nowhere`" in text


def test_a_step_shows_its_changes_as_json_pointer_paths(
    project: Project, fixtures_dir: Path
) -> None:
    run = fixture_run(project, fixtures_dir, "research_agent_success")
    doc = json.loads((fixtures_dir / "research_agent_success.json").read_text())
    node = doc["nodes_executed"][1]
    added = [k for k in node["state_after"] if k not in node["state_before"]]
    changed = [
        k
        for k in node["state_after"]
        if k in node["state_before"] and node["state_after"][k] != node["state_before"][k]
    ]
    assert added or changed
    text = run_markdown(run, 1)
    assert f"## Step 1 · `{node['node']}` · ok" in text
    assert "### What it changed (" in text
    for key in added + changed:
        assert re.search(rf"^- (added|replaced) `/{re.escape(key)}[/`]", text, re.M), key
    # The selected step is marked in the sequence.
    assert "| **1** | `retriever` |" in text
    assert "← this step" in text


def test_a_step_without_state_after_says_so(project: Project, fixtures_dir: Path) -> None:
    run = fixture_run(project, fixtures_dir, "tool_timeout_failure")
    text = run_markdown(run, 4)
    assert "## Step 4 · `retriever` · failed" in text
    assert "No state after: the node ended without writing one." in text
    assert "Error: `Timeout: GET https://example.org/doc/4 exceeded 30s`" in text


def test_a_missing_step_is_a_404_naming_it(project: Project, fixtures_dir: Path) -> None:
    run = fixture_run(project, fixtures_dir, "tool_timeout_failure")
    with pytest.raises(InputError) as refused:
        run_markdown(run, 99)
    assert refused.value.status == 404
    assert refused.value.path == "step"
    assert "no step 99" in refused.value.rule


@pytest.mark.parametrize("step", [None, 0, 1000, 1999])
def test_the_2000_node_run_stays_within_the_bound(
    project: Project, fixtures_dir: Path, step: int | None
) -> None:
    run = fixture_run(project, fixtures_dir, "long_loop_2000")
    text = run_markdown(run, step)
    assert len(text) <= DEFAULT_MAX_CHARS
    assert "## Node sequence (2,000 steps)" in text
    # The start, the end and (when asked for) the selected step with its neighbours.
    assert re.search(r"^\| \**0\** \| `planner` \|", text, re.M)
    assert re.search(r"^\| \**1999\** \| ", text, re.M)
    if step is not None:
        assert f"| **{step}** |" in text
        if 0 < step < 1999:
            assert f"\n| {step - 1} | " in text
            assert f"\n| {step + 1} | " in text
    left_out = sum(int(n.replace(",", "")) for n in re.findall(r"\*([\d,]+) steps left out", text))
    shown = len(re.findall(r"^\| \**\d+\**? \| ", text, re.M))
    assert shown + left_out == 2000
    assert shown > 20
    assert "`GET /api/v1/runs/" in text
    assert "?format=md&step=N" in text


def test_the_bound_holds_for_smaller_budgets_and_keeps_the_first_failure(
    project: Project, fixtures_dir: Path
) -> None:
    doc = json.loads((fixtures_dir / "long_loop_2000.json").read_text())
    doc["execution_id"] = "failing-long-loop"
    doc["nodes_executed"][1200]["success"] = False
    doc["nodes_executed"][1200]["error_message"] = "boom " * 200
    doc["errors"] = [
        {"node": "reader", "message": f"error {i} " + "x" * 500, "execution_index": i}
        for i in range(40)
    ]
    run = ingest(project, doc)
    for budget in (2_000, 4_000, DEFAULT_MAX_CHARS):
        text = run_markdown(run, 1500, max_chars=budget)
        assert len(text) <= budget, budget
        assert "| 1200 | " in text
        assert "| **1500** |" in text
        assert "more errors" in text


def test_markdown_in_states_and_names_does_not_break_the_markdown(project: Project) -> None:
    nasty = "a|b `c` ``` *d* <script>"
    doc = {
        "execution_id": "nasty",
        "thread_id": "t|`x`",
        "metadata": {"graph_name": "g|`h`"},
        "completed": True,
        "nodes_executed": [
            {
                "node": nasty,
                "duration_ms": 1,
                "tokens_used": 2,
                "success": True,
                "index": 0,
                "state_before": {"k|`": "old"},
                "state_after": {"k|`": "new | `x`", "long": "```\n" + "y" * 2_000},
            }
        ],
    }
    text = run_markdown(ingest(project, doc), 0)
    page = rendered(text)
    # One table row of five cells, its node name whole in one code cell.
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<td") == 5
    assert f"<td><code>{escaped(nasty)}</code></td>" in body
    # The diff's paths and values come out as written, the long value in a fenced block.
    assert f"<code>/k|`</code>: <code>{escaped(json.dumps('old'))}</code>" in page
    assert escaped(json.dumps("new | `x`")) in page
    assert '<pre><code class="language-json">' in page
    assert "(cut: 2," in text
    assert "<script>" not in page
    assert "<h1>Run <code>g|`h`</code></h1>" in page


def test_code_spans_and_fences_survive_any_backticks() -> None:
    for text in ["plain", "`", "a`b", "``x``", " padded ", "a|b"]:
        page = MarkdownIt("commonmark").render(code(text))
        assert f"<code>{escaped(text)}</code>" in page, text
    block = fenced('["```", "````"]', "json")
    page = MarkdownIt("commonmark").render(block)
    assert escaped('["```", "````"]') in page


def test_the_api_answers_markdown_for_format_md(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    run = fixture_run(project, fixtures_dir, "tool_timeout_failure")
    url = f"/api/v1/runs/{run.execution_id}"
    response = api.get(url, {"format": "md"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.content.decode() == run_markdown(run)
    with_step = api.get(url, {"format": "md", "step": "4"})
    assert "## Step 4 · `retriever` · failed" in with_step.content.decode()
    by_accept = api.get(url, HTTP_ACCEPT="text/markdown")
    assert by_accept["Content-Type"] == "text/markdown; charset=utf-8"
    # The JSON answer is unchanged.
    plain = api.get(url)
    assert plain["Content-Type"] == "application/json"
    assert plain.json()["execution_id"] == run.execution_id
    assert len(plain.json()["nodes"]) == 5


def test_the_markdown_api_refuses_a_bad_or_missing_step_in_json(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    run = fixture_run(project, fixtures_dir, "tool_timeout_failure")
    url = f"/api/v1/runs/{run.execution_id}"
    missing = api.get(url, {"format": "md", "step": "99"})
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert missing.json()["path"] == "step"
    assert "no step 99" in missing.json()["detail"]
    for bad in ("x", "-1", "1.5", str(2**64)):
        refused = api.get(url, {"format": "md", "step": bad})
        assert refused.status_code == 400, bad
        assert refused.json()["path"] == "step"
    no_run = api.get("/api/v1/runs/nope", {"format": "md"})
    assert no_run.status_code == 404
    assert no_run.json()["detail"] == "run 'nope': not found"


def test_the_schema_documents_the_markdown_answer() -> None:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    get_run = schema["paths"]["/api/v1/runs/{execution_id}"]["get"]
    assert "text/markdown" in get_run["responses"]["200"]["content"]
    assert {"format", "step"} <= {p["name"] for p in get_run["parameters"]}

"""Run-page benchmark: time to interactive in headless Chromium against a real Daphne on
PostgreSQL, for the shared ``long_loop_2000.json`` fixture and generated 10,000- and
100,000-node runs.

Run from the project root::

    .venv/bin/python benchmarks/ui.py [--loads 7]

It drops and recreates its own PostgreSQL database (``UIBENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/dashflow_uibench``), migrates it, ingests the first two
runs through ``POST /api/v1/traces`` and the 100,000-node one (some 150 MB of JSON, over
the API's body limit) through ``manage.py import_traces``, which calls the same
``ingest_trace``; starts one Daphne, and loads each run page ``--loads``
times, each in a fresh browser context (a cold cache: what a teammate opening a link
sees), then as many times again in one context (a warm cache).

"Interactive" is what the page itself marks (``static/visualizer/run.js``): the
``dashflow:ready`` performance mark, set once the timeline is drawn and the first step is
shown in the step panel; its ``startTime`` is milliseconds since navigation start. The
page also marks ``dashflow:charts`` (breakdown and graph drawn too).

Then the step panel (issue 13, point 2), measured in the page from the action to the
next frame after the panel changed: selecting step 1,500 of the 10,000-node run until
its state tree shows (target 200 ms); on a third run whose states are 1 MB each
(``large_state_trace``), selecting its step until the tree shows, opening the state's
largest node (target 300 ms) and "show all" of its entries.

And the 100,000-node run (issue 16, point 2): selecting step 50,000 (target 200 ms),
searching the step list (``node:critic``, free text ``timeout``: from the keystroke to
the next frame) and watching a path across all steps (from submitting the path to its
answer shown, target 2 s). The tables go to ``benchmarks/results/ui.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from databases import recreate_database

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, so the project root (tests.servers, the Django apps) is not on the path.
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser, sync_playwright  # noqa: E402

from tests.servers import daphne, server_env  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "dashflow" / "long_loop_2000.json"
PLOTLY = ROOT / "static" / "vendor" / "plotly" / "plotly-dashflow.min.js"
RESULTS = ROOT / "benchmarks" / "results" / "ui.md"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/dashflow_uibench"
PASSWORD = "bench-password-1"
# The targets (issue 4, item 5), in ms from navigation start.
TARGETS = {"long_loop_2000": 1500.0, "generated_10000": 3000.0, "generated_100000": 3000.0}
# Issue 13's step panel targets, in ms from the action to the next frame.
STEP_TARGETS = {"select step 1,500": 200.0, "open the largest node": 300.0}
SELECTED = 1500
# Issue 16's targets on the 100,000-node run, in ms from the action to the answer shown.
HUGE_SELECTED = 50_000
HUGE_TARGETS = {
    "select step 50,000": 200.0,
    "search `node:critic`": 200.0,
    "search `timeout`": 200.0,
    "watch `/iteration` (changed by every critic)": 2000.0,
    "watch `/question` (never changed)": 2000.0,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def generated_trace(nodes: int, execution_id: str) -> dict[str, Any]:
    """A research loop of ``nodes`` executions in DashFlow's JSON form: planner, then
    retriever → reader → critic over and over, then writer. The state keeps a rolling
    window of notes so each snapshot stays small (~0.5 KB) however long the run is; a
    few steps fail along the way so the errors panel and the red bars have something."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    cursor = start
    loop = ["retriever", "reader", "critic"]
    state: dict[str, Any] = {"question": "A very long research loop", "iteration": 0, "notes": []}
    executions = []
    errors = []
    for i in range(nodes):
        node = "planner" if i == 0 else "writer" if i == nodes - 1 else loop[(i - 1) % 3]
        before = state
        after = {**state, "notes": [*state["notes"][-4:], f"note {i} from {node}"]}
        if node == "critic":
            after["iteration"] = state["iteration"] + 1
        success = i % 997 != 500
        duration = 40 + (i * 37) % 400
        executions.append(
            {
                "node": node,
                "duration_ms": duration,
                "tokens_used": 0 if node == "retriever" else 200 + i % 300,
                "state_before": before,
                "state_after": after if success else None,
                "tools_called": ["web_search"] if node == "retriever" else [],
                "success": success,
                "error_message": None if success else f"Timeout after {duration} ms",
                "index": i,
                "started_at": cursor.isoformat(timespec="milliseconds"),
                "metadata": {},
            }
        )
        if not success:
            errors.append(
                {
                    "node": node,
                    "message": f"Timeout after {duration} ms",
                    "error_type": "Timeout",
                    "state_at_error": before,
                    "timestamp": cursor.isoformat(timespec="milliseconds"),
                    "execution_index": i,
                    "recoverable": True,
                    "retry_attempted": True,
                    "context": None,
                    "metadata": {},
                }
            )
        else:
            state = after
        cursor += timedelta(milliseconds=duration + 5)
    return {
        "thread_id": "bench-thread",
        "execution_id": execution_id,
        "nodes_executed": executions,
        "total_duration_ms": int((cursor - start).total_seconds() * 1000),
        "total_tokens": sum(e["tokens_used"] for e in executions),
        "errors": errors,
        "completed": True,
        "started_at": start.isoformat(timespec="milliseconds"),
        "ended_at": cursor.isoformat(timespec="milliseconds"),
        "final_state": state,
        "metadata": {"graph_name": "generated-loop"},
    }


def large_state_trace(execution_id: str, target_bytes: int = 1_000_000) -> dict[str, Any]:
    """Three steps of a chat agent whose state is about ``target_bytes`` of JSON (under
    the 1 MB gate, STATE_INLINE_MAX_BYTES): some 750 messages of about 1 KB, 300
    retrieved documents and a few scalars. The middle step adds one message, so its
    tree opens ``/messages`` at the new one; ``/documents`` (the largest unchanged
    node) starts closed."""
    text = "The quick brown fox jumps over the lazy dog. " * 20  # 900 characters
    documents = [
        {"id": f"doc-{i}", "url": f"https://example.org/doc/{i}", "score": i / 300, "text": text}
        for i in range(300)
    ]
    state: dict[str, Any] = {"question": "A very long conversation", "documents": documents}
    messages: list[dict[str, Any]] = []
    while len(json.dumps({**state, "messages": messages})) < target_bytes - 2_000:
        role = "human" if len(messages) % 2 == 0 else "ai"
        messages.append({"type": role, "content": f"{len(messages)}: {text}"})
    state["messages"] = messages
    grown = {**state, "messages": [*messages, {"type": "ai", "content": "Done."}]}
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    steps = [("load", state, state), ("agent", state, grown), ("finish", grown, grown)]
    return {
        "thread_id": "bench-thread",
        "execution_id": execution_id,
        "nodes_executed": [
            {
                "node": node,
                "duration_ms": 100,
                "tokens_used": 10,
                "state_before": before,
                "state_after": after,
                "tools_called": [],
                "success": True,
                "error_message": None,
                "index": i,
                "started_at": (start + timedelta(seconds=i)).isoformat(timespec="milliseconds"),
                "metadata": {},
            }
            for i, (node, before, after) in enumerate(steps)
        ],
        "total_duration_ms": 300,
        "total_tokens": 30,
        "errors": [],
        "completed": True,
        "started_at": start.isoformat(timespec="milliseconds"),
        "ended_at": (start + timedelta(seconds=3)).isoformat(timespec="milliseconds"),
        "final_state": grown,
        "metadata": {"graph_name": "large-state"},
    }


def bench_database(db_url: str, secret: str) -> tuple[dict[str, str], str]:
    """A fresh, migrated database with project ``bench``: the server's environment, and
    an API key of the project (a viewer ``bench`` signs in with ``PASSWORD``)."""
    recreate_database(db_url)
    env = server_env(db_url, DEBUG="false", SECRET_KEY=secret, LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput")
    key = manage(env, "create_api_key", "--project", "bench")
    manage(env, "create_user", "bench", "--project", "bench", "--role", "viewer",
           "--password", PASSWORD)  # fmt: skip
    return env, key


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


READ_MARKS = """() => {
  const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
  const nav = performance.getEntriesByType("navigation")[0];
  return {ready: mark("dashflow:ready"), charts: mark("dashflow:charts"),
          plotly: mark("dashflow:plotly"), html: nav.responseEnd,
          html_bytes: nav.transferSize};
}"""


def load_once(page: Any, url: str) -> dict[str, float]:
    page.goto(url)
    page.locator("body[data-ready='true']").wait_for(timeout=30_000)
    page.locator("body[data-charts='true']").wait_for(timeout=30_000)
    marks: dict[str, float] = page.evaluate(READ_MARKS)
    return marks


# In the page: run `action` (selecting a step by its link, clicking a button) and time
# until `done()` holds after a change in the step panel, then until the next frame is
# drawn. A MutationObserver, not polling, so the figure is not rounded up to a poll.
TIME_ACTION = """async ([action, index, path]) => {
  const tree = () => document.querySelector("#step-states .jt");
  const title = () => document.getElementById("step-title").textContent;
  const node = () => document.querySelector(`#step-states .jt-node[data-path="${path}"]`);
  const checks = {
    select: () => title().startsWith(`Step #${index} ·`) && tree(),
    open: () => node()?.querySelector(":scope > .jt-children > .jt-node"),
    all: () => node()?.querySelector(":scope > .jt-children") &&
      !node().querySelector(":scope > .jt-children > .jt-gap"),
  };
  const done = checks[action];
  const started = performance.now();
  const shown = new Promise((resolve, reject) => {
    const observer = new MutationObserver(() => {
      if (done()) { observer.disconnect(); resolve(performance.now()); }
    });
    const fail = () => { observer.disconnect(); reject(new Error(`${action}: not in 30 s`)); };
    setTimeout(fail, 30000);
    observer.observe(document.getElementById("step-panel"),
      { subtree: true, childList: true, characterData: true });
  });
  if (action === "select") location.hash = `#step=${index}`;
  else if (action === "open") node().querySelector(":scope > .jt-row > .jt-toggle").click();
  else node().querySelector(":scope > .jt-children > .jt-gap button:last-child").click();
  const at = await shown;
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  return { shown: at - started, painted: performance.now() - started };
}"""


def sign_in(context: Any, origin: str) -> Any:
    page = context.new_page()
    page.goto(f"{origin}/login/")
    page.fill("#id_username", "bench")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{origin}/")
    return page


def time_action(page: Any, action: str, index: int = 0, path: str = "") -> float:
    took: dict[str, float] = page.evaluate(TIME_ACTION, [action, index, path])
    return took["painted"]


# In the page: type `needle` into the step list's search, time to the next frame (the
# search filters and renders synchronously on "input"); the count shown then.
TIME_SEARCH = """async (needle) => {
  const search = document.getElementById("step-filter");
  const started = performance.now();
  search.value = needle;
  search.dispatchEvent(new Event("input"));
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  return { painted: performance.now() - started,
           count: document.getElementById("steps-count").textContent };
}"""

# In the page: submit `pointer` to "Watch a path", time until its answer is shown (the
# result line names the path once the answer is placed), then the next frame.
TIME_WATCH = """async (pointer) => {
  const result = document.getElementById("watch-result");
  const done = () => result.textContent.startsWith(`${pointer}:`);
  const started = performance.now();
  const shown = new Promise((resolve, reject) => {
    const observer = new MutationObserver(() => {
      if (done()) { observer.disconnect(); resolve(performance.now()); }
    });
    setTimeout(() => { observer.disconnect(); reject(new Error(`watch: not in 60 s`)); }, 60000);
    observer.observe(result, { subtree: true, childList: true, characterData: true });
  });
  document.getElementById("watch-path").value = pointer;
  document.getElementById("watch-form").requestSubmit();
  await shown;
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  return { painted: performance.now() - started, text: result.textContent };
}"""


def measure_huge(chromium: Browser, origin: str, path: str, loads: int) -> dict[str, list[float]]:
    """Issue 16's figures on the 100,000-node run, each over ``loads`` fresh loads."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, origin)
    out: dict[str, list[float]] = {what: [] for what in HUGE_TARGETS}
    for _ in range(loads):
        load_once(page, origin + path)
        out["select step 50,000"].append(time_action(page, "select", HUGE_SELECTED))
        for needle in ("node:critic", "timeout"):
            took = page.evaluate(TIME_SEARCH, needle)
            assert "match" in took["count"], took
            out[f"search `{needle}`"].append(took["painted"])
        page.evaluate(TIME_SEARCH, "")
        for pointer, what in (
            ("/iteration", "watch `/iteration` (changed by every critic)"),
            ("/question", "watch `/question` (never changed)"),
        ):
            took = page.evaluate(TIME_WATCH, pointer)
            out[what].append(took["painted"])
        log(f"huge: {took['text'][:120]}")
    context.close()
    return out


def import_trace(env: dict[str, str], document: dict[str, Any]) -> tuple[float, int]:
    """Store ``document`` in project ``bench`` through ``manage.py import_traces`` (the
    command reads the file, ``parse_trace``, ``ingest_trace``): seconds and JSON bytes."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as file:
        file.write(json.dumps(document).encode())
        file.flush()
        size = file.tell()
        started = time.perf_counter()
        manage(env, "import_traces", file.name, "--project", "bench")
        return time.perf_counter() - started, size


def measure_steps(
    chromium: Browser, origin: str, long_path: str, large_path: str, loads: int
) -> dict[str, list[float]]:
    """The step panel's figures, each over ``loads`` fresh loads of its page."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, origin)
    out: dict[str, list[float]] = {
        "select step 1,500": [],
        "select the 1 MB step": [],
        "open the largest node": [],
        "show all of it": [],
    }
    for _ in range(loads):
        load_once(page, origin + long_path)
        out["select step 1,500"].append(time_action(page, "select", SELECTED))
        load_once(page, origin + large_path)
        out["select the 1 MB step"].append(time_action(page, "select", 1))
        out["open the largest node"].append(time_action(page, "open", path="/documents"))
        out["show all of it"].append(time_action(page, "all", path="/documents"))
    context.close()
    return out


def measure(chromium: Browser, origin: str, path: str, loads: int) -> dict[str, Any]:
    cold = []
    for _ in range(loads):
        context = chromium.new_context(viewport={"width": 1360, "height": 900})
        page = sign_in(context, origin)
        cold.append(load_once(page, origin + path))
        context.close()
    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    page = sign_in(context, origin)
    load_once(page, origin + path)  # fills the cache
    warm = [load_once(page, origin + path) for _ in range(loads)]
    context.close()
    return {"cold": cold, "warm": warm}


def median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=7, help="page loads per run and cache")
    parser.add_argument("--nodes", type=int, default=10_000, help="size of the generated run")
    parser.add_argument(
        "--huge", type=int, default=100_000, help="size of the imported run (0: none)"
    )
    args = parser.parse_args()

    load = os.getloadavg()
    db_url = os.environ.get("UIBENCH_DATABASE_URL", DEFAULT_DB)
    log(f"database {db_url} (dropped and recreated)")
    env, key = bench_database(db_url, "ui-benchmark-only")

    generated_id = f"generated-{args.nodes}"
    runs = {
        "long_loop_2000": FIXTURE.read_bytes(),
        f"generated_{args.nodes}": json.dumps(generated_trace(args.nodes, generated_id)).encode(),
    }
    large_trace = large_state_trace("large-state")
    # Its states must stay under the gate, or the panel shows a summary and no tree.
    state_bytes = len(json.dumps(large_trace["final_state"]))
    assert state_bytes <= 1024 * 1024, state_bytes
    large = json.dumps(large_trace).encode()
    results: dict[str, dict[str, Any]] = {}
    paths = {}
    huge_ingest = None
    if args.huge:
        huge_id = f"generated-{args.huge}"
        took, size = import_trace(env, generated_trace(args.huge, huge_id))
        huge_ingest = (args.huge, size, took)
        log(f"imported generated_{args.huge} ({size / 1e6:.0f} MB) in {took:.1f} s")
    with daphne(env) as server, browser() as chromium:
        for name, body in runs.items():
            started = time.perf_counter()
            response = server.request(
                "POST", "/api/v1/traces", body,
                {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                timeout=300,
            )  # fmt: skip
            assert response.status in (200, 201), response.body[:500]
            execution_id = response.json()["execution_id"]
            took = time.perf_counter() - started
            log(f"ingested {name} ({len(body) / 1e6:.1f} MB) in {took:.1f} s")
            paths[name] = f"/projects/bench/runs/{execution_id}/"
        if huge_ingest is not None:
            paths[f"generated_{args.huge}"] = f"/projects/bench/runs/generated-{args.huge}/"
        for name, path in paths.items():
            log(f"loading {path} {args.loads} times cold, {args.loads} warm")
            results[name] = measure(chromium, server.origin, path, args.loads)
            log(
                f"{name}: ready {median(results[name]['cold'], 'ready'):.0f} ms cold, "
                f"{median(results[name]['warm'], 'ready'):.0f} ms warm"
            )
        response = server.request(
            "POST", "/api/v1/traces", large,
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=300,
        )  # fmt: skip
        assert response.status in (200, 201), response.body[:500]
        large_path = f"/projects/bench/runs/{response.json()['execution_id']}/#step=0"
        long_path = paths[f"generated_{args.nodes}"]
        log(f"step panel: step {SELECTED} of {long_path}, the 1 MB state of {large_path}")
        steps = measure_steps(chromium, server.origin, long_path, large_path, args.loads)
        if args.huge:
            huge_path = paths[f"generated_{args.huge}"]
            log(f"on {huge_path}: select, search, watch")
            steps.update(measure_huge(chromium, server.origin, huge_path, args.loads))
        for what, samples in steps.items():
            log(f"{what}: {statistics.median(samples):.0f} ms")
    write_results(results, steps, state_bytes, args.loads, load, huge_ingest)


def chromium_version() -> str:
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def write_results(
    results: dict[str, dict[str, Any]],
    steps: dict[str, list[float]],
    state_bytes: int,
    loads: int,
    load: tuple[float, float, float],
    huge_ingest: tuple[int, int, float] | None,
) -> None:
    size = PLOTLY.stat().st_size
    import gzip

    gzipped = len(gzip.compress(PLOTLY.read_bytes(), 6))
    lines = [
        "# Run page: time to interactive",
        "",
        f"`benchmarks/ui.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other work, headless Chromium "
        f"({chromium_version()}),"
        f" Playwright {version('playwright')}, one Daphne on PostgreSQL (DEBUG off); load "
        f"average {load[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (this "
        "machine is shared: a load above 2 means other work competed for both cores).",
        "",
        "Interactive = the page's `dashflow:ready` mark: the timeline is drawn and the first "
        "step is shown in the step panel (ms since navigation start). Charts = the breakdown "
        "and the transition graph drawn too. Median of "
        f"{loads} loads; cold = a fresh browser context per load (empty cache), warm = "
        "reloads in one context.",
        "",
        *(
            [
                f"The {huge_ingest[0]:,}-node run ({huge_ingest[1] / 1e6:.0f} MB of JSON) was "
                f"stored by `manage.py import_traces` in {huge_ingest[2]:.1f} s (the command's "
                "wall time: start, read, parse, ingest); `benchmarks/ingest.py` measures that "
                "ingest alone.",
                "",
            ]
            if huge_ingest
            else []
        ),
        "| run | cache | HTML + page data | HTML ms | Plotly parsed ms | interactive ms "
        "(median, min to max) | charts ms | target | pass |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, by_cache in results.items():
        target = TARGETS.get(name, TARGETS["generated_10000"])
        for cache, samples in by_cache.items():
            ready = median(samples, "ready")
            lo = min(s["ready"] for s in samples)
            hi = max(s["ready"] for s in samples)
            html_kb = max(s["html_bytes"] for s in samples) / 1024
            lines.append(
                f"| {name} | {cache} | {html_kb:,.0f} KB | {median(samples, 'html'):.0f} | "
                f"{median(samples, 'plotly'):.0f} | **{ready:.0f}** ({lo:.0f} to {hi:.0f}) | "
                f"{median(samples, 'charts'):.0f} | ≤ {target:.0f} | "
                f"{'yes' if ready <= target else 'NO'} |"
            )
    lines += [
        "",
        f"Plotly bundle: `static/vendor/plotly/plotly-dashflow.min.js`, {size / 1e6:.2f} MB "
        f"({gzipped / 1e6:.2f} MB gzipped; the full `plotly.min.js` is 4.8 MB), built by "
        "`tools/plotly/build.sh` with only the trace types the pages use.",
        "",
        "## Step panel: the state tree",
        "",
        "Measured in the page (1440x900, the page loaded afresh before each sample), from the "
        "action to the next frame after the panel changed: selecting step 1,500 of the "
        f"10,000-node run by its link (`#step=1500`) until its state tree shows; on a run "
        f"whose states are {state_bytes / 1e6:.2f} MB of JSON each "
        "(`large_state_trace`: about 750 messages and 300 documents), selecting the step "
        "that adds a message until its tree shows (the step's answer holds both states: "
        "fetched, parsed and the tree's first level and changed paths built), opening "
        '`/documents` (the largest node: its first 100 entries are built), and "show all" '
        "of its 300. "
        f"Median of {loads}. On the {huge_ingest[0] if huge_ingest else 0:,}-node run "
        "(issue 16): selecting step 50,000 the same way; typing a search into the step list "
        "(the keystroke to the next frame: the list filtered and drawn); watching a path "
        "(submitting it to its answer shown: the server reads the path in every step's "
        "state after).",
        "",
        "| action | ms (median, min to max) | target | pass |",
        "|---|---:|---:|---|",
    ]
    for what, samples in steps.items():
        ms = statistics.median(samples)
        goal = STEP_TARGETS.get(what, HUGE_TARGETS.get(what))
        verdict = "" if goal is None else ("yes" if ms <= goal else "NO")
        lines.append(
            f"| {what} | **{ms:.0f}** ({min(samples):.0f} to {max(samples):.0f}) | "
            f"{'' if goal is None else f'≤ {goal:.0f}'} | {verdict} |"
        )
    lines.append("")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""State-diff benchmark: ``traces.jsondiff.diff`` on one node's change to a large state.

Run from the project root::

    .venv/bin/python benchmarks/diff.py

It builds a realistic agent state of about 1 MB (2,000 messages, retrieved documents with
text, nested config and scratch space) and one of about 100 KB, applies what a node
typically does (append a message, edit a few nested keys, bump a counter), and times
``diff`` against the targets of the state-diff issue, with ``jsonpatch.make_patch`` on
the same pair for comparison. ``before`` and ``after`` are decoded separately from JSON,
as the app loads them from two snapshots, so no subtree is shared by identity.

The table goes to ``benchmarks/results/diff.md`` and to stdout.
"""

from __future__ import annotations

import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from traces.jsondiff import diff  # noqa: E402  (needs the project root on sys.path)

RESULTS = ROOT / "benchmarks" / "results" / "diff.md"
COMMAND = ".venv/bin/python benchmarks/diff.py"
WARMUP = 5
RUNS = 50
# jsonpatch is a comparison, not a target; fewer runs keep the benchmark short.
JSONPATCH_RUNS = 11

# Words for message and document text, so strings vary as real ones do.
VOCABULARY = (
    "agent graph node state message tool call retrieve document answer plan step loop "
    "async rust lifetime borrow future runtime tokio channel stream error retry timeout "
    "summary source score token model prompt context window budget review"
)
WORDS = VOCABULARY.split()


@dataclass(frozen=True)
class Case:
    name: str
    messages: int
    documents: int
    target_ms: float
    # False: the node returned the state unchanged, the case where every byte must be
    # compared (a changed subtree is rejected at its first difference).
    changed: bool = True


CASES = [
    Case("~1 MB state, node change", messages=2000, documents=100, target_ms=20.0),
    Case("~100 KB state, node change", messages=200, documents=10, target_ms=2.0),
    Case("~1 MB state, unchanged", messages=2000, documents=100, target_ms=20.0, changed=False),
    Case("~100 KB state, unchanged", messages=200, documents=10, target_ms=2.0, changed=False),
]
DOC_WORDS = 420


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def build_state(case: Case, rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for i in range(case.messages):
        role = ("user", "assistant", "tool")[i % 3]
        message: dict[str, Any] = {
            "id": f"msg-{i:05d}",
            "role": role,
            "content": text(rng, rng.randint(15, 45)),
            "metadata": {"tokens": rng.randint(5, 400), "latency_ms": rng.random() * 900},
        }
        if role == "assistant":
            message["tool_calls"] = [
                {"name": "search", "arguments": {"query": text(rng, 4), "top_k": 5}}
            ]
        if role == "tool":
            message["name"] = "search"
            message["status"] = "ok"
        messages.append(message)
    documents = [
        {
            "url": f"https://example.org/doc/{i}",
            "title": text(rng, 6),
            "score": round(rng.random(), 3),
            "text": text(rng, DOC_WORDS),
            "chunks": [{"start": j * 512, "end": (j + 1) * 512} for j in range(4)],
        }
        for i in range(case.documents)
    ]
    return {
        "question": "How do Rust lifetimes interact with async functions?",
        "plan": ["search background", "read top sources", "draft answer", "review"],
        "messages": messages,
        "documents": documents,
        "notes": [text(rng, 12) for _ in range(20)],
        "config": {
            "model": {"name": "gpt-4o", "temperature": 0.2, "max_tokens": 2048},
            "retrieval": {"top_k": 5, "rerank": True, "filters": {"lang": "en", "year": 2025}},
        },
        "scratch": {"current_doc": 3, "seen_urls": [d["url"] for d in documents[:10]]},
        "usage": {"prompt_tokens": 120_000, "completion_tokens": 31_000},
        "iteration": 41,
        "answer": None,
    }


def node_change(state: dict[str, Any], rng: random.Random) -> None:
    """What a reader/writer node does in one step."""
    state["messages"].append(
        {
            "id": f"msg-{len(state['messages']):05d}",
            "role": "assistant",
            "content": text(rng, 40),
            "metadata": {"tokens": 180, "latency_ms": 812.5},
        }
    )
    state["config"]["retrieval"]["top_k"] = 8
    state["scratch"]["current_doc"] = 4
    state["scratch"]["seen_urls"].append("https://example.org/doc/new")
    state["documents"][2]["score"] = 0.912
    state["usage"]["completion_tokens"] += 180
    state["iteration"] += 1


def median_ms(fn: Callable[[], object], warmup: int, runs: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    # The collector would otherwise fire inside some runs (diff allocates) and not others.
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
    finally:
        gc.enable()
    return statistics.median(times), min(times)


@dataclass(frozen=True)
class Result:
    case: Case
    before_bytes: int
    after_bytes: int
    changes: int
    diff_median: float
    diff_min: float
    patch_ops: int
    patch_median: float

    @property
    def passed(self) -> bool:
        return self.diff_median <= self.case.target_ms


def measure(case: Case) -> Result:
    rng = random.Random(2026)
    state = build_state(case, rng)
    before_json = msgspec.json.encode(state)
    if case.changed:
        node_change(state, rng)
    after_json = msgspec.json.encode(state)
    before = msgspec.json.decode(before_json)
    after = msgspec.json.decode(after_json)

    changes = diff(before, after)
    diff_median, diff_min = median_ms(lambda: diff(before, after), WARMUP, RUNS)
    patch = jsonpatch.make_patch(before, after)
    patch_median, _ = median_ms(lambda: jsonpatch.make_patch(before, after), 1, JSONPATCH_RUNS)
    return Result(
        case=case,
        before_bytes=len(before_json),
        after_bytes=len(after_json),
        changes=len(changes),
        diff_median=diff_median,
        diff_min=diff_min,
        patch_ops=len(list(patch)),
        patch_median=patch_median,
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu unknown"


def render(results: list[Result]) -> str:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# State-diff benchmark",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {platform.system()}"
        f" {platform.machine()}, {cpu_model()},"
        f" Python {platform.python_version()}, msgspec {msgspec.__version__},"
        f" jsonpatch {jsonpatch.__version__}; load average {load} (1/5/15 min) when it"
        " finished",
        f"- Command: `{COMMAND}` (from the project root)",
        "- Node change: one message appended, two nested keys edited, a URL appended to a"
        " nested list, a document's score edited, two counters bumped; unchanged: the same"
        " state before and after (decoded twice)",
        f"- `diff`: median (and min) of {RUNS} runs after {WARMUP} warm-up runs, garbage"
        f" collector off while timing; `jsonpatch.make_patch`: median of {JSONPATCH_RUNS}",
        "",
        "| State | before / after (JSON bytes) | `diff` changes | `diff` median (min) |"
        " Target | Result | `jsonpatch.make_patch` ops | `make_patch` median | speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.case.name} ({r.case.messages:,} messages, {r.case.documents} documents)"
            f" | {r.before_bytes:,} / {r.after_bytes:,} | {r.changes}"
            f" | {r.diff_median:.2f} ms ({r.diff_min:.2f} ms) | ≤ {r.case.target_ms:g} ms"
            f" | {'PASS' if r.passed else 'FAIL'} | {r.patch_ops}"
            f" | {r.patch_median:.1f} ms | {r.patch_median / r.diff_median:.0f}x |"
        )
    lines += [
        "",
        "`before` and `after` are decoded separately from JSON (as the app loads two"
        " snapshots), so equal subtrees are found by comparison, never by identity.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    results = [measure(case) for case in CASES]
    table = render(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table, encoding="utf-8")
    print(table)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

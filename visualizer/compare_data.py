"""The compare page's data: the comparison's summary and its rows as columns (one list
per field), the two-lane timeline, and the URLs its script asks.

Columns rather than a dict per row, as the run page's data (``run_data.columns``): two
10,000-step runs are ~0.5 MB of JSON instead of ~3.5 MB, which the browser parses in a
fraction of the time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.urls import reverse

from traces import compare
from traces.models import Run

from . import links
from .compare_charts import compare_timeline_figure

# The fields of a row as they are; each side's step is cut to its index and outcome.
ROW_FIELDS = (
    "kind",
    "repeated",
    "node",
    "occurrence",
    "duration_delta_ms",
    "tokens_delta",
    "same_state",
)


def pair_columns(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """``comparison_json``'s rows as columns; a side's step is its index (``a``, ``b``)
    and outcome (``a_ok``, ``b_ok``), None where the step ran only in the other run."""
    columns: dict[str, list[Any]] = {f: [r[f] for r in rows] for f in ROW_FIELDS}
    for side in ("a", "b"):
        steps = [r[side] for r in rows]
        columns[side] = [s and s["index"] for s in steps]
        columns[f"{side}_ok"] = [s and s["success"] for s in steps]
    return columns


def compare_page_data(run_a: Run, run_b: Run, found: compare.Comparison) -> dict[str, Any]:
    """Both runs' summaries, counts, the divergence, the rows (``pair_columns``), the
    timeline, and the URLs: a pair's diff, and each run's page opened at a step."""
    rows = [compare.row_json(p, found.a, found.b) for p in found.rows]
    data = compare.comparison_json(run_a, run_b, found, window=(0, 0))
    slug = run_a.project.slug
    return {
        **data,
        "rows": pair_columns(rows),
        "timeline": compare_timeline_figure(rows, data["divergence"]),
        "pair_url": reverse("visualizer:compare-pair", args=[slug]),
        "step_link": {
            "a": links.run_step(slug, run_a.execution_id),
            "b": links.run_step(slug, run_b.execution_id),
        },
    }

"""Figures for the failure pages: occurrences of a group over time, and the small daily
bars of the group list. Pure functions over counts the page's query made (Python
computes; the browser only calls ``Plotly.react``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

from . import palette

FAIL_COLOR = palette.FAIL
REGRESSION_COLOR = palette.RATE

Unit = Literal["hour", "day"]
STEP: dict[Unit, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# A chart of more bars than this switches from hours to days.
MAX_BARS = 24 * 7


def bucket_unit(first: datetime, last: datetime) -> Unit:
    """Hours while the group spans at most a week, days beyond that."""
    return "hour" if last - first <= timedelta(hours=MAX_BARS) else "day"


def fill_buckets(
    counts: Mapping[datetime, int], start: datetime, end: datetime, unit: Unit
) -> list[tuple[datetime, int]]:
    """Every bucket from ``start`` to ``end`` (both already truncated to ``unit``), zeros
    where nothing happened, so a quiet hour reads as a gap rather than being skipped."""
    filled: list[tuple[datetime, int]] = []
    moment = start
    while moment <= end:
        filled.append((moment, counts.get(moment, 0)))
        moment += STEP[unit]
    return filled


def occurrences_figure(
    buckets: Sequence[tuple[datetime, int]],
    unit: Unit,
    regressed_at: datetime | None = None,
) -> dict[str, Any]:
    """Bars of occurrences per hour or day; a dashed line marks the last regression."""
    label = "%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d"
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if regressed_at is not None:
        x = regressed_at.isoformat()
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": x,
                "x1": x,
                "y0": 0,
                "y1": 1,
                "line": {"color": REGRESSION_COLOR, "width": 2, "dash": "dash"},
            }
        )
        annotations.append(
            {
                "x": x,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": "regressed",
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"color": REGRESSION_COLOR, "size": 11},
            }
        )
    return {
        "data": [
            {
                "type": "bar",
                "name": "occurrences",
                # The middle of each bucket, so a bar sits over the hour (day) it counts.
                "x": [(t + STEP[unit] / 2).isoformat() for t, _ in buckets],
                "y": [n for _, n in buckets],
                "width": STEP[unit].total_seconds() * 1000 * 0.85,
                "hovertext": [
                    f"{t.strftime(label)}: {n} occurrence{'s' if n != 1 else ''}"
                    for t, n in buckets
                ],
                "hoverinfo": "text",
                "marker": {"color": FAIL_COLOR},
            }
        ],
        "layout": {
            "height": 220,
            "margin": {"l": 44, "r": 16, "t": 18, "b": 36},
            "xaxis": {"type": "date", "fixedrange": True},
            "yaxis": {
                "title": {"text": f"per {unit}", "font": {"size": 12}},
                "rangemode": "tozero",
                "fixedrange": True,
                "tickformat": ",d",
                # Whole numbers only: a group seen twice has ticks 0, 1, 2, not 0.5.
                "dtick": max(1, math.ceil(max((n for _, n in buckets), default=1) / 5)),
            },
            "shapes": shapes,
            "annotations": annotations,
            "bargap": 0.1,
            "showlegend": False,
            "plot_bgcolor": palette.TRANSPARENT,
            "paper_bgcolor": palette.TRANSPARENT,
            "font": {"size": 12},
        },
    }


def daily_counts(counts: Mapping[date, int], today: date, days: int = 14) -> list[int]:
    """Occurrences on each of the last ``days`` days, oldest first, today last."""
    return [counts.get(today - timedelta(days=days - 1 - i), 0) for i in range(days)]

"""Percentiles as PostgreSQL's ``percentile_cont`` defines them: the value at rank
``fraction * (n - 1)`` of the ``n`` sorted values, interpolated linearly between the two
values around it. The dashboard and the alerts compute them in SQL on PostgreSQL and with
these functions elsewhere, so both databases give the same numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.db.models import Aggregate, FloatField


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def interpolate(fraction: float, n: int, low: float, high: float) -> float:
    """The step between the values at ranks ``floor(fraction * (n - 1))`` (``low``) and
    ``ceil(fraction * (n - 1))`` (``high``) of ``n`` sorted values."""
    rank = fraction * (n - 1)
    return float(low + (high - low) * (rank - math.floor(rank)))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``sorted_values`` (sorted, not empty)."""
    n = len(sorted_values)
    rank = fraction * (n - 1)
    low, high = sorted_values[math.floor(rank)], sorted_values[math.ceil(rank)]
    return interpolate(fraction, n, low, high)

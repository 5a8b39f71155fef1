"""``{{ run|run_link:failing_steps }}``: a run's page, opened at its failing step when the
page found one (``traces.error_steps.failing_steps``, by run pk)."""

from __future__ import annotations

from collections.abc import Mapping

from django import template

from traces.models import Run

from .. import links

register = template.Library()


@register.filter
def run_link(run: Run, failing: Mapping[int, int] | str | None) -> str:
    # A page that found no failing steps passes nothing (the template engine gives "").
    step = failing.get(run.pk) if isinstance(failing, Mapping) else None
    return links.run_page(run.project.slug, run.execution_id, step)

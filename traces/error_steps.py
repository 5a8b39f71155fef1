"""Which step each error of a run belongs to: one rule for the run page and the Markdown;
and which step a link to a failed run opens (run list, review queue, notifications).

An ``ErrorTrace`` names its step by ``execution_index`` (DashFlow's step index) when the
producer knew it; older producers leave it out, and then the error belongs to the latest
failed step of its node, as that is the execution it reports on.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import Run, RunError, RunStatus, Step


def error_steps(
    errors: Iterable[tuple[str, int | None]], steps: Iterable[tuple[int, str, bool]]
) -> list[int | None]:
    """For each error, given as ``(node, execution_index)``, the index of its step: the one
    ``execution_index`` names, else the latest failed step of its node, else None. ``steps``
    are ``(index, node, success)``."""
    last_failed: dict[str, int] = {}
    for index, node, success in steps:
        if not success:
            last_failed[node] = max(index, last_failed.get(node, index))
    return [
        execution_index if execution_index is not None else last_failed.get(node)
        for node, execution_index in errors
    ]


def failing_steps(runs: Iterable[Run]) -> dict[int, int]:
    """Where a link to each failed run of ``runs`` opens, by run pk: the step of its first
    error when the producer named it (``execution_index``), else its first failed step. A
    run without an error or a failed step is left out (a link opens it on its first step).
    Two queries for a page of runs: the first errors by their unique ``(run, position)``,
    then the failed steps of the few runs whose first error names no step."""
    failed = [r.pk for r in runs if r.error_count or r.status == RunStatus.FAILED]
    if not failed:
        return {}
    found: dict[int, int] = {
        run_id: index
        for run_id, index in RunError.objects.filter(
            run_id__in=failed, position=0, execution_index__isnull=False
        ).values_list("run_id", "execution_index")
        if index is not None
    }
    rest = [pk for pk in failed if pk not in found]
    if rest:
        for run_id, index in (
            Step.objects.filter(run_id__in=rest, success=False)
            .order_by("run_id", "position")
            .values_list("run_id", "index")
        ):
            found.setdefault(run_id, index)
    return found

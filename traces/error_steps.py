"""Which step each error of a run belongs to: one rule for the run page and the Markdown.

An ``ErrorTrace`` names its step by ``execution_index`` (DashFlow's step index) when the
producer knew it; older producers leave it out, and then the error belongs to the latest
failed step of its node, as that is the execution it reports on.
"""

from __future__ import annotations

from collections.abc import Iterable


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

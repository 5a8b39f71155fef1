"""A stored run read a window of steps at a time, for exports of runs of any size.

``windowed_trace`` gives the run as an ``ExecutionTrace`` whose ``nodes_executed`` is a
``StepWindows``: a sequence that reads ``EXPORT_WINDOW_STEPS`` steps (and only their
states) from the database when it reaches them, and lets the previous window go. So an
export of a 100,000-step run holds one window of steps and states, not the run
(``benchmarks/exports.py --single``). Such a trace is for ``formats`` and ``dashstream``
only, which go through the steps in order (``trace.to_json`` cannot encode it:
``formats`` writes a whole trace's JSON in pieces instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from django.conf import settings

from . import bulk, store, zstd
from .models import Run, StateSnapshot, Step
from .trace import ExecutionTrace, NodeExecution


def window_size() -> int:
    """Steps read at a time (``EXPORT_WINDOW_STEPS``; settings.py holds it to at least 1)."""
    return int(settings.EXPORT_WINDOW_STEPS)


class StepWindows(Sequence[NodeExecution]):
    """A run's node executions, read a window at a time, in run order.

    States shared by consecutive windows (a window's last ``state_after`` is the next
    one's first ``state_before``) are handed over as the same object, not read again,
    so the identity checks of the encoders (``RunEncoder``, DashStream's "the state the
    consumer holds") hold across windows. At most one window (and the states it shares
    with the one before) is held at a time.
    """

    def __init__(self, run: Run, read_state: Callable[[bytes], Any], size: int) -> None:
        self.run = run
        self.read_state = read_state
        self.size = size
        self._count: int | None = None
        self._start = -1
        self._nodes: list[NodeExecution] = []
        self._states: dict[int, Any] = {}
        self.windows_read = 0  # for tests: how many windows were read from the database

    def __len__(self) -> int:
        if self._count is None:
            self._count = Step.objects.filter(run_id=self.run.pk).count()
        return self._count

    @overload
    def __getitem__(self, position: int) -> NodeExecution: ...
    @overload
    def __getitem__(self, position: slice) -> Sequence[NodeExecution]: ...
    def __getitem__(self, position: int | slice) -> Any:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(position)
        start = position - position % self.size
        if start != self._start:
            self._load(start)
        return self._nodes[position - start]

    def __iter__(self) -> Iterator[NodeExecution]:
        for start in range(0, len(self), self.size):
            if start != self._start:
                self._load(start)
            yield from self._nodes

    def _load(self, start: int) -> None:
        """Read the window of steps from ``start``, and the states they refer to."""
        end = start + self.size
        in_window = Step.objects.filter(
            run_id=self.run.pk, position__gte=start, position__lt=end
        ).order_by()
        rows = bulk.raw_rows(in_window.order_by("position").values_list(*store.STEP_FIELDS))
        wanted = {i for row in rows for i in (row[3], row[4]) if i is not None}
        # Only the states this window refers to stay: what bounds the memory.
        known = self._states
        states = {i: known[i] for i in wanted if i in known}
        if len(states) < len(wanted):
            snapshots = StateSnapshot.objects.filter(
                project_id=self.run.project_id,
                pk__in=in_window.values("state_before_id").union(
                    in_window.values("state_after_id")
                ),
            )
            for pk, data in snapshots.values_list("pk", "data"):
                if pk not in states:
                    states[pk] = self.read_state(zstd.decompress(bytes(data)))
        self._nodes = []  # the previous window goes before the next is built
        self._states = states
        self._nodes = [store.row_to_node(row, states) for row in rows]
        self._start = start
        self.windows_read += 1


def windowed_trace(
    run: Run, read_state: Callable[[bytes], Any], size: int | None = None
) -> ExecutionTrace:
    """The run as ``store.read_trace`` gives it, but its steps a ``StepWindows``: read
    when an encoder reaches them. The run's other states (final, errors') are read whole."""
    trace = store.read_trace(run, read_state, steps=False)
    # Set after construction: ExecutionTrace.__post_init__ walks its steps.
    trace.nodes_executed = StepWindows(run, read_state, size or window_size())  # type: ignore[assignment]
    return trace

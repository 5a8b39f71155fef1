"""Exports read a run's steps a window at a time (``traces/step_windows.py``): the file is
byte for byte what encoding each whole run gives, and the loader never holds more than a
window of steps (and their states) however long the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings

from tests.traces.exports_support import SMALL, expected_file, export_dir, store_runs
from traces import exports, formats, step_windows
from traces.models import Export, Project, Run
from traces.selection import parse_selection

__all__ = ["export_dir"]  # a fixture, used by name

pytestmark = pytest.mark.usefixtures("export_dir")

WINDOW = 128  # does not divide the 2,000 steps of long_loop_2000: the last window is short


@pytest.fixture
def runs(project: Project, fixtures_dir: Path) -> list[Run]:
    store_runs(project, fixtures_dir, ["long_loop_2000", *SMALL])
    selection, _ = parse_selection(project, {})
    return list(selection.runs(project))  # in the export's order


def run_export(project: Project, fmt: str) -> bytes:
    export = Export.objects.create(project=project, format=fmt)
    assert exports.run_export(str(export.pk)) == "done"
    export.refresh_from_db()
    return exports.final_path(export).read_bytes()


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_a_run_read_in_small_windows_gives_the_same_bytes_as_the_whole_run(
    project: Project,
    runs: list[Run],
    settings: LazySettings,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    held: list[tuple[int, int]] = []
    load = step_windows.StepWindows._load

    def counting(self: step_windows.StepWindows, start: int) -> None:
        load(self, start)
        held.append((len(self._nodes), len(self._states)))

    monkeypatch.setattr(step_windows.StepWindows, "_load", counting)
    settings.EXPORT_WINDOW_STEPS = WINDOW
    body = run_export(project, fmt)
    whole, _ = expected_file(fmt, runs)  # each run loaded whole (store.load_trace)
    assert body == whole
    assert len(body) > 100_000, "the long run is in the file"

    # The long run took 2000 / 128 windows at least; none held more than a window of
    # steps, nor more states than those steps refer to.
    assert len(held) >= -(-2000 // WINDOW)
    assert max(steps for steps, _ in held) == WINDOW
    assert max(states for _, states in held) <= 2 * WINDOW

    settings.EXPORT_WINDOW_STEPS = 100_000  # one window per run: the same file
    assert run_export(project, fmt) == body


def test_steps_are_read_again_only_when_asked_out_of_order(
    project: Project, runs: list[Run]
) -> None:
    long_run = max(runs, key=lambda run: run.steps.count())
    trace = step_windows.windowed_trace(long_run, bytes, size=500)
    nodes: Any = trace.nodes_executed
    assert len(nodes) == 2000
    assert [n.index for n in nodes][:3] == [0, 1, 2]
    assert nodes.windows_read == 4
    assert nodes[1999].index == 1999
    assert nodes[-1].index == 1999
    assert nodes.windows_read == 4  # the last window is the one held
    assert nodes[0].index == 0
    assert nodes.windows_read == 5
    with pytest.raises(IndexError):
        nodes[2000]

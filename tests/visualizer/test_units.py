"""One way to write numbers, durations and times: the template filters
(visualizer/templatetags/units.py) and the browser's rules (static/visualizer/format.js)
give the same text for the same values; times are shown in the reader's timezone."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from visualizer.templatetags.units import duration, elapsed_tag, number, time_tag

FORMAT_JS = Path(__file__).resolve().parents[2] / "static" / "visualizer" / "format.js"

DURATIONS = [0, 1, 999, 1000, 1004, 1005, 1234, 9994, 9995, 9999, 10000, 12345, 59949, 59950,
             59999, 60000, 61500, 894993, 3599499, 3599500, 3600000, 7530000, 360000000,
             12.5, 0.4]  # fmt: skip
NUMBERS = [0, 7, 999, 1000, 1073630, 123456789012]


def test_durations_read_in_the_unit_that_fits() -> None:
    assert duration(850) == "850 ms"
    assert duration(1234) == "1.23 s"
    assert duration(12345) == "12.3 s"
    assert duration(894993) == "14 min 55 s"
    assert duration(7530000) == "2 h 5 min"
    assert number(1073630) == "1,073,630"


def test_the_browser_writes_numbers_and_durations_as_the_server_does() -> None:
    node = shutil.which("node")
    assert node, "node is needed (the DashStream decoder tests use it too)"
    script = (
        f"import {{ duration, number }} from {json.dumps(FORMAT_JS.as_uri())};"
        f"console.log(JSON.stringify([{json.dumps(DURATIONS)}.map(duration),"
        f" {json.dumps(NUMBERS)}.map(number)]));"
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    js_durations, js_numbers = json.loads(result.stdout)
    assert js_durations == [duration(ms) for ms in DURATIONS]
    assert js_numbers == [number(n) for n in NUMBERS]


def test_a_time_is_an_instant_the_browser_rewrites_and_utc_until_then() -> None:
    when = datetime(2026, 12, 5, 14, 3, 7, tzinfo=UTC)
    assert time_tag(when) == '<time datetime="2026-12-05T14:03:07Z">2026-12-05 14:03:07</time>'
    assert time_tag(when, "short") == (
        '<time datetime="2026-12-05T14:03:07Z" data-style="short">12-05 14:03</time>'
    )
    assert time_tag(None) == "—"
    assert 'data-since="2026-12-05T14:03:07Z"' in elapsed_tag(when)


@pytest.mark.parametrize("value", ["x", None])
def test_what_is_not_a_number_is_written_as_it_is(value: object) -> None:
    assert number(value) == str(value)
    assert duration(value) == str(value)

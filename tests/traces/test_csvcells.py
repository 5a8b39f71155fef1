"""The one CSV writer: text a spreadsheet would evaluate starts with a quote; numbers and
other text are written as they are."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from traces.csvcells import Writer, cell


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example/","x")', '\'=HYPERLINK("http://evil.example/","x")'),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("-1+1", "'-1+1"),
        ("+1", "'+1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("1-1", "1-1"),
        ("plain", "plain"),
        ("", ""),
        (-1, -1),
        (2.5, 2.5),
        (None, None),
    ],
)
def test_a_cell_is_escaped_only_when_it_is_text_a_spreadsheet_would_evaluate(
    value: Any, written: Any
) -> None:
    assert cell(value) == written


def test_the_writer_escapes_every_cell_of_a_row_and_reads_back() -> None:
    out = io.StringIO()
    Writer(out).writerow(["=1+1", -3, 'say "hi"', None, "@x"])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=1+1", "-3", 'say "hi"', "", "'@x"]]

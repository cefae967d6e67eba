"""CSV cells that a spreadsheet shows as text, never runs as a formula (CSV injection).

Id tags, unit names and meter values come from chargers, tenants and operators; a cell such as
`=HYPERLINK("http://x")` or `@SUM(...)` is executed by Excel and LibreOffice when the file is opened.
Every CSV evsite writes goes through `SafeDictWriter`, which prefixes such cells with an apostrophe
(the OWASP recommendation). Plain numbers like `-12.5` or `+3` stay as they are: they cannot be formulas
and a meter export must keep its signed values.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is text a spreadsheet would read as a formula; then `'` + text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


if TYPE_CHECKING:
    _DictWriter = csv.DictWriter[str]
else:  # not subscriptable at run time before Python 3.12
    _DictWriter = csv.DictWriter


class SafeDictWriter(_DictWriter):
    """`csv.DictWriter` whose rows pass through `safe_cell`."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: safe_cell(value) for key, value in rowdict.items()})

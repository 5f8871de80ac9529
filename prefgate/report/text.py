"""Aligned plain-text tables for the terminal: nothing wrapped, nothing truncated, numbers to 3 significant digits.

A long free-text column (reasons, messages) goes last, so alignment never depends on it and a wide terminal
shows it whole; a narrow one wraps the line, never the table.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

SEP = "  "


def sig3(x: float) -> str:
    """``x`` to 3 significant digits, in positional notation unless it is tiny or huge."""
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    if exp < -4 or exp >= 6:
        return f"{x:.3g}"
    rounded = round(x, 2 - exp)
    return f"{rounded:.{max(0, 2 - exp)}f}"


def cell(value: object) -> str:
    """One value as table text: ``-`` for missing, yes/no, lists joined with ``, ``, one line always."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return sig3(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return " ".join(str(value).splitlines())


def _numeric(values: Sequence[object]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Lines of an aligned table; numeric columns are right-aligned, the last column is never padded."""
    texts = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in texts)]) for i, h in enumerate(headers)]
    right = [_numeric([row[i] for row in rows]) for i in range(len(headers))]
    last = len(headers) - 1

    def line(values: Sequence[str]) -> str:
        parts = [
            v if i == last and not right[i] else (v.rjust(widths[i]) if right[i] else v.ljust(widths[i]))
            for i, v in enumerate(values)
        ]
        return SEP.join(parts).rstrip()

    return [line(list(headers)), *(line(r) for r in texts)]


def more(total: int, shown: int) -> list[str]:
    """The line saying how many rows ``--limit`` left out (none when all are shown)."""
    return [f"... {total - shown} more rows (--limit {shown})"] if total > shown else []

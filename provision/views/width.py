"""Tables that stay readable on an 80-column terminal.

rich shrinks a table that is too wide by cutting no-wrap cells ("mx1.examp…")
and can squeeze a wrapping column to nothing. Where names must stay whole, a
view draws its table only when every row fits as it is, and otherwise prints
the same facts as blocks (one line per item, details indented below).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len


def table_width(headers: Sequence[str], rows: Sequence[Sequence[str]], wrapping: Sequence[str] = (), wrap_at: int = 16) -> int:
    """The width of a rich table (heavy box, padding 1) whose cells are all on
    one line, but for the ``wrapping`` columns, which may wrap at ``wrap_at``."""
    widths = [cell_len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widest = max((cell_len(line) for line in cell.splitlines()), default=0)
            widths[index] = max(widths[index], min(widest, wrap_at) if headers[index] in wrapping else widest)
    return sum(widths) + 3 * len(widths) + 1

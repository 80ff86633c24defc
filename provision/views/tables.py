"""Tables that fit the terminal without losing a column.

Rich shrinks a table that is wider than the terminal by squeezing some
columns to nothing and cropping others, so one long cell (fifty PTR names)
could hide the host, the transport and the verdict. Here every column keeps
a minimum width, the widest columns give way first, and every cell wraps.
Cells are Text, never markup: what a host or DNS says is shown as it is,
control characters made visible (provision/views/visible.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from provision.views.visible import visible_text

# With box=None and pad_edge=False a column costs two characters of padding, but the first and last one.
_PADDING = 2


@dataclass(frozen=True)
class Column:
    name: str
    minimum: int
    justify: JustifyMethod = "left"


def fit_widths(natural: list[int], minimum: list[int], available: int) -> list[int]:
    """Column widths that sum to at most ``available`` when the minimums allow:
    the column with the most to give gives one character at a time."""
    widths = [max(n, m) for n, m in zip(natural, minimum, strict=True)]
    excess = sum(widths) - available
    while excess > 0:
        index = max(range(len(widths)), key=lambda k: (widths[k] - minimum[k], widths[k]))
        if widths[index] <= minimum[index]:
            break
        widths[index] -= 1
        excess -= 1
    return widths


def fitted_table(console: Console, title: str, columns: list[Column], rows: list[list[Text]]) -> Table:
    rows = [[visible_text(cell) for cell in row] for row in rows]
    natural = [max([len(column.name), *(row[i].cell_len for row in rows)]) for i, column in enumerate(columns)]
    available = console.width - _PADDING * (len(columns) - 1)
    widths = fit_widths(natural, [c.minimum for c in columns], available)
    # The title is Text too: it may name a host or an address.
    title_text = visible_text(Text(title))
    table = Table(title=title_text, title_justify="left", box=None, pad_edge=False, padding=(0, 1), header_style="bold underline")
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column.name, width=width, overflow="fold", justify=column.justify)
    for row in rows:
        table.add_row(*row)
    return table

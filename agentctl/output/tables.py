"""Tables that keep identifying columns whole on a narrow terminal.

Rich squeezes every column of a table too wide for the terminal, so a process name becomes ``gi``
and ``gpt-4o-mini`` reads like ``gpt-4o``. A ``FittedTable`` knows which columns may wrap and which
may go: at render time it drops the optional columns, least useful first, until the others fit,
and never cuts a column that does not wrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.table import Table

from agentctl.output.untrusted import cells


@dataclass(frozen=True)
class Column:
    """A column: ``wrap`` lets its text take several lines; ``drop`` (1 goes first) lets it go when narrow."""

    header: str
    wrap: bool = False
    drop: int | None = None
    justify: Any = "left"


class FittedTable:
    """A table of ``Column``s whose rows are given as strings (shown literally) or renderables."""

    def __init__(self, columns: list[Column], **table: Any) -> None:
        self.columns, self.table = columns, table
        self.rows: list[list[RenderableType]] = []

    @property
    def row_count(self) -> int:
        """How many rows were added."""
        return len(self.rows)

    def add_row(self, *values: RenderableType | None) -> None:
        """Add one row, a value per column."""
        self.rows.append(cells(*values))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        shown = list(range(len(self.columns)))
        for index in sorted((i for i, c in enumerate(self.columns) if c.drop), key=lambda i: self.columns[i].drop or 0):
            if self._needed(console, options, shown) <= options.max_width:
                break
            shown.remove(index)
        yield self._build(console, options, shown)

    def _needed(self, console: Console, options: ConsoleOptions, shown: list[int]) -> int:
        """The width the shown columns take with the whole ones whole and the others wrapped."""
        unbounded = options.update_width(1_000_000)
        natural = Measurement.get(console, unbounded, self._build(console, unbounded, shown)).maximum
        slack = (self._measure(console, unbounded, i) for i in shown if self.columns[i].wrap)
        return natural - sum(m.maximum - m.minimum for m in slack)

    def _build(self, console: Console, options: ConsoleOptions, shown: list[int]) -> Table:
        table = Table(**self.table)
        for index in shown:
            column = self.columns[index]
            whole = None if column.wrap else self._measure(console, options, index).maximum
            table.add_column(
                column.header, justify=column.justify, no_wrap=not column.wrap, overflow="fold", min_width=whole
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        return table

    def _measure(self, console: Console, options: ConsoleOptions, index: int) -> Measurement:
        found = [self.columns[index].header, *(row[index] for row in self.rows)]
        sizes = [Measurement.get(console, options, item) for item in found]
        return Measurement(max(m.minimum for m in sizes), max(m.maximum for m in sizes))

"""The experiment list: status of the latest run, parameter count, best validation perplexity."""

from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from .format import fmt_count, fmt_ppl, status_style

KEYS = ("name", "status", "params", "ppl")
LABELS = {"name": "experiment", "status": "status", "params": "params", "ppl": "best ppl"}
COMPACT_LABELS = {"name": "name", "status": "status", "params": "params", "ppl": "ppl"}
COMPACT_BELOW = 42

Row = tuple[str, str, Any, Any, bool]


class ExperimentTable(DataTable):
    """One row per experiment (row key = its name), updated in place."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.compact = False
        self._rows: list[Row] = []

    def on_mount(self) -> None:
        self._build()

    @property
    def highlighted(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def highlight(self, name: str) -> None:
        """Put the cursor on ``name``'s row."""
        names = [r[0] for r in self._rows]
        if name in names:
            self.move_cursor(row=names.index(name), animate=False)

    @staticmethod
    def _cells(row: Row) -> tuple[Text, ...]:
        name, status, n_params, best, queued = row
        label = Text(status, style=status_style(status))
        if queued:
            label.append(" +q", style="bold yellow")
        return (Text(name), label, Text(fmt_count(n_params, "…"), justify="right"),
                Text(fmt_ppl(best), justify="right"))

    def _build(self) -> None:
        cursor = self.cursor_row
        with self.prevent(DataTable.RowHighlighted):
            self.clear(columns=True)
            labels = COMPACT_LABELS if self.compact else LABELS
            for key in KEYS:
                self.add_column(labels[key], key=key)
            for row in self._rows:
                self.add_row(*self._cells(row), key=row[0])
            if self._rows:
                self.move_cursor(row=min(cursor, len(self._rows) - 1), animate=False)

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.width < COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self._build()

    def set_rows(self, rows: Iterable[Row]) -> None:
        """``(name, status, num_params or None, best ppl or None, queued)`` per experiment."""
        rows = list(rows)
        names = [r[0] for r in rows]
        if names != [r[0] for r in self._rows]:
            self._rows = rows
            self._build()
            return
        self._rows = rows
        for row in rows:
            for key, cell in zip(KEYS, self._cells(row)):
                self.update_cell(row[0], key, cell, update_width=True)

"""Every run of the highlighted experiment, newest first; runs marked for the compare view
(``space``) carry :data:`MARK` at the start of their run label (no column of its own: the
list must fit its 45 / 40 columns with an "interrupted" row and its perplexity)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from ...runs.store import RunSummary
from .format import fmt_ppl, status_style

COLUMNS = (("run", "run"), ("status", "status"), ("step", "step"), ("best ppl", "ppl"))
MARK = "●"
"""Shown beside a run marked for the compare view."""
COMPACT_BELOW = 44
"""Narrower than this, the step column is left out and the headers are shorter."""


def run_label(run_id: str) -> str:
    """``20260102-153000-bbbb`` → ``01-02 15:30 bbbb`` (the year is in the results table)."""
    parts = run_id.split("-")
    if len(parts) == 3 and len(parts[0]) == 8 and len(parts[1]) == 6 and parts[0].isdigit() and parts[1].isdigit():
        d, t, tag = parts
        return f"{d[4:6]}-{d[6:8]} {t[0:2]}:{t[2:4]} {tag}"
    return run_id


class RunsTable(DataTable):
    """Row key = the run folder's path."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.runs: list[RunSummary] = []
        self.paths: list[str] = []
        self.compact = False
        self._selected: str | None = None
        self.marked: set[str] = set()  # paths of the marked runs (of any experiment)
        self.live_steps: dict[str, int] = {}  # path -> the step the run panel last showed

    def on_mount(self) -> None:
        self._build()

    def _columns(self):
        if self.compact:
            return [("run", "run"), ("status", "status"), ("ppl", "ppl")]
        return list(COLUMNS)

    def _cells(self, s: RunSummary) -> list[Text]:
        step = s.info.get("step")  # run.json's, written at each evaluation
        live = self.live_steps.get(str(s.run.path))
        if live is not None and (not isinstance(step, int) or live > step):
            step = live  # the panel's (metrics.jsonl, every logged step): one step figure on screen
        mark = str(s.run.path) in self.marked
        cells = {"run": Text.assemble((MARK if mark else " ", "bold"), run_label(s.run.run_id)), "status": Text(s.status, style=status_style(s.status)),
                 "step": Text(f"{step:,}" if isinstance(step, int) else "-", justify="right"),
                 "ppl": Text(fmt_ppl(s.info.get("best_val_ppl")), justify="right")}
        return [cells[key] for _, key in self._columns()]

    def _build(self) -> None:
        with self.prevent(DataTable.RowHighlighted):
            self.clear(columns=True)
            for label, key in self._columns():
                self.add_column(label, key=key)
            for s in reversed(self.runs):
                self.add_row(*self._cells(s), key=str(s.run.path))
            if self._selected in self.paths:
                self.move_cursor(row=self.paths.index(self._selected), animate=False)

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.width < COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self._build()

    def show_step(self, path: Path, step: int) -> None:
        """The run panel shows ``path`` at ``step``: its row shows it too (run.json, which the
        rows are read from, has the step of the last evaluation only)."""
        key = str(path)
        if self.live_steps.get(key) == step:
            return
        self.live_steps[key] = step
        if key in self.paths and not self.compact:
            summary = next((s for s in self.runs if str(s.run.path) == key), None)
            if summary is not None:
                cells = dict(zip([k for _, k in self._columns()], self._cells(summary)))
                self.update_cell(key, "step", cells["step"], update_width=True)

    def set_runs(self, runs: list[RunSummary], selected: Path | None, marked: set[str] | None = None) -> bool:
        """Show ``runs`` (given oldest first, shown newest first) with the cursor on
        ``selected`` and :data:`MARK` beside the paths in ``marked``; True when the rows were
        rebuilt (a run came or went)."""
        paths = [str(s.run.path) for s in reversed(runs)]
        self.runs = list(runs)
        self._selected = str(selected) if selected is not None else None
        if marked is not None:
            self.marked = set(marked)
        if paths == self.paths:
            keys = [key for _, key in self._columns()]
            for s in runs:
                for key, cell in zip(keys, self._cells(s)):
                    if key != "run":
                        self.update_cell(str(s.run.path), key, cell, update_width=True)
            return False
        self.paths = paths
        self._build()
        return True

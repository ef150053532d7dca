"""The Results screen: the runs table (sortable), a run's perplexity progression, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from ...results import FORMATS, all_runs, progression_table, render, resolve_run, runs_table
from ...results import format_cell
from ...results.tables import Table

SHOWN = ["experiment", "run_id", "dataset", "num_params", "steps", "tokens_seen", "wall_time_s", "best_val_loss",
         "best_val_ppl", "best_val_word_ppl", "chinchilla_ratio", "tokens_per_s", "device", "status", "cost_usd"]


class ExportDialog(ModalScreen[tuple[str, str] | None]):
    """Choose a format and a file name."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Label("Export the runs table")
            yield Select([(f, f) for f in FORMATS], value="md", allow_blank=False, id="fmt")
            yield Input("results.md", id="path")
            with Horizontal():
                yield Button("Export", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#fmt")
    def _fmt(self, event: Select.Changed) -> None:
        ext = {"md": "md", "csv": "csv", "latex": "tex", "json": "json"}[str(event.value)]
        self.query_one("#path", Input).value = f"results.{ext}"

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss((str(self.query_one("#fmt", Select).value), self.query_one("#path", Input).value))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ResultsScreen(Screen):
    """Every run in a sortable table; the highlighted run's perplexity progression below."""

    DEFAULT_CSS = """
    ResultsScreen #results { height: auto; max-height: 60%; }
    ResultsScreen #progression-scroll { height: 1fr; border-top: tall $panel; padding: 0 1; }
    ResultsScreen #export-dialog, ResultsScreen Vertical { height: auto; }
    """

    BINDINGS = [Binding("escape,r", "app.pop_screen", "Back"), Binding("e", "export", "Export"),
                Binding("o", "sort", "Sort by column")]

    def __init__(self, runs_dir: Path, price: float = 0.0):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.price = price
        self.table: Table | None = None
        self._reverse = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="results", cursor_type="cell", zebra_stripes=True)
        with VerticalScroll(id="progression-scroll"):
            yield Static(id="progression")
        yield Footer()

    def on_mount(self) -> None:
        self.table = runs_table(all_runs(self.runs_dir), self.price)
        dt = self.query_one("#results", DataTable)
        cols = [c for c in self.table.columns if c.key in SHOWN]
        for c in cols:
            dt.add_column(c.header, key=c.key)
        for row in self.table.rows:
            dt.add_row(*[format_cell(c, row.get(c.key)) for c in cols], key=f"{row['experiment']}/{row['run_id']}")
        if not self.table.rows:
            self.query_one("#progression", Static).update("no runs yet")
        dt.focus()

    def action_sort(self) -> None:
        """Sort by the column under the cursor (numbers numerically); again to reverse."""
        dt = self.query_one("#results", DataTable)
        if not dt.row_count:
            return
        key = dt.ordered_columns[dt.cursor_coordinate.column].key

        def as_key(value: Any) -> Any:
            text = str(value).replace(",", "")
            try:
                return (0, float(text))
            except ValueError:
                return (1, text)

        dt.sort(key, key=as_key, reverse=self._reverse)
        self._reverse = not self._reverse

    @on(DataTable.CellHighlighted, "#results")
    def _show_progression(self, event: DataTable.CellHighlighted) -> None:
        try:
            run = resolve_run(str(event.cell_key.row_key.value), self.runs_dir)
        except LookupError:
            return
        from rich.markdown import Markdown

        self.query_one("#progression", Static).update(Markdown(render(progression_table(run), "md")))

    def action_export(self) -> None:
        def done(choice: tuple[str, str] | None) -> None:
            if not choice or self.table is None:
                return
            from ...atomic import atomic_write

            fmt, path = choice
            try:
                atomic_write(Path(path), render(self.table, fmt))
            except OSError as exc:
                self.notify(f"{path}: {exc.strerror}", severity="error")
                return
            self.notify(f"wrote {path}", title="export")

        self.app.push_screen(ExportDialog(), done)

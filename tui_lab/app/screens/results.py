"""The Results screen: the runs table (sortable), a run's perplexity progression, export.

The run store is read in thread workers (the table when the screen opens, a run's
progression when its row is highlighted), never in the UI thread; the workers post
:class:`~tui_lab.app.messages.ResultsLoaded` / :class:`~tui_lab.app.messages.ProgressionLoaded`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from ...results import FORMATS, format_cell, progression_table, render, runs_table
from ...results.report import with_reference
from ...results.tables import Table
from ...runs.find import all_runs, resolve_run
from ..messages import ProgressionLoaded, ResultsLoaded

SHOWN = ["experiment", "run_id", "best_val_ppl", "seed_val_ppl", "delta_seed_val_ppl", "best_val_loss", "status", "steps", "tokens_seen", "tokens_per_s",
         "wall_time_s", "num_params", "dataset", "best_val_word_ppl", "chinchilla_ratio", "device", "cost_usd"]
"""The columns shown, most important first: the key figure (best val ppl) is on screen at
80 columns; the rest scroll horizontally. ``seed_val_ppl`` / ``delta_seed_val_ppl``: the seed
log's perplexity and Δ, when the experiments file has ``reference`` tables
(:func:`~tui_lab.results.report.with_reference`)."""

EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "json": "json"}


class ExportDialog(ModalScreen[tuple[str, str] | None]):
    """Choose a format and a file (by default in the runs folder)."""

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog #export-dialog {
        width: 64; max-width: 100%; height: auto;
        border: round $primary; background: $surface; padding: 0 1;
    }
    ExportDialog #export-dialog > Label { width: 100%; margin: 0 0 1 0; }
    ExportDialog #export-buttons { height: auto; align: right middle; margin: 1 0 0 0; }
    ExportDialog #export-buttons Button { margin: 0 0 0 1; }
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Label("Export the runs table", id="export-title")
            yield Select([(f, f) for f in FORMATS], value="md", allow_blank=False, id="fmt")
            yield Input(str(self.folder / "results.md"), id="path")
            with Horizontal(id="export-buttons"):
                yield Button("Export", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#fmt")
    def _fmt(self, event: Select.Changed) -> None:
        path_input = self.query_one("#path", Input)
        current = Path(path_input.value or str(self.folder / "results.md"))
        path_input.value = str(current.with_name(f"results.{EXTENSIONS[str(event.value)]}"))

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted, "#path")
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
    """

    BINDINGS = [Binding("escape,r", "app.pop_screen", "Back"), Binding("e", "export", "Export"),
                Binding("o", "sort", "Sort by column")]

    def __init__(self, runs_dir: Path, price: float = 0.0, experiments: dict[str, Any] | None = None):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.price = price
        self.experiments = experiments  # name -> Experiment: the seed-log reference column
        self.table: Table | None = None
        self._reverse = False
        self._progression_key: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="results", cursor_type="cell", zebra_stripes=True)
        with VerticalScroll(id="progression-scroll"):
            yield Static("reading the runs…", id="progression")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#results", DataTable).focus()
        self.load_table()

    @work(thread=True, exclusive=True, group="results-table")
    def load_table(self) -> None:
        """Build the runs table from every run folder (a thread worker)."""
        try:
            table = with_reference(runs_table(all_runs(self.runs_dir), self.price), self.experiments)
        except OSError as exc:
            self.post_message(ResultsLoaded(None, f"cannot read {self.runs_dir}: {exc}"))
            return
        self.post_message(ResultsLoaded(table))

    @on(ResultsLoaded)
    def _loaded(self, message: ResultsLoaded) -> None:
        progression = self.query_one("#progression", Static)
        if message.table is None:
            progression.update(message.error or "cannot read the runs")
            return
        self.table = message.table
        dt = self.query_one("#results", DataTable)
        dt.clear(columns=True)
        cols = [self.table.column(k) for k in SHOWN if any(c.key == k for c in self.table.columns)]
        for c in cols:
            dt.add_column(c.header, key=c.key)
        for row in self.table.rows:
            dt.add_row(*[format_cell(c, row.get(c.key)) for c in cols], key=f"{row['experiment']}/{row['run_id']}")
        progression.update("no runs yet" if not self.table.rows else "")

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
    def _highlighted(self, event: DataTable.CellHighlighted) -> None:
        key = str(event.cell_key.row_key.value)
        if key != self._progression_key:  # moving along a row reads nothing
            self._progression_key = key
            self.load_progression(key)

    @work(thread=True, exclusive=True, group="progression")
    def load_progression(self, key: str) -> None:
        """A run's perplexity progression as Markdown (a thread worker)."""
        try:
            run = resolve_run(key, self.runs_dir)
        except LookupError:
            return
        self.post_message(ProgressionLoaded(key, render(progression_table(run), "md")))

    @on(ProgressionLoaded)
    def _progression(self, message: ProgressionLoaded) -> None:
        if message.key != self._progression_key:
            return
        from rich.markdown import Markdown

        self.query_one("#progression", Static).update(Markdown(message.markdown))

    def action_export(self) -> None:
        def done(choice: tuple[str, str] | None) -> None:
            if not choice or self.table is None:
                return
            from ...atomic import atomic_write

            fmt, path_text = choice
            path = Path(path_text).expanduser()
            if not path.is_absolute() and path.parent == Path("."):
                path = self.runs_dir / path  # a bare file name goes to the runs folder
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, render(self.table, fmt))
            except OSError as exc:
                self.notify(f"{path}: {exc.strerror or exc}", severity="error", markup=False)
                return
            self.notify(f"wrote {path.resolve()}", title="export", markup=False)

        self.app.push_screen(ExportDialog(self.runs_dir), done)

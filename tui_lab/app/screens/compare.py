"""The compare view (``v`` on the main screen): the marked runs overlaid, against a baseline.

- Three plots: train loss (EMA-smoothed, ``+`` / ``-`` step through
  :data:`~tui_lab.results.compare.SMOOTHING_STEPS`), validation loss and validation
  perplexity (log scale); each run in its own colour, named in the legend line above them;
  ``x`` switches the x axis between step, tokens seen and training time.
- Below: every run against the pinned baseline (``b`` pins the run under the table's cursor,
  ``b`` on it again unpins) — best validation perplexity, Δ, Δ %, tokens/s, tokens seen, D/N,
  wall time, cost — and the config diff: only the ``section.key`` s whose values differ.
- Runs of different tokenizers are compared through word-level perplexity (the note line
  says so, and names the runs that have none).

The arithmetic is :mod:`tui_lab.results.compare`'s; the figures are
:func:`~tui_lab.results.tables.record_of`'s (the runs table's). Every run is followed by its
own :class:`~tui_lab.app.watch.RunWatcher` thread (the main screen's follower), so live runs
keep streaming in; the callback reads ``config.json`` and computes the record in that thread
and posts :class:`~tui_lab.app.messages.CompareUpdated`.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ...results.compare import (
    SMOOTHING_STEPS,
    X_AXES,
    band,
    compare_table,
    config_diff,
    curve,
    ema,
    format_value,
    perplexity_key,
    seed_groups,
    step_smoothing,
    tokenizer_of,
)
from ...results.formats import format_cell
from ...results.tables import record_of
from ...runs.follow import RunSnapshot
from ...runs.store import RunDir
from ..messages import CompareUpdated
from ..watch import RunWatcher
from ..widgets import CurvePlot
from ..widgets.format import fmt_count
from ..widgets.runs import run_label

PALETTE: tuple[tuple[int, int, int], ...] = (
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79),
    (237, 201, 72), (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172),
)
"""The runs' colours, in marking order (Tableau 10); the 11th run reuses the first colour."""

SWATCH = "■"


def short_label(run: RunDir) -> str:
    """``experiment·tag`` (``demo·3f2a``): the run id's random tag, or the whole id when it
    has none."""
    parts = run.run_id.split("-")
    tag = parts[-1] if len(parts) == 3 else run.run_id
    return f"{run.experiment}·{tag}"


def x_tick(x: str):
    """The x ticks' text for axis ``x``: steps with separators, tokens compact (1.2M), time
    in s / min / h."""
    if x == "tokens":
        return lambda t: fmt_count(t)
    if x == "time":
        def seconds(t: float) -> str:
            if abs(t) < 120:
                return f"{t:g}s"
            if abs(t) < 7200:
                return f"{t / 60:.3g}m"
            return f"{t / 3600:.3g}h"
        return seconds
    return lambda t: f"{t:,.0f}"


def signed(v: float | None, decimals: int, suffix: str = "") -> str:
    if v is None:
        return "-"
    text = f"{v:+,.{decimals}f}"
    if not text.strip("+-0.,"):
        text = f"{0:.{decimals}f}"
    return text + suffix


class CompareScreen(Screen):
    """The marked runs overlaid; a baseline table and the config diff below."""

    DEFAULT_CSS = """
    CompareScreen #compare-legend { height: auto; padding: 0 1; }
    CompareScreen #compare-plots { height: 1fr; min-height: 7; }
    CompareScreen #compare-note { height: auto; padding: 0 1; color: $text-muted; background: $boost; }
    CompareScreen #compare-table { height: auto; max-height: 9; }
    CompareScreen #compare-diff { height: auto; max-height: 8; border-top: solid $panel; }
    """

    BINDINGS = [
        Binding("escape,v", "app.pop_screen", "Back", key_display="esc"),
        Binding("x", "cycle_x", "X axis", tooltip="x axis: step → tokens seen → training time"),
        Binding("plus", "smooth(1)", "Smooth", key_display="+", tooltip="More EMA smoothing of train loss"),
        Binding("minus", "smooth(-1)", "Less", key_display="-", tooltip="Less EMA smoothing of train loss"),
        Binding("b", "baseline", "Baseline", tooltip="Pin the run under the cursor as the baseline (again: unpin)"),
        Binding("g", "group_seeds", "Seeds", tooltip="Seed groups: mean with its min and max curves (again: each run)"),
    ]

    def __init__(self, runs: list[RunDir], price_per_gpu_hour: float = 0.0, poll_s: float | None = None) -> None:
        super().__init__()
        self.runs = list(runs)
        self.price = price_per_gpu_hour
        self.run_colors = {str(r.path): PALETTE[i % len(PALETTE)] for i, r in enumerate(self.runs)}
        self.snaps: dict[str, RunSnapshot] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.x = "step"
        self.smoothing = 0.0
        self.baseline: int | None = None
        self.grouped = False  # seed groups drawn as mean, min and max (g)
        self.table = None  # the compare_table shown (results.tables.Table)
        self.diff: list[tuple[str, list[Any]]] = []
        self.ppl_key = "val_ppl"
        self._poll_s = poll_s
        self.watchers: list[RunWatcher] = []
        self._table_key: object = None
        self._curves: dict[tuple, tuple[list[float], list[float]]] = {}
        self.title = "compare"
        self.sub_title = f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''}"

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.legend(), id="compare-legend")
        with Horizontal(id="compare-plots"):
            yield CurvePlot("train loss", short_title="train", legend=False, id="cmp-train")
            yield CurvePlot("val loss", short_title="val", legend=False, id="cmp-val")
            yield CurvePlot("val perplexity", short_title="ppl", ylog=True, legend=False, id="cmp-ppl")
        yield Static(id="compare-note")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="compare-diff", cursor_type="none", show_cursor=False)
        yield Footer()

    def legend(self) -> Text:
        text = Text()
        for i, run in enumerate(self.runs):
            if i:
                text.append("  ")
            text.append(SWATCH + " ", style=self.style(run))
            text.append(f"{run.experiment} {run_label(run.run_id)}")
        return text

    def style(self, run: RunDir) -> Style:
        r, g, b = self.run_colors[str(run.path)]
        return Style(color=f"rgb({r},{g},{b})", bold=True)

    def on_mount(self) -> None:
        self.query_one("#compare-table", DataTable).focus()
        for run in self.runs:
            watcher = RunWatcher(self._callback)
            if self._poll_s is not None:
                watcher.poll_s = watcher.idle_poll_s = self._poll_s
            watcher.follow(run)
            watcher.start()
            self.watchers.append(watcher)
        self.redraw()

    def on_unmount(self) -> None:
        for watcher in self.watchers:
            watcher.stop()

    def _callback(self, run: RunDir | None, snap: RunSnapshot | None) -> None:
        """In the watcher's thread: read ``config.json`` (once) and compute the record."""
        if run is None or snap is None or not snap.history_complete:
            return  # a long history's tail alone would give a wrong record and a cut curve
        config = self.configs.get(str(run.path)) or run.read_config() or {}
        record = record_of(run, snap.info, config, snap.events, self.price)
        self.post_message(CompareUpdated(run, snap, config, record))

    @on(CompareUpdated)
    def _updated(self, message: CompareUpdated) -> None:
        key = str(message.run.path)
        self.snaps[key] = message.snapshot
        if message.config:
            self.configs[key] = message.config
        self.records[key] = message.record
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        self.ppl_key = perplexity_key([self.configs.get(str(r.path)) for r in self.runs
                                       if str(r.path) in self.configs])
        self.draw_plots()
        self.draw_note()
        self.draw_table()
        self.draw_diff()

    def curve(self, run: RunDir, event: str, key: str) -> tuple[list[float], list[float]]:
        """:func:`~tui_lab.results.compare.curve` of a run's snapshot, kept until a new
        snapshot of that run arrives (a live run's update does not recompute the others)."""
        snap = self.snaps.get(str(run.path))
        if snap is None:
            return [], []
        cache_key = (str(run.path), snap.version, event, key, self.x)
        if cache_key not in self._curves:
            if len(self._curves) > 64:
                self._curves.clear()
            self._curves[cache_key] = curve(snap.events, event, key, self.x)
        return self._curves[cache_key]

    def groups(self) -> list[list[int]]:
        """Seed groups of the runs (indices; :func:`~tui_lab.results.compare.seed_groups`),
        once every config is read; until then each run alone."""
        if len(self.configs) < len(self.runs):
            return [[i] for i in range(len(self.runs))]
        return seed_groups([r.experiment for r in self.runs], [self.configs[str(r.path)] for r in self.runs])

    def series(self, event: str, key: str, smooth: bool = False):
        """One (label, xs, ys) per run, with its colour; grouped (``g``): a seed group of two
        or more runs as its min and max (dimmed) and mean (:func:`~tui_lab.results.compare.band`
        of the runs' curves, each smoothed first)."""
        per_run = []
        for run in self.runs:
            xs, ys = self.curve(run, event, key)
            if smooth and self.smoothing:
                ys = ema(ys, self.smoothing)
            per_run.append((xs, ys))
        out, colors = [], []
        for idx in (self.groups() if self.grouped else [[i] for i in range(len(self.runs))]):
            first = self.runs[idx[0]]
            color = self.run_colors[str(first.path)]
            if len(idx) == 1:
                out.append((short_label(first), *per_run[idx[0]]))
                colors.append(color)
                continue
            xs, mean, lo, hi = band([per_run[i] for i in idx])
            dim = tuple(int(c * 0.55) for c in color)
            label = f"{short_label(first)} +{len(idx) - 1}"
            out += [(f"{label} min", xs, lo), (f"{label} max", xs, hi), (f"{label} mean", xs, mean)]
            colors += [dim, dim, color]
        return out, colors

    def draw_plots(self) -> None:
        versions = tuple(self.snaps[str(r.path)].version if str(r.path) in self.snaps else -1 for r in self.runs)
        key = (self.x, self.smoothing, self.ppl_key, self.grouped, len(self.configs), versions)
        label = X_AXES[self.x][1]
        word = self.ppl_key == "val_word_ppl"
        for plot_id, event, metric, smooth in (("cmp-train", "train", "train_loss", True),
                                               ("cmp-val", "eval", "val_loss", False),
                                               ("cmp-ppl", "eval", self.ppl_key, False)):
            plot = self.query_one(f"#{plot_id}", CurvePlot)
            plot.xlabel = label
            plot.xtick_label = x_tick(self.x)
            if plot_id == "cmp-train":
                plot.title = f"train loss (EMA {self.smoothing:g})" if self.smoothing else "train loss"
            if plot_id == "cmp-ppl":
                plot.title, plot.short_title = ("val word perplexity", "word ppl") if word else ("val perplexity",
                                                                                                "ppl")
            series, colors = self.series(event, metric, smooth)
            plot.set_series(series, key, colors)

    def note_text(self) -> Text:
        text = Text()
        text.append(f"x: {X_AXES[self.x][1]}", style="bold")
        text.append(f" · smoothing {self.smoothing:g}" if self.smoothing else " · no smoothing")
        groups = [g for g in self.groups() if len(g) > 1]
        if self.grouped:
            text.append(f" · {len(groups)} seed group{'s' if len(groups) != 1 else ''}: mean, min and max")
        elif groups:
            text.append(" · g: seed groups")
        if self.baseline is not None:
            text.append(" · baseline ")
            run = self.runs[self.baseline]
            text.append(short_label(run), style=self.style(run))
        else:
            text.append(" · b pins a baseline")
        if self.ppl_key == "val_word_ppl":
            toks = sorted({tokenizer_of(c) or "?" for c in self.configs.values()})
            text.append(f"\ndifferent tokenizers ({', '.join(toks)}): perplexity is compared per word",
                        style="bold")
            lacking = [short_label(r) for r in self.runs if str(r.path) in self.snaps
                       and not self.curve(r, "eval", "val_word_ppl")[1]]
            if lacking:
                text.append(f"; no word-level perplexity for {', '.join(lacking)} (its data has no word count, "
                            "or evaluations were capped): not drawn", style="bold yellow")
        return text

    def draw_note(self) -> None:
        self.query_one("#compare-note", Static).update(self.note_text())

    def _labels(self) -> list[Text]:
        out = []
        for i, run in enumerate(self.runs):
            t = Text(SWATCH + " ", style=self.style(run))
            t.append(short_label(run), style="bold" if i == self.baseline else "")
            if i == self.baseline:
                t.append(" ◆", style="bold")
            out.append(t)
        return out

    def draw_table(self) -> None:
        records = [self.records.get(str(r.path), {}) for r in self.runs]
        labels = [short_label(r) for r in self.runs]
        self.table = compare_table(records, labels, self.baseline, self.ppl_key)
        dt = self.query_one("#compare-table", DataTable)
        cells = []
        texts = self._labels()
        for i, row in enumerate(self.table.rows):
            line: list[Any] = [texts[i]]
            for col in self.table.columns[1:]:
                v = row.get(col.key)
                if col.key in ("delta", "delta_pct"):
                    s = signed(v, col.decimals, " %" if col.key == "delta_pct" else "")
                    style = "" if v is None or i == self.baseline or abs(v) < 1e-12 else (
                        "green" if v < 0 else "red")
                    line.append(Text(s, style=style, justify="right"))
                else:
                    line.append(Text(format_cell(col, v), justify="right"))
            cells.append(line)
        key = (tuple(c.name for c in self.table.columns),)
        if key != self._table_key or dt.row_count != len(cells):
            self._table_key = key
            cursor = dt.cursor_row
            dt.clear(columns=True)
            for col in self.table.columns:
                dt.add_column(col.name, key=col.key)
            for run, line in zip(self.runs, cells):
                dt.add_row(*line, key=str(run.path))
            if cells:
                dt.move_cursor(row=min(cursor, len(cells) - 1), animate=False)
        else:
            for run, line in zip(self.runs, cells):
                for col, cell in zip(self.table.columns, line):
                    dt.update_cell(str(run.path), col.key, cell, update_width=True)

    def draw_diff(self) -> None:
        loaded = [r for r in self.runs if str(r.path) in self.configs]
        diff = config_diff([self.configs[str(r.path)] for r in loaded])
        dt = self.query_one("#compare-diff", DataTable)
        if diff == self.diff and dt.columns:
            return
        self.diff = diff
        dt.clear(columns=True)
        dt.add_column(f"config diff ({len(diff)})" if diff else "config: no differences", key="key")
        for run in loaded:
            dt.add_column(Text(short_label(run), style=self.style(run)), key=str(run.path))
        for key, values in diff:
            dt.add_row(key, *[Text(format_value(v), justify="right") for v in values], key=key)

    # ------------------------------------------------------------------ actions
    def action_cycle_x(self) -> None:
        """The next x axis: step → tokens seen → training time → step."""
        names = list(X_AXES)
        self.x = names[(names.index(self.x) + 1) % len(names)]
        self.redraw()

    def action_smooth(self, direction: int) -> None:
        """Train-loss EMA weight one step up (``+``) or down (``-``) in
        :data:`~tui_lab.results.compare.SMOOTHING_STEPS`."""
        self.smoothing = step_smoothing(self.smoothing, direction)
        self.redraw()

    def action_group_seeds(self) -> None:
        """Draw seed groups (runs that differ only in ``train.seed``) as mean, min and max; again:
        every run on its own."""
        self.grouped = not self.grouped
        self.redraw()

    def action_baseline(self) -> None:
        """Pin the run under the table's cursor as the baseline; on the baseline: unpin."""
        dt = self.query_one("#compare-table", DataTable)
        if not self.runs or dt.row_count == 0:
            return
        row = dt.cursor_row
        self.baseline = None if row == self.baseline else row
        self.redraw()

    def palette_commands(self):
        """This screen's keys in the command palette (ctrl+p)."""
        steps = ", ".join(f"{w:g}" for w in SMOOTHING_STEPS)
        yield SystemCommand("Compare: x axis", "Step → tokens seen → training time (x)", self.action_cycle_x)
        yield SystemCommand("Compare: more smoothing", f"Train-loss EMA weight up ({steps}) (+)",
                            lambda: self.action_smooth(1))
        yield SystemCommand("Compare: less smoothing", "Train-loss EMA weight down (-)", lambda: self.action_smooth(-1))
        yield SystemCommand("Compare: pin baseline", "Pin the highlighted run as the baseline (b)",
                            self.action_baseline)
        yield SystemCommand("Compare: seed groups", "Runs differing only in train.seed as mean, min and max (g)",
                            self.action_group_seeds)
        yield SystemCommand("Compare: back", "Back to the runs (esc)", self.app.pop_screen)


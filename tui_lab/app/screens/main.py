"""The main screen: experiments and their runs on the left, the selected run live on the right.

Data flow: two thread workers from :mod:`tui_lab.app.watch` read the run store and post
:class:`~tui_lab.app.watch.StoreScanned` (every run's status, the queue) and
:class:`~tui_lab.app.watch.RunUpdated` (the selected run's history, as an immutable
snapshot); the handlers here only hand those to the widgets. Nothing on this screen reads a
file or waits on a process in the UI thread, except one scan of the ``run.json`` files
when the screen mounts, so that the first frame already shows every status.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from ...runs.store import RunDir, RunSummary
from ..watch import RunSnapshot, RunUpdated, RunWatcher, StoreScan, StoreScanned, StoreScanner, scan_store
from ..widgets.runs import run_label
from ..widgets import CurvePlot, ExperimentDetail, ExperimentTable, LogTail, RunsTable, RunStats, SamplesView


TABS = {"tab-curves": "Curves", "tab-lr": "LR · tokens/s", "tab-log": "Log", "tab-samples": "Samples",
        "tab-detail": "Config"}
"""The right-hand tabs, on keys 1-5."""


@dataclass
class Launched:
    """A run this app started whose ``run.json`` the scans have not seen yet."""

    run: RunDir
    proc: Any
    launched_at: float

    def summary(self) -> RunSummary:
        status = "starting" if self.proc is None or self.proc.poll() is None else "failed"
        return RunSummary(self.run, {"status": status, "started_at": self.launched_at})


class MainScreen(Screen):
    """Experiments on the left (with their runs and the queue), the selected run's live panels
    on the right."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    BINDINGS = [
        Binding("t", "app.train", "Train", tooltip="Train the highlighted experiment in a background process"),
        Binding("s", "app.stop", "Stop", tooltip="Stop the selected run (checkpoint, then 'stopped')"),
        Binding("R", "app.resume", "Resume", key_display="R", tooltip="Resume the selected stopped run"),
        Binding("a", "app.enqueue", "Queue", tooltip="Add the highlighted experiment to the queue"),
        Binding("c", "app.chat", "Chat", tooltip="Chat with the selected run's best checkpoint"),
        Binding("r", "app.results", "Results", tooltip="Every run in a table; export"),
        Binding("q", "app.quit", "Quit", tooltip="Quit (training goes on)"),
        *[Binding(str(i), f"show_tab('{tab}')", label, show=False)
          for i, (tab, label) in enumerate(TABS.items(), 1)],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.scan: StoreScan | None = None
        self.snapshot: RunSnapshot | None = None
        self.selected: RunDir | None = None
        self.follow_latest = True  # follow the newest run of the highlighted experiment
        self.launched: dict[str, Launched] = {}
        self.counts: dict[str, dict[str, Any]] = {}  # from `tui-lab list --json`, in the background
        self.counts_state = "loading"
        self.watcher = RunWatcher(self.post_message)
        self.scanner: StoreScanner | None = None
        self._detail_key: object = None
        self._tab_drawn: dict[str, object] = {}

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield ExperimentTable(id="experiments")
                yield Label("Runs", id="runs-title")
                yield RunsTable(id="runs")
                yield Static(id="queue")
            with Vertical(id="right"):
                yield RunStats(id="stats")
                yield ProgressBar(id="progress", show_eta=False)
                with TabbedContent(id="tabs"):
                    with TabPane("Curves", id="tab-curves"):
                        with Horizontal(classes="plots"):
                            yield CurvePlot("loss (nats/token)", id="loss-plot")
                            yield CurvePlot("val perplexity", ylog=True, id="ppl-plot")
                    with TabPane("LR · tok/s", id="tab-lr"):
                        with Horizontal(classes="plots"):
                            yield CurvePlot("learning rate", id="lr-plot")
                            yield CurvePlot("tokens/s", id="tps-plot")
                    with TabPane("Log", id="tab-log"):
                        yield LogTail(id="log")
                    with TabPane("Samples", id="tab-samples"):
                        yield SamplesView(id="samples")
                    with TabPane("Config", id="tab-detail"):
                        with Vertical(id="detail-scroll"):
                            yield ExperimentDetail(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        runs_dir = self.app.runs_dir
        self.query_one("#progress", ProgressBar).display = False
        try:
            scan = scan_store(runs_dir)
        except Exception:  # unreadable runs folder: start empty, the scanner retries
            scan = StoreScan({}, [], None)
        self.apply_scan(scan)
        table = self.query_one("#experiments", ExperimentTable)
        table.focus()
        live = [s for runs in scan.runs.values() for s in runs
                if s.status == "running" and s.run.experiment in self.cfg.experiments]
        if live:  # reattach: open on the run that is training now (the latest started, if several)
            table.highlight(max(live, key=lambda s: s.info.get("started_at") or 0).run.experiment)
        self.scanner = StoreScanner(runs_dir, self.post_message)
        self.run_worker(lambda: self.watcher.loop(_cancelled), thread=True, group="watch", name="run watcher")
        self.run_worker(lambda: self.scanner.loop(_cancelled), thread=True, group="scan", name="store scanner")
        self.load_counts()

    def on_unmount(self) -> None:
        self.watcher.stop()
        if self.scanner is not None:
            self.scanner.stop()

    # ------------------------------------------------------------------ selection
    @property
    def cfg(self):
        return self.app.cfg

    def highlighted_experiment(self) -> str | None:
        return self.query_one("#experiments", ExperimentTable).highlighted

    def runs_of(self, name: str | None) -> list[RunSummary]:
        """The experiment's runs, oldest first, with the ones just launched (not yet on disk) last."""
        if name is None:
            return []
        runs = list(self.scan.runs.get(name, [])) if self.scan else []
        on_disk = {str(s.run.path) for s in runs}
        runs += [lr.summary() for key, lr in self.launched.items()
                 if lr.run.experiment == name and key not in on_disk]
        return runs

    def running_run(self, name: str | None) -> RunDir | None:
        for s in reversed(self.runs_of(name)):
            if s.status in ("running", "starting"):
                return s.run
        return None

    def select_run(self, run: RunDir | None, proc: Any = None) -> None:
        """Point the panels at ``run``; the watcher thread reads its history and posts it."""
        if run is not None and self.selected is not None and run.path == self.selected.path and proc is None:
            return
        self.selected = run
        self.snapshot = None
        if run is None:
            self.watcher.follow(None)
            self.draw(None)
        else:
            launched = self.launched.get(str(run.path))
            self.watcher.follow(run, proc if proc is not None else (launched.proc if launched else None))

    def follow_new_run(self, run: RunDir, proc: Any) -> None:
        """A run this app just launched: show it at once (it has no ``run.json`` yet)."""
        self.launched[str(run.path)] = Launched(run, proc, time.time())
        if run.experiment == self.highlighted_experiment():
            self.follow_latest = True
            self.selected = None
            self.select_run(run, proc)
            self.refresh_left()
        if self.scanner is not None:
            self.scanner.poke()

    # ------------------------------------------------------------------ store scans
    def apply_scan(self, scan: StoreScan) -> None:
        self.scan = scan
        on_disk = {str(s.run.path) for runs in scan.runs.values() for s in runs}
        for key in [k for k in self.launched if k in on_disk]:
            del self.launched[key]  # its run.json is written: the scans show it from now on
        self.refresh_left()

    @on(StoreScanned)
    def _scanned(self, message: StoreScanned) -> None:
        self.apply_scan(message.scan)

    def refresh_left(self) -> None:
        """Experiment rows, the highlighted experiment's runs, the queue line, the detail."""
        table = self.query_one("#experiments", ExperimentTable)
        queued = {e["experiment"] for e in (self.scan.queue if self.scan else [])}
        rows = []
        for name in self.cfg.experiments:
            runs = self.runs_of(name)
            latest = runs[-1] if runs else None
            n_params = (self.counts.get(name, {}).get("num_params")
                        or next((s.info.get("num_params") for s in reversed(runs) if s.info.get("num_params")), None))
            if n_params is None and self.counts_state == "failed":
                n_params = "-"
            best = self.scan.best_ppl(name) if self.scan else None
            rows.append((name, latest.status if latest else "never run", n_params, best, name in queued))
        table.set_rows(rows)
        self.refresh_runs()
        self.refresh_queue()

    def refresh_runs(self) -> None:
        name = self.highlighted_experiment()
        runs = self.runs_of(name)
        self.query_one("#runs-title", Label).update(
            Text.assemble("Runs of ", (name or "-", "bold"), f" ({len(runs)})" if runs else " (none yet)"))
        if self.follow_latest or (self.selected is not None and self.selected.experiment != name):
            want = runs[-1].run if runs else None
            if (want is None) != (self.selected is None) or (want and self.selected and want.path != self.selected.path):
                self.select_run(want)
        self.query_one("#runs", RunsTable).set_runs(runs, self.selected.path if self.selected else None)
        if self.selected is None:
            self.query_one("#stats", RunStats).show(
                None, f"no runs of {name} yet: press t to train it, a to queue it" if name else "no experiments")
        self.show_detail(name)

    def refresh_queue(self) -> None:
        line = self.query_one("#queue", Static)
        entries = self.scan.queue if self.scan else []
        runner = self.scan.runner if self.scan else None
        if not entries and not runner:
            line.display = False
            return
        text = Text.assemble(("queue: ", "bold"), " → ".join(e["experiment"] for e in entries) or "empty")
        if runner:
            current, waiting = runner.get("current"), runner.get("waiting_for")
            text.append("  ·  ", style="dim")
            if current:
                text.append(f"training {Path(current).parent.name} {run_label(Path(current).name)}")
            elif waiting:
                text.append(f"next after {Path(waiting).parent.name} {run_label(Path(waiting).name)}")
            else:
                text.append("runner idle")
        line.update(text)
        line.display = True

    def show_detail(self, name: str | None) -> None:
        validated = getattr(self.cfg, "validated", True)  # else the app validates right after the first frame
        exp = self.cfg.experiments.get(name) if name and validated else None
        runs = self.runs_of(name)
        latest_info = next((s.info for s in reversed(runs) if s.info.get("train_tokens")), runs[-1].info if runs else {})
        counts = self.counts.get(name or "", {})
        key = (name, validated, json.dumps(counts, sort_keys=True, default=str), self.counts_state,
               latest_info.get("num_params"), latest_info.get("train_tokens"))
        if key == self._detail_key:
            return
        self._detail_key = key
        self.query_one("#detail", ExperimentDetail).show(name, exp, counts, latest_info,
                                                          counting=self.counts_state == "loading")

    @work(exclusive=True, group="counts")
    async def load_counts(self) -> None:
        """Exact parameter counts and cached token counts from a `tui-lab list --json`
        subprocess: the app's own process never imports torch."""
        if not getattr(self.app, "counts_enabled", True):
            self.counts_state = "off"
            return
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tui_lab", "list", "--json", "--config", str(self.cfg.path),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            out, _ = await proc.communicate()
            self.counts = {row["name"]: row for row in json.loads(out or b"[]")}
            self.counts_state = "done"
        except (OSError, ValueError, KeyError, TypeError):
            self.counts_state = "failed"
        self._detail_key = None
        self.refresh_left()

    # ------------------------------------------------------------------ the live run
    @on(RunUpdated)
    def _run_updated(self, message: RunUpdated) -> None:
        if message.run is None or self.selected is None or message.run.path != self.selected.path:
            return
        self.snapshot = message.snapshot
        self.draw(message.snapshot)

    def draw(self, snap: RunSnapshot | None) -> None:
        """The figures and progress bar always; the tabs' contents only for the tab in view
        (the others catch up when they are opened)."""
        self.query_one("#stats", RunStats).show(snap)
        bar = self.query_one("#progress", ProgressBar)
        step, total = snap.progress() if snap else (0, None)
        bar.display = total is not None
        if total is not None:
            bar.update(total=total, progress=min(step, total))
        self.draw_tab(self.query_one("#tabs", TabbedContent).active)

    def draw_tab(self, tab: str) -> None:
        snap = self.snapshot
        key = (str(snap.run.path), snap.version) if snap else None
        if self._tab_drawn.get(tab, ()) == key:
            return
        self._tab_drawn[tab] = key

        def series(event: str, name: str) -> tuple[list[float], list[float]]:
            return snap.series(event, name) if snap else ([], [])

        if tab == "tab-curves":
            self.query_one("#loss-plot", CurvePlot).set_series(
                [("train", *series("train", "train_loss")), ("val", *series("eval", "val_loss"))], key)
            self.query_one("#ppl-plot", CurvePlot).set_series([("val ppl", *series("eval", "val_ppl"))], key)
        elif tab == "tab-lr":
            self.query_one("#lr-plot", CurvePlot).set_series([("lr", *series("train", "lr"))], key)
            self.query_one("#tps-plot", CurvePlot).set_series([("tokens/s", *series("train", "tokens_per_s"))], key)
        elif tab == "tab-log":
            self.query_one("#log", LogTail).show(snap.log_tail if snap else "")
        elif tab == "tab-samples":
            self.query_one("#samples", SamplesView).show(snap.samples() if snap else [])

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self.draw_tab(event.pane.id)

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted, "#experiments")
    def _experiment_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.follow_latest = True
        self.refresh_runs()

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or not event.row_key.value:
            return
        path = Path(str(event.row_key.value))
        runs = self.runs_of(self.highlighted_experiment())
        self.follow_latest = bool(runs) and runs[-1].run.path == path
        self.select_run(RunDir(path))


def _cancelled() -> bool:
    try:
        return get_current_worker().is_cancelled
    except Exception:
        return False

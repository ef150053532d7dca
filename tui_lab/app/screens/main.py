"""The main screen: experiments and their runs on the left, the selected run live on the right.

Data flow: two plain threads from :mod:`tui_lab.app.watch` read the run store and call back;
the callbacks only post :class:`~tui_lab.app.messages.StoreScanned` (every run's status,
the queue) and :class:`~tui_lab.app.messages.RunUpdated` (the selected run's history, as an
immutable snapshot), and the handlers here hand those to the widgets. Nothing on this
screen reads a file or waits on a process in the UI thread, except one scan of the
``run.json`` files when the screen mounts, so that the first frame already shows every
status. The screen's keys (train, stop, resume, queue, chat, results, tabs; ``space`` marks
runs, of any experiment, for the compare view that ``v`` opens) are its own actions.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, ProgressBar, Static, TabbedContent, TabPane

from ...runs.follow import RunSnapshot, StoreScan, scan_store
from ...runs.store import RunDir, RunSummary, Status, is_live
from .. import counts
from ..messages import RunUpdated, StoreScanned
from ..watch import RunWatcher, StoreScanner
from ..widgets import ExperimentDetail, ExperimentTable, LogTail, RunsTable, RunStats, SamplesView
from ..widgets.runs import run_label

TABS = {"tab-curves": "Curves", "tab-lr": "LR · tokens/s", "tab-log": "Log", "tab-samples": "Samples",
        "tab-detail": "Config"}
"""The right-hand tabs, on keys 1-5."""

COMPARE_KEYS = Binding.Group("Mark·compare", compact=True)
"""``space`` (mark) and ``v`` (compare) share one footer entry, so every key fits at 80 columns."""

MIN_PLOT_SIZE = (70, 20)
"""A terminal smaller than this (columns, rows) shows a sentence instead of the plots."""

RESUMING = "resuming"
"""Shown for a run from the moment ``R`` launched its process until its ``run.json`` says so."""


@dataclass
class Launched:
    """A run this app started whose ``run.json`` the scans have not seen yet."""

    run: RunDir
    proc: Any
    launched_at: float

    def summary(self) -> RunSummary:
        status = Status.STARTING if self.proc is None or self.proc.poll() is None else Status.FAILED
        return RunSummary(self.run, {"status": status.value, "started_at": self.launched_at})


class MainScreen(Screen):
    """Experiments on the left (with their runs and the queue), the selected run's live panels
    on the right."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    BINDINGS = [
        Binding("t", "train", "Train", tooltip="Train the highlighted experiment in a background process"),
        Binding("s", "stop", "Stop", tooltip="Stop the selected run (checkpoint, then 'stopped')"),
        Binding("R", "resume", "Resume", key_display="R", tooltip="Resume the selected stopped run"),
        Binding("a", "enqueue", "Queue", tooltip="Add the highlighted experiment to the queue"),
        Binding("w", "sweep", "Sweep", show=False,
                tooltip="Queue one run per point of the highlighted experiment's [experiments.NAME.sweep] grid"),
        Binding("c", "chat", "Chat", tooltip="Chat with the selected run's best checkpoint"),
        Binding("r", "results", "Results", tooltip="Every run in a table; export"),
        Binding("q", "app.quit", "Quit", tooltip="Quit (training goes on)"),
        *[Binding(str(i), f"show_tab('{tab}')", "Tabs" if i == 1 else label, show=i == 1,
                  key_display="1-5" if i == 1 else None,
                  tooltip=f"Keys 1-5 show the tabs: {', '.join(TABS.values())}")
          for i, (tab, label) in enumerate(TABS.items(), 1)],
        Binding("space", "mark", "Mark", key_display="␣", group=COMPARE_KEYS,
                tooltip="space: mark / unmark the selected run for the compare view (any experiment)"),
        Binding("v", "compare", "Compare", group=COMPARE_KEYS,
                tooltip="Overlay the marked runs; baseline and config diff"),
    ]

    def __init__(self) -> None:
        super().__init__()
        try:  # the breakpoint classes of the terminal's size now, so the first resize restyles nothing
            width, height = self.app.size
        except Exception:  # no running app (a test building the screen alone)
            width = height = 0
        if width:
            self.add_class(next(c for w, c in reversed(self.HORIZONTAL_BREAKPOINTS) if width >= w), update=False)
            self.set_class(width < MIN_PLOT_SIZE[0] or height < MIN_PLOT_SIZE[1], "-too-small", update=False)
        self.scan: StoreScan | None = None
        self.snapshot: RunSnapshot | None = None
        self.selected: RunDir | None = None
        self.follow_latest = True  # follow the newest run of the highlighted experiment
        self.launched: dict[str, Launched] = {}
        self.marked: dict[str, RunDir] = {}  # runs marked for the compare view, in marking order
        self.resuming: dict[str, Any] = {}  # run path -> the resuming process, until run.json says live
        self.launched_procs: list[Any] = []  # every process this screen launched, reaped when it ends
        self.counts: dict[str, dict[str, Any]] = {}  # from `tui-lab list --json`, in the background
        self.counts_state = "loading"
        self.watcher = RunWatcher(lambda run, snap: self.post_message(RunUpdated(run, snap)), wait_for_display=True)
        self.tail_on_screen_pending = False  # a long history's tail is drawn: tell the watcher once displayed
        self.scanner: StoreScanner | None = None
        self._reaper: Any = None  # a 1 s timer, only while launched processes live
        self._detail_key: object = None
        self._tab_drawn: dict[str, object] = {}
        self.panels_started = False  # the app calls mount_panels right after this screen's first frame
        self.panels_ready = False  # ... and this is True once they are mounted

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
                with TabbedContent(id="tabs"):  # the panes' contents come right after the first frame
                    yield TabPane("Curves", id="tab-curves")
                    yield TabPane("LR·tok/s", id="tab-lr")
                    yield TabPane("Log", id="tab-log")
                    yield TabPane("Samples", id="tab-samples")
                    with TabPane("Config", id="tab-detail"):
                        yield Vertical(id="detail-scroll")
        yield Footer(compact=True)  # every key fits at 80 columns

    def on_mount(self) -> None:
        runs_dir = self.app.runs_dir
        try:
            scan = scan_store(runs_dir)
        except Exception:  # unreadable runs folder: start empty, the scanner retries
            scan = StoreScan({}, [], None)
        self.apply_scan(scan)
        table = self.query_one("#experiments", ExperimentTable)
        table.focus()
        live = [s for runs in scan.runs.values() for s in runs
                if s.status == Status.RUNNING and s.run.experiment in self.cfg.experiments]
        if live:  # reattach: open on the run that is training now (the latest started, if several)
            table.highlight(max(live, key=lambda s: s.info.get("started_at") or 0).run.experiment)
        self.scanner = StoreScanner(runs_dir, lambda scan: self.post_message(StoreScanned(scan)))
        # the threads start before the first frame: a long history is read while the frame is
        # drawn (starting them after it showed a 100,000-step run 0.4 s later, measured)
        self.watcher.start()
        self.scanner.start()
        self.load_counts()

    async def mount_panels(self) -> None:
        """Right after the first frame (the app calls it from its ``post_display_hook``): mount
        the progress bar and the tabs' contents (the four plots, with textual-plotext; the log,
        samples and config views), which that frame does not show, and draw them from the
        current snapshot."""
        from textual.widget import MountError

        from ..widgets.plots import CurvePlot

        try:
            bar = ProgressBar(id="progress", show_eta=False)
            bar.display = False
            await self.query_one("#right").mount(bar, after="#stats")
            w, h = self.size
            await self.query_one("#tab-curves", TabPane).mount(
                Static(too_small_text(w, h), classes="too-small"),
                Horizontal(CurvePlot("loss (nats/token)", short_title="loss", id="loss-plot"),
                           CurvePlot("val perplexity", short_title="val ppl", ylog=True, id="ppl-plot"),
                           classes="plots"))
            await self.query_one("#tab-lr", TabPane).mount(
                Static(too_small_text(w, h), classes="too-small"),
                Horizontal(CurvePlot("learning rate", short_title="lr", id="lr-plot"),
                           CurvePlot("tokens/s (per log window)", short_title="tokens/s", id="tps-plot"),
                           classes="plots"))
            await self.query_one("#tab-log", TabPane).mount(LogTail(id="log"))
            await self.query_one("#tab-samples", TabPane).mount(SamplesView(id="samples"))
            await self.query_one("#detail-scroll").mount(ExperimentDetail(id="detail"))
        except MountError:
            if self.app.return_code is None:
                raise
            return  # the app is closing right after its first frame (a bad experiments file)
        if self.app.return_code is not None:
            return  # closing: the mounts above may have been undone
        self.panels_ready = True
        self._tab_drawn.clear()
        self._detail_key = None
        self.show_detail(self.highlighted_experiment())
        self.draw(self.snapshot)

    def on_resize(self, event) -> None:
        w, h = event.size
        self.set_class(w < MIN_PLOT_SIZE[0] or h < MIN_PLOT_SIZE[1], "-too-small")
        for label in self.query(".too-small").results(Static):
            label.update(too_small_text(w, h))

    def on_unmount(self) -> None:
        self.watcher.stop()
        if self.scanner is not None:
            self.scanner.stop()

    # ------------------------------------------------------------------ actions
    def action_train(self) -> None:
        """Start training the highlighted experiment in a detached process."""
        from ...runs.launcher import launch_detached

        name = self.highlighted_experiment()
        if name is None:
            return
        busy = self.running_run(name)
        try:
            run, proc = launch_detached(name, config=self.cfg.path, runs_dir=self.app.runs_dir,
                                        cwd=self.cfg.path.resolve().parent)
        except OSError as exc:
            self.notify(f"cannot start {name}: {exc}", severity="error", markup=False)
            return
        self._launched(proc)
        self.follow_new_run(run, proc)
        extra = f" (beside the running {busy.run_id})" if busy else ""
        self.notify(f"started {name}{extra}: {run.path}", title="train", markup=False)

    def action_stop(self) -> None:
        """Ask the selected run (or, if it is not running, the highlighted experiment's running
        run) to stop gracefully: it saves a checkpoint and ends as 'stopped'."""
        from ...runs.launcher import stop_run

        targets = [r for r in (self.selected, self.running_run(self.highlighted_experiment())) if r is not None]
        for run in targets:
            if stop_run(run):
                self.notify(f"stopping {run.experiment}/{run.run_id} (saving a checkpoint)", title="stop")
                return
        if any(str(r.path) in self.launched or str(r.path) in self.resuming for r in targets):
            self.notify("the run is still starting: press s again in a moment", severity="warning")
        else:
            self.notify("no running run selected", severity="warning")

    def action_resume(self) -> None:
        """Resume the selected stopped / interrupted run from its last checkpoint; the run shows
        as "resuming" at once, until its process writes that it runs."""
        from ...runs.launcher import launch_detached

        run = self.selected
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        if str(run.path) in self.resuming:
            self.notify("this run is resuming already", severity="warning")
            return
        status = Status.of(run.read_run().get("status"))
        if status is None or not status.is_resumable:
            self.notify(f"only a stopped or interrupted run can be resumed (this one is {status or 'starting'})",
                        severity="warning")
            return
        if not run.can_resume():
            self.notify("this run has no checkpoint to resume from", severity="warning")
            return
        try:
            _, proc = launch_detached(run.experiment, config=self.cfg.path, runs_dir=self.app.runs_dir, resume=run,
                                      cwd=self.cfg.path.resolve().parent)
        except OSError as exc:
            self.notify(f"cannot resume: {exc}", severity="error", markup=False)
            return
        self._launched(proc)
        self.resuming[str(run.path)] = proc
        if self.snapshot is not None and self.snapshot.run.path == run.path:
            self.snapshot = self._as_resuming(self.snapshot)
            self.draw(self.snapshot)
        self.refresh_runs()
        self.select_run(run, proc)
        self.notify(f"resuming {run.experiment}/{run.run_id}", title="resume")

    def action_enqueue(self) -> None:
        """Add the highlighted experiment to the queue; start the queue runner if none runs."""
        from ...runs import queue

        name = self.highlighted_experiment()
        if name is None:
            return
        try:
            entries = queue.add(self.app.runs_dir, name, self.cfg.path)
            started = queue.start_runner(self.app.runs_dir)
        except OSError as exc:
            self.notify(f"cannot queue {name}: {exc}", severity="error", markup=False)
            return
        self.notify("queue: " + " → ".join(e["experiment"] for e in entries) + (" (runner started)" if started else ""),
                    title="queue", markup=False)
        if self.scanner is not None:
            self.scanner.poke()

    def action_sweep(self) -> None:
        """Queue the highlighted experiment's sweep grid (``tui-lab sweep NAME``): every point is
        validated first, then all are queued or none; the queue runner starts if none runs."""
        from ...config import ConfigError
        from ...config.sweep import enqueue_sweep, plan_sweep

        name = self.highlighted_experiment()
        if name is None:
            return
        try:
            plan = plan_sweep(self.cfg, name)
            entries = enqueue_sweep(plan, self.app.runs_dir, self.cfg.path)
        except ConfigError as exc:
            self.notify(str(exc), title="sweep", severity="warning", markup=False)
            return
        except OSError as exc:
            self.notify(f"cannot queue the sweep of {name}: {exc}", severity="error", markup=False)
            return
        self.notify(f"sweep {plan.id}: {len(entries)} runs of {name} queued", title="sweep", markup=False)
        if self.scanner is not None:
            self.scanner.poke()

    def action_chat(self) -> None:
        """Chat with the selected run's best checkpoint."""
        run = self.selected
        ckpt = run.chat_checkpoint() if run else None
        if ckpt is None:
            self.notify("no checkpoint yet: the trainer saves one at each evaluation", severity="warning")
            return
        try:
            from .chat import ChatScreen
        except ImportError as exc:
            self.notify(f"chat not available: {exc}", severity="error", markup=False)
            return
        self.app.push_screen(ChatScreen(ckpt))

    def action_results(self) -> None:
        """Every run in a table (loaded in a worker); export."""
        try:
            from .results import ResultsScreen
        except ImportError as exc:
            self.notify(f"results not available: {exc}", severity="error", markup=False)
            return
        self.app.push_screen(ResultsScreen(self.app.runs_dir, self.cfg.settings.gpu_hour_price_usd,
                                           self.cfg.experiments))

    def action_mark(self) -> None:
        """Mark the selected run for the compare view, or unmark it (marks stay while other
        experiments are shown)."""
        run = self.selected
        if run is None:
            self.notify("no run selected to mark", severity="warning")
            return
        key = str(run.path)
        if key in self.marked:
            del self.marked[key]
        else:
            self.marked[key] = run
        self.refresh_runs()

    def action_compare(self) -> None:
        """Open the compare view on the marked runs."""
        if not self.marked:
            self.notify("mark runs with space first (any experiments), then press v", severity="warning")
            return
        from .compare import CompareScreen

        self.app.push_screen(CompareScreen(list(self.marked.values()), self.cfg.settings.gpu_hour_price_usd))

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def palette_commands(self):
        """This screen's keys in the command palette (ctrl+p)."""
        yield SystemCommand("Train", "Train the highlighted experiment in the background (t)", self.action_train)
        yield SystemCommand("Stop", "Stop the selected run gracefully (s)", self.action_stop)
        yield SystemCommand("Resume", "Resume the selected stopped run (R)", self.action_resume)
        yield SystemCommand("Queue", "Add the highlighted experiment to the queue (a)", self.action_enqueue)
        yield SystemCommand("Sweep", "Queue the highlighted experiment's sweep grid (w)", self.action_sweep)
        yield SystemCommand("Chat", "Chat with the selected run's best checkpoint (c)", self.action_chat)
        yield SystemCommand("Results", "Result tables and export (r)", self.action_results)
        yield SystemCommand("Mark run", "Mark / unmark the selected run for the compare view (space)",
                            self.action_mark)
        yield SystemCommand("Compare", "Overlay the marked runs, pin a baseline, diff their configs (v)",
                            self.action_compare)
        descriptions = {"tab-curves": "loss and validation perplexity curves",
                        "tab-lr": "learning rate and tokens/s curves", "tab-log": "the run's train.log",
                        "tab-samples": "sample generations", "tab-detail": "the experiment's config"}
        for i, (tab, label) in enumerate(TABS.items(), 1):
            yield SystemCommand(f"Tab {i}: {label}", f"Show the {label} tab: {descriptions[tab]} ({i})",
                                lambda tab=tab: self.action_show_tab(tab))

    # ------------------------------------------------------------------ selection
    @property
    def cfg(self):
        return self.app.cfg

    def highlighted_experiment(self) -> str | None:
        return self.query_one("#experiments", ExperimentTable).highlighted

    def runs_of(self, name: str | None) -> list[RunSummary]:
        """The experiment's runs, oldest first, with the ones just launched (not yet on disk)
        last, and the ones resuming shown so."""
        if name is None:
            return []
        runs = list(self.scan.runs.get(name, [])) if self.scan else []
        runs = [RunSummary(s.run, {**s.info, "status": RESUMING}) if str(s.run.path) in self.resuming else s
                for s in runs]
        on_disk = {str(s.run.path) for s in runs}
        runs += [lr.summary() for key, lr in self.launched.items()
                 if lr.run.experiment == name and key not in on_disk]
        return runs

    def running_run(self, name: str | None) -> RunDir | None:
        for s in reversed(self.runs_of(name)):
            if s.is_live:
                return s.run
        return None

    def select_run(self, run: RunDir | None, proc: Any = None) -> None:
        """Point the panels at ``run``; the watcher thread reads its history and posts it."""
        if run is not None and self.selected is not None and run.path == self.selected.path and proc is None:
            return
        self.selected = run
        if run is None:
            self.snapshot = None
            self.watcher.follow(None)
            self.draw(None)
        else:
            if self.snapshot is not None and self.snapshot.run.path != run.path:
                self.snapshot = None
            if self.snapshot is None:  # until the watcher has read it
                self.query_one("#stats", RunStats).show(None, placeholder=f"reading {run.experiment}/{run.run_id} …")
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
    def _launched(self, proc: Any) -> None:
        """Keep ``proc`` (a process this screen started) to reap it when it ends."""
        self.launched_procs.append(proc)
        if self._reaper is None:
            self._reaper = self.set_interval(1.0, self.reap)

    def reap(self) -> None:
        """Collect the exit status of launched processes that ended (no ``<defunct>`` left
        behind); ``poll`` never blocks. The timer stops when none is left."""
        before = len(self.launched_procs) + len(self.resuming)
        self.launched_procs = [p for p in self.launched_procs if p.poll() is None]
        for key, proc in list(self.resuming.items()):
            if proc.poll() is not None:
                del self.resuming[key]
        if not self.launched_procs and self._reaper is not None:
            self._reaper.stop()
            self._reaper = None
        if len(self.launched_procs) + len(self.resuming) != before:
            self.refresh_left()  # a run that died before writing run.json shows "failed"

    def apply_scan(self, scan: StoreScan) -> None:
        self.scan = scan
        on_disk = {str(s.run.path): s for runs in scan.runs.values() for s in runs}
        for key in [k for k in self.launched if k in on_disk]:
            del self.launched[key]  # its run.json is written: the scans show it from now on
        for key in [k for k in self.resuming if k in on_disk and on_disk[k].is_live]:
            del self.resuming[key]
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
        title = Text.assemble("Runs of ", (name or "-", "bold"), f" ({len(runs)})" if runs else " (none yet)")
        if self.marked:
            title.append(f" · {len(self.marked)} marked: v", style="bold")
        self.query_one("#runs-title", Label).update(title)
        if self.follow_latest or (self.selected is not None and self.selected.experiment != name):
            want = runs[-1].run if runs else None
            if (want is None) != (self.selected is None) or (want and self.selected and want.path != self.selected.path):
                self.select_run(want)
        self.query_one("#runs", RunsTable).set_runs(runs, self.selected.path if self.selected else None,
                                                   set(self.marked))
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
        counts_row = self.counts.get(name or "", {})
        key = (name, validated, json.dumps(counts_row, sort_keys=True, default=str), self.counts_state,
               latest_info.get("num_params"), latest_info.get("train_tokens"))
        if key == self._detail_key or not self.panels_ready:
            return
        self._detail_key = key
        self.query_one("#detail", ExperimentDetail).show(name, exp, counts_row, latest_info,
                                                          counting=self.counts_state == "loading")

    @work(exclusive=True, group="counts")
    async def load_counts(self) -> None:
        """Exact parameter counts and cached token counts (:mod:`tui_lab.app.counts`: a
        subprocess, so the app's own process never imports torch)."""
        try:
            self.counts = await counts.experiment_counts(self.cfg.path)
            self.counts_state = "done"
        except (OSError, ValueError, KeyError, TypeError):
            self.counts_state = "failed"
        self._detail_key = None
        self.refresh_left()

    # ------------------------------------------------------------------ the live run
    def _as_resuming(self, snap: RunSnapshot) -> RunSnapshot:
        return dataclasses.replace(snap, info={**snap.info, "status": RESUMING, "message": None})

    @on(RunUpdated)
    def _run_updated(self, message: RunUpdated) -> None:
        if message.run is None or self.selected is None or message.run.path != self.selected.path:
            return
        snap = message.snapshot
        key = str(message.run.path)
        if snap is not None:
            self._scan_if_stale(snap)
        if snap is not None and key in self.resuming:
            proc = self.resuming[key]
            if is_live(snap.status) or proc.poll() is not None:
                del self.resuming[key]
                self.refresh_runs()
            else:
                snap = self._as_resuming(snap)
        self.snapshot = snap
        self.draw(snap)
        if snap is not None:
            self.query_one("#runs", RunsTable).show_step(snap.run.path, snap.progress()[0])
        if snap is not None and not snap.history_complete:
            self.tail_on_screen_pending = True  # the app's post_display_hook tells the watcher

    def _scan_if_stale(self, snap: RunSnapshot) -> None:
        """The run panel reads run.json every 0.25 s, the tables every store scan (2 s): when the
        selected run's status or best val ppl moved on, rescan now, so the experiments table,
        the runs list and the panel never show two different "best" figures for long."""
        if self.scanner is None or self.scan is None:
            return
        summary = next((r for r in self.scan.runs.get(snap.run.experiment, []) if r.run.path == snap.run.path), None)
        if summary is not None and (summary.info.get("best_val_ppl") != snap.info.get("best_val_ppl")
                                    or summary.info.get("status") != snap.info.get("status")):
            self.scanner.poke()

    def draw(self, snap: RunSnapshot | None) -> None:
        """The figures and progress bar always; the tabs' contents only for the tab in view
        (the others catch up when they are opened)."""
        self.query_one("#stats", RunStats).show(snap)
        if not self.panels_ready:
            return  # mount_panels draws it all
        bar = self.query_one("#progress", ProgressBar)
        step, total = snap.progress() if snap else (0, None)
        bar.display = total is not None
        if total is not None:
            bar.update(total=total, progress=min(step, total))
        self.draw_tab(self.query_one("#tabs", TabbedContent).active)

    def draw_tab(self, tab: str) -> None:
        snap = self.snapshot
        key = (str(snap.run.path), snap.version) if snap else None
        if self._tab_drawn.get(tab, ()) == key or not self.panels_ready:
            return
        self._tab_drawn[tab] = key

        from ..widgets.plots import NO_DATA, CurvePlot  # imported once the panels are mounted

        partial = snap is not None and not snap.history_complete
        mb = snap.history_total_bytes / 1e6 if snap else 0.0
        empty = f"reading the run's history ({mb:.{0 if mb >= 10 else 1}f} MB)…" if partial else NO_DATA

        def series(event: str, name: str) -> tuple[list[float], list[float]]:
            # a long history's tail alone would plot a cut curve: nothing until the whole is read
            return snap.series(event, name) if snap and not partial else ([], [])

        if tab == "tab-curves":
            self.query_one("#loss-plot", CurvePlot).set_series(
                [("train", *series("train", "train_loss")), ("val", *series("eval", "val_loss"))], key,
                empty_message=empty)
            self.query_one("#ppl-plot", CurvePlot).set_series([("val ppl", *series("eval", "val_ppl"))], key,
                                                              empty_message=empty)
        elif tab == "tab-lr":
            self.query_one("#lr-plot", CurvePlot).set_series([("lr", *series("train", "lr"))], key,
                                                             empty_message=empty)
            self.query_one("#tps-plot", CurvePlot).set_series([("tokens/s", *series("train", "tokens_per_s"))], key,
                                                              empty_message=empty)
        elif tab == "tab-log":
            self.query_one("#log", LogTail).show(snap.log_tail if snap else "")
        elif tab == "tab-samples":
            self.query_one("#samples", SamplesView).show(snap.samples() if snap else [])

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self.draw_tab(event.pane.id)

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


def too_small_text(width: int | None = None, height: int | None = None) -> Text:
    size = f" ({width}×{height})" if width and height else ""
    return Text(f"The terminal{size} is too small for the plots: enlarge it to at least "
                f"{MIN_PLOT_SIZE[0]}×{MIN_PLOT_SIZE[1]}.", style="dim")

"""The tui-lab Textual app: launches detached training runs and watches their folders.

Keys: t train · s stop · R resume · a queue · c chat · r results · q quit (also in the
command palette, ctrl+p). Training never runs in this process: it is a
``tui-lab train`` process in its own OS session, so quitting the app or losing the SSH
connection leaves it running; starting the app again shows it live. This module imports
neither torch nor anything that does: the chat screen imports it when it opens.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding

from ..config import ConfigError, ExperimentsConfig
from .screens.main import MainScreen

RESUMABLE = ("stopped", "interrupted", "failed", "diverged")


class TuiLabApp(App):
    TITLE = "tui-lab"
    CSS_PATH = "app.tcss"
    BINDINGS = [Binding("ctrl+c", "quit", "Quit", show=False)]

    def __init__(self, cfg: ExperimentsConfig, runs_dir: Path | None = None):
        super().__init__()
        self.cfg = cfg
        base = Path(cfg.runs_dir)
        self.runs_dir = Path(runs_dir) if runs_dir else (base if base.is_absolute() else cfg.path.resolve().parent / base)
        self.sub_title = str(cfg.path)
        self.counts_enabled = True  # parameter / token counts from `tui-lab list --json` (off in snapshot tests)
        self.config_error: ConfigError | None = None  # set when the deferred validation fails

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        """What the first frame did not wait for, in a thread: the schema validation the CLI
        deferred (pydantic) and the plotting library. A bad file ends the app with exit code
        2 and :func:`run_app` raises its :class:`ConfigError`, so the user gets the message a
        full load would have given."""

        def check() -> None:
            if not getattr(self.cfg, "validated", True):
                try:
                    self.cfg.validate()
                except ConfigError as exc:
                    self.config_error = exc
                    self.call_from_thread(self.exit, return_code=2)
                    return
                self.call_from_thread(self._config_validated)
            from .widgets.plots import warm_up

            warm_up()

        self.run_worker(check, thread=True, group="config", name="validate experiments file")

    def _config_validated(self) -> None:
        try:
            main = self.main
        except LookupError:
            return
        main.show_detail(main.highlighted_experiment())

    @property
    def main(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    # ------------------------------------------------------------------ actions
    def action_train(self) -> None:
        """Start training the highlighted experiment in a detached process."""
        from ..runs.launcher import launch_detached

        main = self.main
        name = main.highlighted_experiment()
        if name is None:
            return
        busy = main.running_run(name)
        try:
            run, proc = launch_detached(name, config=self.cfg.path, runs_dir=self.runs_dir,
                                        cwd=self.cfg.path.resolve().parent)
        except OSError as exc:
            self.notify(f"cannot start {name}: {exc}", severity="error", markup=False)
            return
        main.follow_new_run(run, proc)
        extra = f" (beside the running {busy.run_id})" if busy else ""
        self.notify(f"started {name}{extra}: {run.path}", title="train", markup=False)

    def action_stop(self) -> None:
        """Ask the selected run (or, if it is not running, the highlighted experiment's running
        run) to stop gracefully: it saves a checkpoint and ends as 'stopped'."""
        from ..runs.launcher import stop_run

        main = self.main
        targets = [r for r in (main.selected, main.running_run(main.highlighted_experiment())) if r is not None]
        for run in targets:
            if stop_run(run):
                self.notify(f"stopping {run.experiment}/{run.run_id} (saving a checkpoint)", title="stop")
                return
        if any(str(r.path) in main.launched for r in targets):
            self.notify("the run is still starting: press s again in a moment", severity="warning")
        else:
            self.notify("no running run selected", severity="warning")

    def action_resume(self) -> None:
        """Resume the selected stopped / interrupted run from its last checkpoint."""
        from ..runs.launcher import launch_detached

        main = self.main
        run = main.selected
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        status = run.read_run().get("status")
        if status not in RESUMABLE:
            self.notify(f"only a stopped or interrupted run can be resumed (this one is {status or 'starting'})",
                        severity="warning")
            return
        if not run.can_resume():
            self.notify("this run has no checkpoint to resume from", severity="warning")
            return
        try:
            _, proc = launch_detached(run.experiment, config=self.cfg.path, runs_dir=self.runs_dir, resume=run,
                                      cwd=self.cfg.path.resolve().parent)
        except OSError as exc:
            self.notify(f"cannot resume: {exc}", severity="error", markup=False)
            return
        main.select_run(run, proc)
        self.notify(f"resuming {run.experiment}/{run.run_id}", title="resume")

    def action_enqueue(self) -> None:
        """Add the highlighted experiment to the queue; start the queue runner if none runs."""
        from ..runs import queue

        main = self.main
        name = main.highlighted_experiment()
        if name is None:
            return
        try:
            entries = queue.add(self.runs_dir, name, self.cfg.path)
            started = queue.start_runner(self.runs_dir)
        except OSError as exc:
            self.notify(f"cannot queue {name}: {exc}", severity="error", markup=False)
            return
        self.notify("queue: " + " → ".join(e["experiment"] for e in entries) + (" (runner started)" if started else ""),
                    title="queue", markup=False)
        if main.scanner is not None:
            main.scanner.poke()

    def action_chat(self) -> None:
        """Chat with the selected run's best checkpoint."""
        run = self.main.selected
        ckpt = run.chat_checkpoint() if run else None
        if ckpt is None:
            self.notify("no checkpoint yet: the trainer saves one at each evaluation", severity="warning")
            return
        try:
            from .screens.chat import ChatScreen
        except ImportError as exc:
            self.notify(f"chat not available: {exc}", severity="error", markup=False)
            return
        self.push_screen(ChatScreen(ckpt))

    def action_results(self) -> None:
        try:
            from .screens.results import ResultsScreen
        except ImportError as exc:
            self.notify(f"results not available: {exc}", severity="error", markup=False)
            return
        self.push_screen(ResultsScreen(self.runs_dir, self.cfg.settings.gpu_hour_price_usd))

    def get_system_commands(self, screen):
        """The app's keys in the command palette (ctrl+p), besides Textual's own."""
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            yield SystemCommand("Train", "Train the highlighted experiment in the background (t)", self.action_train)
            yield SystemCommand("Stop", "Stop the selected run gracefully (s)", self.action_stop)
            yield SystemCommand("Resume", "Resume the selected stopped run (R)", self.action_resume)
            yield SystemCommand("Queue", "Add the highlighted experiment to the queue (a)", self.action_enqueue)
            yield SystemCommand("Chat", "Chat with the selected run's best checkpoint (c)", self.action_chat)
            yield SystemCommand("Results", "Result tables and export (r)", self.action_results)


def run_app(cfg: ExperimentsConfig) -> None:
    """Open the app on a loaded experiments file (blocks until the user quits).

    Raises:
        ConfigError: the file was loaded with ``validate=False`` and failed its validation
            (the app closed itself right after its first frame).
    """
    app = TuiLabApp(cfg)
    app.run()
    if app.config_error is not None:
        raise app.config_error

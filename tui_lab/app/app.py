"""The tui-lab Textual app: launches detached training runs and watches their folders.

Keys: t train · s stop · R resume · a queue · c chat · r results · q quit (also in the
command palette, ctrl+p). Training never runs in this process: it is a
``tui-lab train`` process in its own OS session, so quitting the app or losing the SSH
connection leaves it running; starting the app again shows it live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding

from ..config import ExperimentsConfig
from .screens.main import MainScreen


class TuiLabApp(App):
    TITLE = "tui-lab"
    CSS_PATH = "app.tcss"
    BINDINGS = [Binding("ctrl+c", "quit", "Quit", show=False)]

    def __init__(self, cfg: ExperimentsConfig, runs_dir: Path | None = None):
        super().__init__()
        self.cfg = cfg
        base = Path(cfg.settings.runs_dir)
        self.runs_dir = runs_dir or (base if base.is_absolute() else cfg.path.resolve().parent / base)
        self.sub_title = str(cfg.path)
        self._nvml: Any = None
        self.counts_enabled = True  # parameter / token counts from `tui-lab list` (off in snapshot tests)

    def on_mount(self) -> None:
        self.push_screen(MainScreen())

    @property
    def main(self) -> MainScreen:
        return self.get_screen_stack_main()

    def get_screen_stack_main(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    # ------------------------------------------------------------------ actions
    def action_train(self) -> None:
        """Start training the highlighted experiment in a detached process."""
        from ..runs.launcher import launch_detached

        name = self.main.highlighted_experiment()
        if name is None:
            return
        run, _ = launch_detached(name, config=self.cfg.path, runs_dir=self.runs_dir,
                                 cwd=self.cfg.path.resolve().parent)
        self.notify(f"started {name}: {run.path}", title="train")
        self.main.refresh_runs()
        self.main.select_run(run)

    def action_stop(self) -> None:
        """Ask the selected run to stop gracefully (checkpoint, then status 'stopped')."""
        from ..runs.launcher import stop_run

        st = self.main.state
        if st is None or not stop_run(st.run):
            self.notify("no running run selected", severity="warning")
            return
        self.notify(f"stopping {st.run.experiment}/{st.run.run_id} (saving a checkpoint)", title="stop")

    def action_resume(self) -> None:
        """Resume the selected stopped / interrupted / failed run from its last checkpoint."""
        from ..runs.launcher import launch_detached

        st = self.main.state
        if st is None:
            return
        status = st.run.read_run().get("status")
        if status not in ("stopped", "interrupted", "failed", "diverged"):
            self.notify(f"only a stopped or interrupted run can be resumed (this one is {status})", severity="warning")
            return
        if not (st.run.checkpoint_dir / "last.state.pt").is_file():
            self.notify("this run has no checkpoint to resume from", severity="warning")
            return
        launch_detached(st.run.experiment, config=self.cfg.path, runs_dir=self.runs_dir, resume=st.run,
                        cwd=self.cfg.path.resolve().parent)
        self.notify(f"resuming {st.run.experiment}/{st.run.run_id}", title="resume")

    def action_enqueue(self) -> None:
        """Add the highlighted experiment to the queue (runs after the ones before it)."""
        from ..runs import queue

        name = self.main.highlighted_experiment()
        if name is None:
            return
        entries = queue.add(self.runs_dir, name, self.cfg.path)
        started = queue.start_runner(self.runs_dir)
        self.notify(f"queue: {', '.join(e['experiment'] for e in entries)}" + (" (runner started)" if started else ""),
                    title="queue")

    def action_chat(self) -> None:
        """Chat with the selected run's best checkpoint."""
        st = self.main.state
        ckpt = st.run.best_checkpoint() if st else None
        if ckpt is None:
            self.notify("no checkpoint yet: the trainer saves one at each evaluation", severity="warning")
            return
        from .screens.chat import ChatScreen

        self.push_screen(ChatScreen(ckpt))

    def action_results(self) -> None:
        from .screens.results import ResultsScreen

        self.push_screen(ResultsScreen(self.runs_dir, self.cfg.settings.gpu_hour_price_usd))

    def get_system_commands(self, screen):
        """The app's keys in the command palette (ctrl+p), besides Textual's own."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Train", "Train the highlighted experiment in the background (t)", self.action_train)
        yield SystemCommand("Stop", "Stop the selected run gracefully (s)", self.action_stop)
        yield SystemCommand("Resume", "Resume the selected stopped run (R)", self.action_resume)
        yield SystemCommand("Queue", "Queue the highlighted experiment (a)", self.action_enqueue)
        yield SystemCommand("Chat", "Chat with the selected run's best checkpoint (c)", self.action_chat)
        yield SystemCommand("Results", "Result tables and export (r)", self.action_results)

    # ------------------------------------------------------------------ GPU
    def gpu_line(self, info: dict[str, Any]) -> str:
        """GPU memory and utilisation through NVIDIA's management library, for CUDA runs."""
        device = str(info.get("device", ""))
        if not device.startswith("cuda"):
            return ""
        try:
            if self._nvml is None:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            nv = self._nvml
            index = int(device.split(":")[1]) if ":" in device else 0
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            return f"GPU {util.gpu}% · {mem.used / 2**30:.1f}/{mem.total / 2**30:.1f} GiB"
        except Exception:  # no driver, no library: the panel just says so
            return "GPU stats unavailable (NVML)"


def run_app(cfg: ExperimentsConfig) -> None:
    """Open the app on a loaded experiments file (blocks until the user quits)."""
    TuiLabApp(cfg).run()

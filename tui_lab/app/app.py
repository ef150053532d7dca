"""The tui-lab Textual app: launches detached training runs and watches their folders.

Keys (main screen): t train · s stop · R resume · a queue · c chat · r results · 1-5 tabs ·
space mark a run · v compare the marked runs (:mod:`.screens.compare`) ·
q quit (also in the command palette, ctrl+p). Training never runs in this process: it is a
``tui-lab train`` process in its own OS session, so quitting the app or losing the SSH
connection leaves it running; starting the app again shows it live. This module imports
neither torch nor anything that does: the chat screen imports it when it opens.

The app holds what every screen shares (the experiments file, the runs folder); each
screen holds its own actions (:class:`~tui_lab.app.screens.main.MainScreen`).
"""

from __future__ import annotations

import gc
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from ..config import ConfigError, ExperimentsConfig
from .messages import StoreScanned
from .notify import StateNotifier
from .screens.main import MainScreen


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
        self.notifier: StateNotifier | None = None  # notifications on run state changes (app/notify.py)
        self._last_scan = None  # the latest StoreScan, for the stall re-checks
        self.config_error: ConfigError | None = None  # set when the deferred validation fails
        self._gc_paused = not gc.isenabled()  # tui_lab.launch paused it for start-up

    def get_default_screen(self) -> MainScreen:
        """The main screen is the app's default screen (the bottom of the stack: no blank
        screen under it, and no second styling pass of a pushed screen before the first frame)."""
        return MainScreen()

    def on_mount(self) -> None:
        self.call_after_refresh(self._after_first_frame)

    def post_display_hook(self) -> None:
        """After every displayed frame (Textual's hook): the main screen's first one starts
        mounting what that frame did not show (:meth:`MainScreen.mount_panels`) at once,
        rather than when the screen is next idle (a busy first second can delay that by
        a few frames). It also tells the run watcher when the tail of a long history it posted
        is on screen, so that it reads the rest only then. The first frame also ends the pause
        of the garbage collector that :mod:`tui_lab.launch` starts with (when the app was made
        with it paused): what start-up allocated is frozen (:func:`gc.freeze`: never scanned
        again) and collection resumes."""
        if self._gc_paused:
            self._gc_paused = False
            gc.freeze()
            gc.enable()
        screen = self.screen
        if isinstance(screen, MainScreen):
            if not screen.panels_started:
                screen.panels_started = True
                screen.call_next(screen.mount_panels)
            if screen.tail_on_screen_pending:
                screen.tail_on_screen_pending = False
                screen.watcher.displayed()

    def _after_first_frame(self) -> None:
        """What the first frame did not wait for, in a thread: the schema validation the CLI
        deferred (pydantic; the main screen mounts its plots itself). A bad file ends the app with exit code
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

        self.run_worker(check, thread=True, group="config", name="validate experiments file")

    def _config_validated(self) -> None:
        try:
            main = self.main
        except LookupError:
            return
        main.show_detail(main.highlighted_experiment())

    def on_store_scanned(self, message: StoreScanned) -> None:
        """Every scan (bubbling up from the main screen): notify runs that changed state."""
        if not getattr(self.cfg, "validated", True):
            return  # the settings are read once the deferred validation has passed
        self._last_scan = message.scan
        if self.notifier is None:
            s = self.cfg.settings
            self.notifier = StateNotifier(lambda text, title, severity: self.notify(
                text, title=title, severity=severity, markup=False), self.bell if s.bell else None,
                self.call_from_thread, s.alerts.stall_minutes)
            # the scanner posts only when something changed, and a stall is the absence of change:
            # look again on a timer (a third of the stall time, between 1 and 30 s)
            self.set_interval(max(1.0, min(30.0, s.alerts.stall_minutes * 20.0)), self._recheck_stalls)
        self.notifier.update(message.scan)

    def _recheck_stalls(self) -> None:
        """Run the stall check again on the latest scan (no status changed: no notification)."""
        if self.notifier is not None and self._last_scan is not None:
            self.notifier.update(self._last_scan)

    @property
    def main(self) -> MainScreen:
        """The main screen (under any screen pushed over it)."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    def get_system_commands(self, screen):
        """Textual's commands, then the screen's own (its ``palette_commands``)."""
        yield from super().get_system_commands(screen)
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()


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

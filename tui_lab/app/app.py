"""The tui-lab Textual app: launches detached training runs and watches their folders.

Keys (main screen): t train · s stop · R resume · a queue · c chat · r results · 1-5 tabs ·
q quit (also in the command palette, ctrl+p). Training never runs in this process: it is a
``tui-lab train`` process in its own OS session, so quitting the app or losing the SSH
connection leaves it running; starting the app again shows it live. This module imports
neither torch nor anything that does: the chat screen imports it when it opens.

The app holds what every screen shares (the experiments file, the runs folder); each
screen holds its own actions (:class:`~tui_lab.app.screens.main.MainScreen`).
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
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
        self.runs_dir = Path(runs_dir) if runs_dir else (base if base.is_absolute() else cfg.path.resolve().parent / base)
        self.sub_title = str(cfg.path)

    def on_mount(self) -> None:
        self.push_screen(MainScreen())

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
    """Open the app on a loaded experiments file (blocks until the user quits)."""
    TuiLabApp(cfg).run()

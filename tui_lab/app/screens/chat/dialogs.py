"""The chat screen's dialogs: sampling settings, and picking a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from ....chat import PRESETS, SETTINGS, ChatError, parse_setting
from ....generate.sampling import SamplingParams

NUMBER_FIELDS = [k for k in SETTINGS if k != "seed"]


class SettingsDialog(ModalScreen[dict[str, Any] | None]):
    """Edit the preset and the sampling parameters; dismisses with ``{"preset": name,
    "params": SamplingParams}`` or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    SettingsDialog { align: center middle; }
    SettingsDialog #settings-dialog { width: 72; max-width: 100%; height: auto; max-height: 100%;
                                      border: thick $accent; background: $surface; padding: 0 2; overflow-y: auto; }
    SettingsDialog .setting, SettingsDialog .buttons { height: auto; }
    SettingsDialog .setting Label { width: 30; padding: 1 0; }
    SettingsDialog .setting Input { width: 1fr; }
    SettingsDialog #preset { margin-bottom: 1; }
    """

    def __init__(self, preset: str, params: SamplingParams):
        super().__init__()
        self.preset = preset
        self.params = params

    def compose(self) -> ComposeResult:
        p = self.params
        with Vertical(id="settings-dialog"):
            yield Label("Preset")
            yield Select([(f"{n}: {PRESETS[n].description}", n) for n in PRESETS], value=self.preset,
                         allow_blank=False, id="preset")
            for key, (label, _) in SETTINGS.items():
                with Horizontal(classes="setting"):
                    yield Label(label)
                    value = getattr(p, key)
                    yield Input("" if value is None else str(value), id=key)
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#preset")
    def _preset(self, event: Select.Changed) -> None:
        if str(event.value) == self.preset:
            return
        p = PRESETS[str(event.value)].params
        for key in NUMBER_FIELDS:
            self.query_one(f"#{key}", Input).value = str(getattr(p, key))

    def values(self) -> dict[str, Any]:
        """The dialog's values, validated; the preset's own stop strings come along.

        Raises:
            ChatError: a value that is not a number or is out of range (names it).
        """
        preset = str(self.query_one("#preset", Select).value)
        params = PRESETS[preset].params
        for key in SETTINGS:
            params = parse_setting(key, self.query_one(f"#{key}", Input).value, params)
        return {"preset": preset, "params": params}

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        try:
            out = self.values()
        except ChatError as exc:
            self.notify(f"invalid setting: {exc}", severity="error", markup=False)
            return
        self.dismiss(out)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


def find_checkpoints(runs_dir: Path | None) -> list[tuple[str, Path]]:
    """``(experiment/run-id, best or last checkpoint)`` for every run under ``runs_dir``, newest first."""
    from ....runs.store import RunDir

    if runs_dir is None or not Path(runs_dir).is_dir():
        return []
    found = []
    for ckpt_dir in Path(runs_dir).glob("*/*/checkpoints"):
        ckpt = RunDir(ckpt_dir.parent).chat_checkpoint()
        if ckpt is not None:
            found.append((ckpt.stat().st_mtime, str(ckpt_dir.parent.relative_to(runs_dir)), ckpt))
    return [(label, ckpt) for _, label, ckpt in sorted(found, reverse=True)]


class PickCheckpoint(ModalScreen[Path | None]):
    """Pick a checkpoint from the runs folder, or type a path (a checkpoint file, a run
    folder or an experiment folder)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    PickCheckpoint { align: center middle; }
    PickCheckpoint #pick-dialog { width: 80; max-width: 100%; height: auto; border: thick $accent;
                                  background: $surface; padding: 1 2; }
    PickCheckpoint Input, PickCheckpoint Select { margin-bottom: 1; }
    """

    def __init__(self, runs_dir: Path | None, title: str = "Which checkpoint?", action: str = "Open"):
        super().__init__()
        self.runs_dir = runs_dir
        self.title_text = title
        self.action_text = action

    def compose(self) -> ComposeResult:
        found = find_checkpoints(self.runs_dir)
        with Vertical(id="pick-dialog"):
            yield Label(self.title_text)
            yield Select([(label, str(p)) for label, p in found], id="pick",
                         prompt="a run's checkpoint" if found else "no runs with a checkpoint yet")
            yield Input(placeholder="or a checkpoint file / run folder path", id="pick-path")
            yield Button(self.action_text, variant="primary", id="ok")

    @on(Input.Submitted, "#pick-path")
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        typed = self.query_one("#pick-path", Input).value.strip()
        chosen = self.query_one("#pick", Select).value
        if typed:
            path = Path(typed).expanduser()
            if not path.exists() and not typed.startswith("hf:"):  # hf:NAME: a Hub model, resolved on load
                self.notify(f"{path}: no such file or folder", severity="warning", markup=False)
                return
            self.dismiss(path)
        elif not self.query_one("#pick", Select).is_blank():
            self.dismiss(Path(str(chosen)))
        else:
            self.notify("choose a checkpoint or type a path", severity="warning")

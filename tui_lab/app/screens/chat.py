"""The chat pane: stream replies from one checkpoint, or two side by side (compare).

Generation runs in a thread worker (torch is imported when the screen opens, not at
app start-up); tokens are buffered and the reply widget is updated at most ~10 times a
second, then once in full. Esc stops a generation (a second Esc leaves); ``ctrl+s`` (or F2)
edits the sampling settings; ``ctrl+k`` adds a second checkpoint to compare; ``ctrl+y``
copies the last reply (OSC 52: works over SSH); ``ctrl+e`` exports the transcript as
Markdown.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

STREAM_INTERVAL_S = 0.1


class Reply(Static):
    """One message in a transcript."""


class ChatPane(Vertical):
    """One checkpoint's transcript, its generator and its per-reply stats."""

    def __init__(self, checkpoint: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.checkpoint = Path(checkpoint)
        self.generator: Any = None
        self.transcript: Any = None
        self.stop_event = threading.Event()
        self.busy = False
        self.last_reply = ""

    def compose(self) -> ComposeResult:
        yield Label(Text(str(self.checkpoint)), classes="pane-title")
        yield VerticalScroll(classes="messages")
        yield Static("loading…", classes="pane-stats")

    def add_message(self, text: str, who: str) -> Reply:
        scroll = self.query_one(".messages", VerticalScroll)
        at_bottom = scroll.scroll_y >= scroll.max_scroll_y - 1
        msg = Reply(text, classes=who, markup=False)
        scroll.mount(msg)
        if at_bottom:
            scroll.scroll_end(animate=False)
        return msg

    def set_stats(self, text: str | Text) -> None:
        self.query_one(".pane-stats", Static).update(text)


class SettingsDialog(ModalScreen[dict[str, Any] | None]):
    """Edit preset and sampling parameters."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, preset: str, params: Any):
        super().__init__()
        self.preset = preset
        self.params = params

    def compose(self) -> ComposeResult:
        from ...generate import PRESETS

        p = self.params
        with Vertical(id="settings-dialog"):
            yield Label("Preset")
            yield Select([(n, n) for n in PRESETS], value=self.preset, allow_blank=False, id="preset")
            for key, label in (("temperature", "temperature (0 = greedy)"), ("top_k", "top-k (0 = off)"),
                               ("top_p", "top-p"), ("repetition_penalty", "repetition penalty"),
                               ("max_new_tokens", "max new tokens")):
                yield Label(label)
                yield Input(str(getattr(p, key)), id=key)
            with Horizontal():
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#preset")
    def _preset(self, event: Select.Changed) -> None:
        from ...generate import PRESETS

        p = PRESETS[str(event.value)].params
        for key in ("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens"):
            self.query_one(f"#{key}", Input).value = str(getattr(p, key))

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        out: dict[str, Any] = {"preset": str(self.query_one("#preset", Select).value)}
        try:
            for key, cast in (("temperature", float), ("top_k", int), ("top_p", float),
                              ("repetition_penalty", float), ("max_new_tokens", int)):
                out[key] = cast(self.query_one(f"#{key}", Input).value)
            replace(self.params, **{k: v for k, v in out.items() if k != "preset"}).validate()
        except ValueError as exc:
            self.notify(f"invalid setting: {exc}", severity="error")
            return
        self.dismiss(out)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class PickCheckpoint(ModalScreen[Path | None]):
    """Pick a checkpoint from the runs folder, or type a path."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, runs_dir: Path | None):
        super().__init__()
        self.runs_dir = runs_dir

    def compose(self) -> ComposeResult:
        found = sorted(Path(self.runs_dir).glob("*/*/checkpoints/best.safetensors")) if self.runs_dir else []
        with Vertical(id="pick-dialog"):
            yield Label("Compare with which checkpoint?")
            yield Select([(str(p.parent.parent.relative_to(self.runs_dir)), str(p)) for p in found], id="pick")
            yield Input(placeholder="or a checkpoint path / run folder", id="pick-path")
            yield Button("Compare", variant="primary", id="ok")

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        typed = self.query_one("#pick-path", Input).value.strip()
        chosen = self.query_one("#pick", Select).value
        if typed:
            self.dismiss(Path(typed))
        elif chosen not in (None, Select.BLANK):
            self.dismiss(Path(str(chosen)))
        else:
            self.notify("choose a checkpoint or type a path", severity="warning")


class ChatScreen(Screen):
    """Talk to ``checkpoint`` (and ``compare`` side by side, if given)."""

    BINDINGS = [
        Binding("escape", "stop_or_leave", "Stop / back"),
        Binding("ctrl+s,f2", "settings", "Settings"),
        Binding("ctrl+k", "compare", "Compare"),
        Binding("ctrl+y", "copy", "Copy reply"),
        Binding("ctrl+e", "export", "Export"),
    ]
    DEFAULT_CSS = """
    ChatScreen .pane-title { background: $panel; width: 100%; padding: 0 1; }
    ChatScreen .messages { height: 1fr; }
    ChatScreen .pane-stats { color: $text-muted; padding: 0 1; }
    ChatScreen Reply { padding: 0 1; margin-bottom: 1; }
    ChatScreen Reply.user { color: $accent; text-style: bold; }
    ChatScreen #panes > ChatPane { width: 1fr; border-right: tall $panel; }
    ChatScreen #settings-line { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, checkpoint: Path, compare: Path | None = None, runs_dir: Path | None = None,
                 device: str = "auto"):
        super().__init__()
        from ...generate import PRESETS

        self.checkpoints = [Path(checkpoint)] + ([Path(compare)] if compare else [])
        self.runs_dir = runs_dir
        self.device = device
        self.preset = "completion"
        self.params = PRESETS["completion"].params

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            for ckpt in self.checkpoints:
                yield ChatPane(ckpt)
        yield Static(id="settings-line")
        yield Input(placeholder="message (Enter to send; Esc stops a reply)", id="message")
        yield Footer()

    def on_mount(self) -> None:
        if self.runs_dir is None and hasattr(self.app, "runs_dir"):
            self.runs_dir = self.app.runs_dir
        self.show_settings()
        for pane in self.query(ChatPane):
            self.load(pane)
        self.query_one("#message", Input).focus()

    def show_settings(self) -> None:
        p = self.params
        self.query_one("#settings-line", Static).update(
            f"preset {self.preset} · T {p.temperature} · top-k {p.top_k} · top-p {p.top_p} · "
            f"penalty {p.repetition_penalty} · max {p.max_new_tokens} tokens   (ctrl+s to change)")

    @property
    def panes(self) -> list[ChatPane]:
        return list(self.query(ChatPane))

    @work(thread=True, group="load")
    def load(self, pane: ChatPane) -> None:
        """Load the checkpoint (torch is imported here, in a worker thread)."""
        from ...errors import TuiLabError
        from ...generate import Generator
        from ...generate.transcript import Transcript

        try:
            gen = Generator.from_checkpoint(pane.checkpoint, self.device)
        except TuiLabError as exc:
            self.app.call_from_thread(pane.set_stats, Text(f"cannot load: {exc}", style="red"))
            return
        pane.generator = gen
        pane.transcript = Transcript(Path(gen.metadata["checkpoint"]))
        cfg = gen.model.config
        self.app.call_from_thread(
            pane.set_stats, f"{cfg['kind']} · d_model {cfg['d_model']} · {cfg['num_layers']} layers · "
                            f"{gen.tokenizer.name} tokenizer · {gen.device} · ready")

    @on(Input.Submitted, "#message")
    def send(self, event: Input.Submitted) -> None:
        message = event.value
        if not message.strip():
            return
        if any(p.busy for p in self.panes):
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        event.input.value = ""
        for pane in self.panes:
            if pane.generator is None:
                pane.set_stats("[yellow]not loaded yet[/]")
                continue
            pane.add_message(message, "user")
            reply = pane.add_message("…", "bot")
            pane.busy = True
            pane.stop_event.clear()
            self.generate(pane, reply, message)

    @work(thread=True, group="generate")
    def generate(self, pane: ChatPane, reply: Reply, message: str) -> None:
        from ...generate import PRESETS, fit_history
        from ...generate.transcript import Turn

        preset = PRESETS[self.preset]
        gen = pane.generator
        params = self.params
        history = fit_history(preset, message, pane.transcript.history(), gen.tokenizer.encode, gen.max_len,
                              params.max_new_tokens) if preset.keeps_history else []
        prompt = preset.prompt(message, history)
        gen.on_full = preset.on_full
        shown = message if self.preset == "completion" else ""
        text = ""
        last_push = 0.0
        try:
            for ev in gen.stream(prompt, params, stop_rule=preset.stop_rule, should_stop=pane.stop_event.is_set):
                text += ev.text
                now = time.monotonic()
                if now - last_push >= STREAM_INTERVAL_S:  # batch the appends: ~10 redraws a second
                    last_push = now
                    self.app.call_from_thread(reply.update, shown + text)
        except Exception as exc:  # a generation error must not take the app down
            self.app.call_from_thread(pane.set_stats, Text(f"generation failed: {exc}", style="red"))
            pane.busy = False
            return
        stats = gen.last_stats
        final = preset.reply(stats.text)
        pane.last_reply = final
        pane.transcript.add(Turn(message, final, self.preset, stats.as_dict(), str(pane.checkpoint)))

        def finish() -> None:
            reply.update(shown + final if self.preset == "completion" else final)
            pane.set_stats(f"{stats.n_tokens} tokens · {stats.tokens_per_s:.1f} tokens/s · "
                           f"time to first token {stats.ttft_s or 0:.3f} s · {stats.stop_reason}")
            pane.busy = False
            pane.query_one(".messages", VerticalScroll).scroll_end(animate=False)

        self.app.call_from_thread(finish)

    # ------------------------------------------------------------------ actions
    def action_stop_or_leave(self) -> None:
        busy = [p for p in self.panes if p.busy]
        if busy:
            for p in busy:
                p.stop_event.set()
            self.notify("stopped", timeout=1.5)
        else:
            self.app.pop_screen()

    def action_settings(self) -> None:
        def done(values: dict[str, Any] | None) -> None:
            if values:
                self.preset = values.pop("preset")
                self.params = replace(self.params, **values)
                self.show_settings()

        self.app.push_screen(SettingsDialog(self.preset, self.params), done)

    def action_compare(self) -> None:
        if len(self.panes) >= 2:
            self.notify("already comparing two checkpoints", severity="warning")
            return

        def done(path: Path | None) -> None:
            if path is None:
                return
            pane = ChatPane(path)
            self.query_one("#panes", Horizontal).mount(pane)
            self.load(pane)

        self.app.push_screen(PickCheckpoint(self.runs_dir), done)

    def action_copy(self) -> None:
        reply = next((p.last_reply for p in self.panes if p.last_reply), "")
        if reply:
            self.app.copy_to_clipboard(reply)
            self.notify("copied the last reply (OSC 52)")

    def action_export(self) -> None:
        for pane in self.panes:
            if pane.transcript and pane.transcript.turns:
                out = pane.transcript.path.with_suffix(".md")
                pane.transcript.export_markdown(out)
                self.notify(f"wrote {out}", title="export")

"""The chat screen: stream replies from one checkpoint, or from two side by side (compare).

Generation runs in a thread worker; torch is imported when the screen opens, never at
app start-up. Tokens are buffered and a reply is redrawn at most ~10 times a second
(:attr:`ChatScreen.stream_interval_s`), then once in full, so a growing reply never
stalls the UI. Replies are plain text (``Static``, no markup): a small model's output is
not Markdown, and ``= = Heading = =`` or ``*`` must show as generated; the export is Markdown.

Keys (none of them taken from the message box's own editing keys): Enter sends · Esc stops
a generation (a second Esc leaves) · ctrl+s / F2 settings (preset, temperature, top-k,
top-p, repetition penalty, max tokens, seed) · ctrl+o / F3 opens another checkpoint (runs
list or a path) · ctrl+t / F4 compares with a second checkpoint · ctrl+y copies the last
reply (``App.copy_to_clipboard``: OSC 52, works over SSH) · ctrl+g / F5 exports the
transcript as Markdown · ctrl+r starts a new chat (forgets the history).

Transcripts are saved as they go in the run folder's ``chats/`` (see
:mod:`tui_lab.generate.transcript`). Training runs are separate processes, so a chat can
run beside one; on the CPU the screen uses half the cores so that it does not starve it.
"""

from __future__ import annotations

import os
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
SETTING_FIELDS = (("temperature", "temperature (0 = greedy)", float), ("top_k", "top-k (0 = off)", int),
                  ("top_p", "top-p (1 = off)", float), ("repetition_penalty", "repetition penalty (1 = off)", float),
                  ("max_new_tokens", "max new tokens", int))


class Reply(Static):
    """One message in a transcript (plain text)."""


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
        self.last_stats: Any = None

    def compose(self) -> ComposeResult:
        yield Label(Text(str(self.checkpoint)), classes="pane-title")
        yield VerticalScroll(classes="messages")
        yield Static(Text("loading…"), classes="pane-stats")

    def on_unmount(self) -> None:
        self.stop_event.set()  # a pane that goes away (screen closed, checkpoint replaced) stops its reply

    @property
    def messages(self) -> VerticalScroll:
        return self.query_one(".messages", VerticalScroll)

    def at_bottom(self) -> bool:
        scroll = self.messages
        return scroll.scroll_y >= scroll.max_scroll_y - 1

    def add_message(self, text: str, who: str) -> Reply:
        follow = self.at_bottom()
        msg = Reply(Text(text), classes=who)
        self.messages.mount(msg)
        if follow:
            self.messages.scroll_end(animate=False)
        return msg

    def show_reply(self, reply: Reply, text: str) -> None:
        """Redraw a streaming reply; follow it down only if the view was at the bottom."""
        if not reply.is_attached:
            return
        follow = self.at_bottom()
        reply.update(Text(text))
        if follow:
            self.messages.scroll_end(animate=False)

    def set_stats(self, text: str | Text) -> None:
        self.query_one(".pane-stats", Static).update(Text(text) if isinstance(text, str) else text)


class SettingsDialog(ModalScreen[dict[str, Any] | None]):
    """Edit the preset and the sampling parameters; dismisses with the new values."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    SettingsDialog { align: center middle; }
    SettingsDialog #settings-dialog { width: 72; height: auto; max-height: 100%; border: thick $accent;
                                      background: $surface; padding: 0 2; overflow-y: auto; }
    SettingsDialog .setting, SettingsDialog .buttons { height: auto; }
    SettingsDialog .setting Label { width: 30; padding: 1 0; }
    SettingsDialog .setting Input { width: 1fr; }
    SettingsDialog #preset { margin-bottom: 1; }
    """

    def __init__(self, preset: str, params: Any):
        super().__init__()
        self.preset = preset
        self.params = params

    def compose(self) -> ComposeResult:
        from ...generate import PRESETS

        p = self.params
        with Vertical(id="settings-dialog"):
            yield Label("Preset")
            yield Select([(f"{n}: {PRESETS[n].description}", n) for n in PRESETS], value=self.preset,
                         allow_blank=False, id="preset")
            for key, label, _ in SETTING_FIELDS:
                with Horizontal(classes="setting"):
                    yield Label(label)
                    yield Input(str(getattr(p, key)), id=key)
            with Horizontal(classes="setting"):
                yield Label("seed (empty = random)")
                yield Input("" if p.seed is None else str(p.seed), id="seed")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#preset")
    def _preset(self, event: Select.Changed) -> None:
        from ...generate import PRESETS

        if str(event.value) == self.preset:
            return
        p = PRESETS[str(event.value)].params
        for key, _, _ in SETTING_FIELDS:
            self.query_one(f"#{key}", Input).value = str(getattr(p, key))

    def values(self) -> dict[str, Any]:
        """The dialog's values, validated.

        Raises:
            ValueError: a value that is not a number or is out of range (names it).
        """
        from ...generate import PRESETS

        preset = str(self.query_one("#preset", Select).value)
        out: dict[str, Any] = {"preset": preset}
        for key, label, cast in SETTING_FIELDS:
            raw = self.query_one(f"#{key}", Input).value.strip()
            try:
                out[key] = cast(raw)
            except ValueError:
                raise ValueError(f"{label.split(' (')[0]}: {raw!r} is not a {cast.__name__}") from None
        raw_seed = self.query_one("#seed", Input).value.strip()
        try:
            out["seed"] = int(raw_seed) if raw_seed else None
        except ValueError:
            raise ValueError(f"seed: {raw_seed!r} is not an integer") from None
        replace(PRESETS[preset].params, **{k: v for k, v in out.items() if k != "preset"}).validate()
        return out

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        try:
            out = self.values()
        except ValueError as exc:
            self.notify(f"invalid setting: {exc}", severity="error", markup=False)
            return
        self.dismiss(out)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


def find_checkpoints(runs_dir: Path | None) -> list[tuple[str, Path]]:
    """``(experiment/run-id, best or last checkpoint)`` for every run under ``runs_dir``, newest first."""
    from ...runs.store import RunDir

    if runs_dir is None or not Path(runs_dir).is_dir():
        return []
    found = []
    for ckpt_dir in Path(runs_dir).glob("*/*/checkpoints"):
        ckpt = RunDir(ckpt_dir.parent).chat_checkpoint()
        if ckpt is not None:
            found.append((ckpt.stat().st_mtime, str(ckpt_dir.parent.relative_to(runs_dir)), ckpt))
    return [(label, ckpt) for _, label, ckpt in sorted(found, reverse=True)]


class PickCheckpoint(ModalScreen[Path | None]):
    """Pick a checkpoint from the runs folder, or type a path (a run folder or a file)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    PickCheckpoint { align: center middle; }
    PickCheckpoint #pick-dialog { width: 80; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
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


class ChatScreen(Screen):
    """Talk to ``checkpoint`` (a file or a run folder), and to ``compare`` side by side if given.

    With ``checkpoint=None`` the screen opens by asking for one (runs list or a path).
    """

    BINDINGS = [
        Binding("escape", "stop_or_leave", "Stop / back"),
        Binding("ctrl+s,f2", "settings", "Settings"),
        Binding("ctrl+o,f3", "open", "Open checkpoint"),
        Binding("ctrl+t,f4", "compare", "Compare"),
        Binding("ctrl+y", "copy", "Copy reply"),
        Binding("ctrl+g,f5", "export", "Export"),
        Binding("ctrl+r", "reset", "New chat"),
    ]
    DEFAULT_CSS = """
    ChatScreen .pane-title { background: $panel; width: 100%; padding: 0 1; }
    ChatScreen .messages { height: 1fr; }
    ChatScreen .pane-stats { color: $text-muted; padding: 0 1; height: auto; }
    ChatScreen Reply { padding: 0 1; }
    ChatScreen Reply.bot { margin-bottom: 0; }
    ChatScreen Reply.user { color: $accent; text-style: bold; margin-top: 1; }
    ChatScreen .reply-stats { color: $text-muted; padding: 0 1; }
    ChatScreen #panes > ChatPane { width: 1fr; border-right: tall $panel; }
    ChatScreen #settings-line { color: $text-muted; padding: 0 1; }
    """
    stream_interval_s: float = STREAM_INTERVAL_S

    def __init__(self, checkpoint: Path | None, compare: Path | None = None, runs_dir: Path | None = None,
                 device: str = "auto", preset: str = "completion"):
        super().__init__()
        from ...generate import PRESETS

        self.checkpoints = [Path(c) for c in (checkpoint, compare) if c is not None]
        self.runs_dir = runs_dir
        self.device = device
        self.preset = preset if preset in PRESETS else "completion"
        self.params = PRESETS[self.preset].params
        self._threads_before: int | None = None
        self.cpu_threads = max(1, (os.cpu_count() or 2) // 2)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            for ckpt in self.checkpoints:
                yield ChatPane(ckpt)
        yield Static(id="settings-line")
        yield Input(placeholder="message (Enter sends; Esc stops a reply)", id="message")
        yield Footer()

    def on_mount(self) -> None:
        if self.runs_dir is None and hasattr(self.app, "runs_dir"):
            self.runs_dir = self.app.runs_dir
        self.show_settings()
        for pane in self.panes:
            self.load(pane)
        self.query_one("#message", Input).focus()
        if not self.checkpoints:
            self.action_open()

    def on_unmount(self) -> None:
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)

    def show_settings(self) -> None:
        p = self.params
        seed = "random" if p.seed is None else p.seed
        self.query_one("#settings-line", Static).update(Text(
            f"preset {self.preset} · T {p.temperature} · top-k {p.top_k} · top-p {p.top_p} · "
            f"penalty {p.repetition_penalty} · max {p.max_new_tokens} tokens · seed {seed}   (ctrl+s to change)"))

    @property
    def panes(self) -> list[ChatPane]:
        return list(self.query(ChatPane))

    @work(thread=True, group="load", exit_on_error=False)
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
        except Exception as exc:  # anything else a broken file can raise must not take the app down
            self.app.call_from_thread(pane.set_stats, Text(f"cannot load: {type(exc).__name__}: {exc}", style="red"))
            return
        if gen.device.type == "cpu" and self._threads_before is None:
            import torch

            self._threads_before = torch.get_num_threads()  # put back when the screen closes
        from ...models import count_parameters

        cfg = gen.model.config
        info = (f"{cfg.kind} · {count_parameters(gen.model):,} params · d_model {cfg.d_model} · "
                f"{cfg.num_layers} layers · context {cfg.max_seq_len} · {gen.tokenizer.name} tokenizer · "
                f"{gen.device} · ready")
        if gen.metadata.get("summary"):  # a converted checkpoint (seed scripts', exp7's, Hugging Face GPT-2)
            info += f"\n{gen.metadata['summary']}"
        transcript = Transcript(Path(gen.metadata["checkpoint"]))

        def ready() -> None:  # on the UI thread: the pane is usable exactly when it says "ready"
            pane.generator, pane.transcript = gen, transcript
            pane.set_stats(info)

        self.app.call_from_thread(ready)

    @on(Input.Submitted, "#message")
    def send(self, event: Input.Submitted) -> None:
        message = event.value
        if not message.strip():
            return
        if any(p.busy for p in self.panes):
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        ready = [p for p in self.panes if p.generator is not None]
        if not ready:
            self.notify("no checkpoint loaded yet", severity="warning")
            return
        event.input.value = ""
        for pane in ready:
            pane.add_message(message, "user")
            reply = pane.add_message("…", "bot")
            pane.busy = True
            pane.stop_event.clear()
            self.generate(pane, reply, message)

    @work(thread=True, group="generate", exit_on_error=False)
    def generate(self, pane: ChatPane, reply: Reply, message: str) -> None:
        """Stream one reply into ``reply``: redraws at most every ``stream_interval_s``, then in full."""
        from ...generate import PRESETS, fit_history
        from ...generate.transcript import Turn

        preset_name, params = self.preset, self.params
        preset = PRESETS[preset_name]
        gen = pane.generator
        shown = message if preset_name == "completion" else ""
        text, last_push = "", 0.0
        if gen.device.type == "cpu":  # leave half the cores to a training run (set per thread: OpenMP)
            import torch

            torch.set_num_threads(self.cpu_threads)
        try:
            history = fit_history(preset, message, pane.transcript.history(), gen.tokenizer.encode, gen.max_len,
                                  params.max_new_tokens) if preset.keeps_history else []
            gen.on_full = preset.on_full
            for ev in gen.stream(preset.prompt(message, history), params, stop_rule=preset.stop_rule,
                                 should_stop=pane.stop_event.is_set):
                text += ev.text
                now = time.monotonic()
                if ev.text and now - last_push >= self.stream_interval_s:  # batch the appends
                    last_push = now
                    self.app.call_from_thread(pane.show_reply, reply, shown + text)
        except Exception as exc:  # a generation error (e.g. out of memory) must not take the app down
            problem = f"generation failed: {type(exc).__name__}: {exc}"

            def failed() -> None:
                pane.busy = False
                if pane.is_attached:
                    pane.set_stats(Text(problem, style="red"))

            self.app.call_from_thread(failed)
            return
        stats = gen.last_stats
        final = preset.reply(stats.text)
        pane.last_reply, pane.last_stats = final, stats
        pane.transcript.add(Turn(message, final, preset_name, stats.as_dict(), str(pane.checkpoint),
                                 _params_dict(params)))
        line = (f"{stats.n_tokens} tokens · {stats.tokens_per_s:.1f} tokens/s · "
                f"time to first token {stats.ttft_s or 0:.3f} s · {stats.stop_reason}")

        def finish() -> None:
            pane.busy = False
            if not reply.is_attached:  # the screen or the pane went away meanwhile
                return
            follow = pane.at_bottom()
            reply.update(Text(shown + final if final or shown else "(empty reply)"))  # the final full render
            pane.messages.mount(Static(Text(line), classes="reply-stats"), after=reply)
            problem = pane.transcript.save_error
            pane.set_stats(line + (f" · not saved: {problem}" if problem else ""))
            if follow:
                pane.messages.scroll_end(animate=False)

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
            from ...generate import PRESETS

            if values:
                self.preset = values.pop("preset")
                self.params = replace(PRESETS[self.preset].params, **values)  # the preset's stop strings too
                self.show_settings()

        self.app.push_screen(SettingsDialog(self.preset, self.params), done)

    def _add_pane(self, path: Path, replace_first: bool) -> None:
        pane = ChatPane(path)
        container = self.query_one("#panes", Horizontal)
        old = self.panes[0] if replace_first and self.panes else None
        if old is not None:
            old.stop_event.set()
            container.mount(pane, before=old)
            old.remove()
        else:
            container.mount(pane)
        self.load(pane)

    def action_open(self) -> None:
        if any(p.busy for p in self.panes):
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return

        def done(path: Path | None) -> None:
            if path is not None:
                self._add_pane(path, replace_first=True)

        self.app.push_screen(PickCheckpoint(self.runs_dir, "Chat with which checkpoint?", "Open"), done)

    def action_compare(self) -> None:
        if len(self.panes) >= 2:
            self.notify("already comparing two checkpoints", severity="warning")
            return

        def done(path: Path | None) -> None:
            if path is not None:
                self._add_pane(path, replace_first=False)

        self.app.push_screen(PickCheckpoint(self.runs_dir, "Compare with which checkpoint?", "Compare"), done)

    def action_copy(self) -> None:
        reply = next((p.last_reply for p in self.panes if p.last_reply), "")
        if reply:
            self.app.copy_to_clipboard(reply)
            self.notify("copied the last reply (OSC 52; in tmux: set -g set-clipboard on)")
        else:
            self.notify("no reply to copy yet", severity="warning")

    def action_export(self) -> None:
        wrote = []
        for pane in self.panes:
            if pane.transcript and pane.transcript.turns:
                try:
                    wrote.append(str(pane.transcript.export_markdown()))
                except OSError as exc:
                    self.notify(f"export failed: {exc}", severity="error", markup=False)
        if wrote:
            self.notify("wrote " + ", ".join(wrote), title="export", markup=False)
        else:
            self.notify("nothing to export yet", severity="warning")

    def action_reset(self) -> None:
        """Start a new chat (a new transcript file): forget the history the ``chat`` preset sends."""
        from ...generate.transcript import Transcript

        if any(p.busy for p in self.panes):
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        for pane in self.panes:
            if pane.transcript is not None:
                pane.transcript = Transcript(pane.transcript.checkpoint)
            pane.last_reply = ""
            pane.messages.remove_children()
        self.notify("new chat", timeout=1.5)


class CompareScreen(ChatScreen):
    """The same prompt to two checkpoints side by side (e.g. exp3 vs exp6)."""

    def __init__(self, left: Path, right: Path, **kwargs: Any):
        super().__init__(left, compare=right, **kwargs)


def _params_dict(params: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(params)
    d["stop"] = list(d["stop"])
    return d

"""The chat screen: stream replies from one checkpoint, or from two side by side (compare).

Each pane's chat turn is :class:`tui_lab.chat.ChatSession`'s, in three steps: the screen
takes a :class:`~tui_lab.chat.TurnRequest` on the UI thread, a thread worker runs
:meth:`~tui_lab.chat.ChatSession.generate` (torch is imported there, never at app start-up)
and posts messages (:class:`ReplyProgress`, :class:`ReplyDone`, :class:`ReplyFailed`),
and the UI thread applies them: redraws, the transcript, the last reply. The worker never
changes shared state itself. Text is redrawn at most ~10 times a second
(:attr:`ChatScreen.stream_interval_s`), then once in full, so a growing reply never stalls
the UI. Replies are plain text (``Static``, no markup): a small model's output is not
Markdown, and ``= = Heading = =`` or ``*`` must show as generated.

Keys (none of them taken from the message box's own editing keys): Enter sends · Esc stops
a generation (a second Esc leaves) · ctrl+s / F2 settings (preset, temperature, top-k,
top-p, repetition penalty, max tokens, seed) · ctrl+o / F3 opens another checkpoint (runs
list or a path) · ctrl+t / F4 compares with a second checkpoint · ctrl+y copies the last
reply (``App.copy_to_clipboard``: OSC 52, works over SSH) · ctrl+g / F5 exports the
transcript as Markdown · ctrl+r starts a new chat (:meth:`ChatSession.reset`).

Transcripts are saved as they go in the run folder's ``chats/`` (see
:mod:`tui_lab.chat.transcript`). Training runs are separate processes, so a chat can run
beside one; on the CPU a turn uses half the cores so that it does not starve it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from ....chat import PRESETS, ChatSession, TurnRequest, TurnResult, restore_cpu_threads
from ....chat.session import describe_settings
from .dialogs import PickCheckpoint, SettingsDialog
from .pane import ChatPane, Reply

STREAM_INTERVAL_S = 0.1


class PaneLoaded(Message):
    """A pane's checkpoint loaded (``session``) or could not be (``problem``)."""

    def __init__(self, pane: ChatPane, session: ChatSession | None, info: str = "", problem: str = ""):
        super().__init__()
        self.pane, self.session, self.info, self.problem = pane, session, info, problem


class ReplyProgress(Message):
    """The text generated so far for ``reply``."""

    def __init__(self, pane: ChatPane, reply: Reply, text: str):
        super().__init__()
        self.pane, self.reply, self.text = pane, reply, text


class ReplyDone(Message):
    """A turn finished (or was stopped): apply ``result`` on the UI thread."""

    def __init__(self, pane: ChatPane, reply: Reply, result: TurnResult):
        super().__init__()
        self.pane, self.reply, self.result = pane, reply, result


class ReplyFailed(Message):
    """A turn failed (e.g. out of memory): ``problem`` says why."""

    def __init__(self, pane: ChatPane, problem: str):
        super().__init__()
        self.pane, self.problem = pane, problem


class ChatScreen(Screen):
    """Talk to ``checkpoint`` (a file, a run folder or an experiment folder), and to
    ``compare`` side by side if given.

    With ``checkpoint=None`` the screen opens by asking for one (runs list or a path).
    ``preset`` and ``params`` are the screen's settings, shared by both panes.
    """

    BINDINGS = [
        Binding("escape", "stop_or_leave", "Stop", tooltip="Stop the reply; a second Esc goes back"),
        Binding("ctrl+s,f2", "settings", "Settings"),
        Binding("ctrl+o,f3", "open", "Open"),
        Binding("ctrl+t,f4", "compare", "Compare"),
        Binding("ctrl+y", "copy", "Copy"),
        Binding("ctrl+g,f5", "export", "Export"),
        Binding("ctrl+r", "reset", "Reset", tooltip="A new chat: forget the history, start a new transcript"),
    ]
    DEFAULT_CSS = """
    ChatScreen .pane-title { background: $panel; width: 100%; height: 1; padding: 0 1; }
    ChatScreen .messages { height: 1fr; }
    ChatScreen .pane-stats { color: $text-muted; padding: 0 1; height: auto; max-height: 4; }
    ChatScreen .pane-stats.-ready { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    ChatScreen Reply { padding: 0 1; }
    ChatScreen Reply.bot { margin-bottom: 0; }
    ChatScreen Reply.user { color: $accent; text-style: bold; margin-top: 1; }
    ChatScreen .reply-stats { color: $text-muted; padding: 0 1; }
    ChatScreen #panes > ChatPane { width: 1fr; border-right: tall $panel; }
    ChatScreen #settings-line { color: $text-muted; padding: 0 1; height: auto; }
    """
    stream_interval_s: float = STREAM_INTERVAL_S

    def __init__(self, checkpoint: Path | None, compare: Path | None = None, runs_dir: Path | None = None,
                 device: str = "auto", preset: str = "completion"):
        super().__init__()
        self.checkpoints = [Path(c) for c in (checkpoint, compare) if c is not None]
        self.runs_dir = runs_dir
        self.device = device
        self.preset = preset if preset in PRESETS else "completion"
        self.params = PRESETS[self.preset].params
        self.cpu_threads = max(1, (os.cpu_count() or 2) // 2)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            for ckpt in self.checkpoints:
                yield ChatPane(ckpt)
        yield Static(id="settings-line")
        yield Input(placeholder="message (Enter sends; Esc stops a reply)", id="message")
        yield Footer(compact=True)

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
        restore_cpu_threads()

    def show_settings(self) -> None:
        self.query_one("#settings-line", Static).update(Text(describe_settings(self.preset, self.params)))

    @property
    def panes(self) -> list[ChatPane]:
        return list(self.query(ChatPane))

    # ------------------------------------------------------------------ loading
    @work(thread=True, group="load", exit_on_error=False)
    def load(self, pane: ChatPane) -> None:
        """Load the checkpoint in a worker thread (torch is imported here)."""
        from ....errors import TuiLabError

        try:
            session = ChatSession.open(pane.checkpoint, self.device, cpu_threads=self.cpu_threads)
            info = session.describe()
        except TuiLabError as exc:
            self.post_message(PaneLoaded(pane, None, problem=str(exc)))
        except Exception as exc:  # anything else a broken file can raise must not take the app down
            self.post_message(PaneLoaded(pane, None, problem=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(PaneLoaded(pane, session, info=info))

    @on(PaneLoaded)
    def _loaded(self, event: PaneLoaded) -> None:
        """The pane is usable exactly when it says "ready"."""
        if event.session is None:
            event.pane.set_stats(Text(f"cannot load: {event.problem}", style="red"))
            return
        event.pane.ready(event.session, event.info)
        summary = event.session.generator.metadata.get("summary")
        if summary:  # a converted checkpoint: the line above may be cut at 80 columns, so say it once in full
            self.notify(str(summary), title="converted checkpoint", timeout=10, markup=False)

    # ------------------------------------------------------------------ a turn
    @on(Input.Submitted, "#message")
    def send(self, event: Input.Submitted) -> None:
        message = event.value
        if not message.strip():
            return
        if any(p.busy for p in self.panes):
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        ready = [p for p in self.panes if p.session is not None]
        if not ready:
            self.notify("no checkpoint loaded yet", severity="warning")
            return
        event.input.value = ""
        for pane in ready:
            request = pane.session.request(message, self.preset, self.params)
            pane.add_message(message, "user")
            reply = pane.add_message("…", "bot")
            pane.busy = True
            pane.stop_event.clear()
            self.generate(pane, reply, request)

    @work(thread=True, group="generate", exit_on_error=False)
    def generate(self, pane: ChatPane, reply: Reply, request: TurnRequest) -> None:
        """Run one turn off the UI thread; post the text at most every ``stream_interval_s``."""
        session = pane.session
        assert session is not None
        shown = request.message if request.preset.echoes_message else ""
        text, last_push = shown, 0.0

        def on_text(piece: str) -> None:
            nonlocal text, last_push
            text += piece
            now = time.monotonic()
            if now - last_push >= self.stream_interval_s:  # batch the redraws
                last_push = now
                self.post_message(ReplyProgress(pane, reply, text))

        try:
            result = session.generate(request, on_text, should_stop=pane.stop_event.is_set)
        except Exception as exc:  # a generation error (e.g. out of memory) must not take the app down
            self.post_message(ReplyFailed(pane, f"generation failed: {type(exc).__name__}: {exc}"))
            return
        self.post_message(ReplyDone(pane, reply, result))

    @on(ReplyProgress)
    def _progress(self, event: ReplyProgress) -> None:
        if event.pane.busy:
            event.pane.show_reply(event.reply, event.text)

    @on(ReplyDone)
    def _done(self, event: ReplyDone) -> None:
        pane, result = event.pane, event.result
        pane.busy = False
        if pane.session is None or not event.reply.is_attached:  # the pane went away meanwhile
            return
        pane.session.record(result)
        event.reply.update(Text(result.shown or "(empty reply)"))  # the final full render
        line = result.summary()
        problem = pane.session.save_error
        pane.messages.mount(Static(Text(line + (f" · not saved: {problem}" if problem else "")),
                                   classes="reply-stats"), after=event.reply)

    @on(ReplyFailed)
    def _failed(self, event: ReplyFailed) -> None:
        event.pane.busy = False
        if event.pane.is_attached:
            event.pane.set_stats(Text(event.problem, style="red"))

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
                self.preset, self.params = values["preset"], values["params"]
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
            if pane.session and pane.session.transcript.turns:
                try:
                    wrote.append(str(pane.session.transcript.export_markdown()))
                except OSError as exc:
                    self.notify(f"export failed: {exc}", severity="error", markup=False)
        if wrote:
            self.notify("wrote " + ", ".join(wrote), title="export", markup=False)
        else:
            self.notify("nothing to export yet", severity="warning")

    def action_reset(self) -> None:
        """A new chat (:meth:`ChatSession.reset`): the history is forgotten, later turns go to
        a new transcript file, the panes are cleared."""
        if any(p.busy for p in self.panes):
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        for pane in self.panes:
            if pane.session is not None:
                pane.session.reset()
            pane.clear()
        self.notify("new chat", timeout=1.5)


class CompareScreen(ChatScreen):
    """The same prompt to two checkpoints side by side (e.g. exp3 vs exp6)."""

    def __init__(self, left: Path, right: Path, **kwargs: Any):
        super().__init__(left, compare=right, **kwargs)

"""One checkpoint's column in the chat screen: its title, its messages, its status line.

A pane owns a :class:`tui_lab.chat.ChatSession` once the checkpoint has loaded (None
before, or when loading failed). Every change to it happens on the UI thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

if TYPE_CHECKING:
    from ....chat import ChatSession


def tail_ellipsis(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters (``…`` first): the end of a path
    (run id, file name) says most."""
    if width <= 0 or len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1:] if width > 1 else "…"


def checkpoint_label(path: Path) -> str:
    """``experiment/run-id · best.safetensors`` for a checkpoint in a run folder, else the path."""
    path = Path(path)
    if path.parent.name == "checkpoints":
        run = path.parent.parent
        return f"{run.parent.name}/{run.name} · {path.name}"
    return str(path)


class PathLabel(Static):
    """A checkpoint on one line (:func:`checkpoint_label`), cut from the left when narrow,
    never wrapped mid-word; the whole path is the tooltip."""

    def __init__(self, path: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.set_path(path)

    def set_path(self, path: Path) -> None:
        self.path = Path(path)
        self.tooltip = str(self.path)
        self.refresh()

    def render(self) -> Text:
        return Text(tail_ellipsis(checkpoint_label(self.path), self.content_size.width), no_wrap=True,
                    overflow="crop")


class Reply(Static):
    """One message in a transcript (plain text)."""


class ChatPane(Vertical):
    """One checkpoint's transcript and its per-reply stats.

    The messages scroll is *anchored*: it follows new text down while the view is at the
    bottom, and stays put once the user scrolls up (until they scroll back down).
    """

    def __init__(self, checkpoint: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.checkpoint = Path(checkpoint)
        self.session: ChatSession | None = None
        self.stop_event = threading.Event()  # set on the UI thread, read by the generation worker
        self.busy = False

    def compose(self) -> ComposeResult:
        yield PathLabel(self.checkpoint, classes="pane-title")
        yield VerticalScroll(classes="messages")
        yield Static(Text("loading…"), classes="pane-stats")

    def on_mount(self) -> None:
        self.messages.anchor()

    def on_unmount(self) -> None:
        self.stop_event.set()  # a pane that goes away (screen closed, checkpoint replaced) stops its reply

    # what the screen and the tests read; all from the session
    @property
    def generator(self) -> Any:
        return self.session.generator if self.session else None

    @property
    def transcript(self) -> Any:
        return self.session.transcript if self.session else None

    @property
    def last_reply(self) -> str:
        return self.session.last.reply if self.session and self.session.last else ""

    @property
    def last_stats(self) -> Any:
        return self.session.last.stats if self.session and self.session.last else None

    @property
    def messages(self) -> VerticalScroll:
        return self.query_one(".messages", VerticalScroll)

    def add_message(self, text: str, who: str) -> Reply:
        msg = Reply(Text(text), classes=who)
        self.messages.mount(msg)
        self.messages.anchor()  # a message the user sends brings the view back to the bottom
        return msg

    def show_reply(self, reply: Reply, text: str) -> None:
        """Redraw a streaming reply (the anchored scroll follows it if at the bottom)."""
        if reply.is_attached:
            reply.update(Text(text))

    def set_stats(self, text: str | Text) -> None:
        """A status or an error (wrapped, up to 4 lines)."""
        stats = self.query_one(".pane-stats", Static)
        stats.remove_class("-ready")
        stats.update(Text(text) if isinstance(text, str) else text)

    def ready(self, session: ChatSession, info: str) -> None:
        """The checkpoint loaded: the pane is usable exactly when it says "ready"; the title
        names the file it resolved to (a run or experiment folder's checkpoint)."""
        self.session = session
        self.query_one(PathLabel).set_path(session.checkpoint)
        stats = self.query_one(".pane-stats", Static)
        stats.add_class("-ready")
        stats.tooltip = info
        stats.update(Text(f"ready · {info}"))

    def clear(self) -> None:
        """Remove every message (a new chat)."""
        self.messages.remove_children()

"""The tail of a run's ``train.log``."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from .format import printable


class LogTail(VerticalScroll):
    """The last lines of the log as plain text (never markup); follows the end unless the
    user has scrolled up."""

    DEFAULT_CSS = """
    LogTail > Static { padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Static(Text("(no log yet)", style="dim"))

    def show(self, text: str) -> None:
        if text == self.text:
            return
        self.text = text
        at_end = self.scroll_y >= self.max_scroll_y - 1
        self.query_one(Static).update(Text(printable(text)) if text else Text("(no log yet)", style="dim"))
        if at_end:
            self.call_after_refresh(self.scroll_end, animate=False)

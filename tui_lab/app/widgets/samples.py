"""The latest generations of a run (its ``sample`` events)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from .format import printable

EMPTY = "(no samples yet: the trainer writes them at evaluations when train.sample_every > 0)"


class SamplesView(VerticalScroll):
    """Prompt in bold, continuation plain, step dimmed; newest last."""

    DEFAULT_CSS = """
    SamplesView > Static { padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static(Text(EMPTY, style="dim"))

    def show(self, samples: list[dict[str, Any]]) -> None:
        key = tuple((s.get("step"), s.get("time")) for s in samples)
        if key == self._shown:
            return
        self._shown = key
        text = Text()
        for s in samples:
            text.append(f"step {s.get('step', '?')}  ", style="dim")
            text.append(printable(str(s.get("prompt", ""))), style="bold")
            text.append(printable(str(s.get("text", ""))) + "\n\n")
        text.rstrip()
        self.query_one(Static).update(text if text.plain else Text(EMPTY, style="dim"))
        self.call_after_refresh(self.scroll_end, animate=False)

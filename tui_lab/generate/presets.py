"""Chat presets: how a message becomes a prompt, how to sample, when to stop, what the reply is.

- ``exp7``: the exp7 chat interface (``exp7_inference.py``, see FIELD_NOTES): no history,
  prompt ``Human: {message}``, temperature 0.3, CTRL repetition penalty 1.1, top-p 0.9,
  100 new tokens; stops on EOS, the same token three times in a row, a repeated
  3-token pattern, or max_seq_len; the reply is the text after ``Bot:`` if present,
  else the text after the prompt (the generated text).
- ``completion``: the seeds' generation samples: plain continuation of the prompt.
- ``chat``: multi-turn ``Human:`` / ``Bot:`` with history, oldest turns dropped to fit
  the context window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .sampling import SamplingParams


def exp7_stop_rule(ids: list[int]) -> str | None:
    """exp7's extra stops: one token three times in a row, or the last 3 tokens repeating
    the 3 before them."""
    if len(ids) >= 3 and ids[-1] == ids[-2] == ids[-3]:
        return "same token 3 times"
    if len(ids) >= 6 and ids[-3:] == ids[-6:-3]:
        return "repeated 3-token pattern"
    return None


def after_bot(text: str) -> str:
    """exp7's reply from the generated text (the text after the prompt): the text after the
    first ``Bot:`` if there is one, else all of it; stripped."""
    if "Bot:" in text:
        text = text.split("Bot:", 1)[1]
    return text.strip()


@dataclass(frozen=True)
class Preset:
    """How a message becomes a prompt (:meth:`prompt`), the sampling defaults, extra stop
    rules over the generated ids, what to do at ``max_seq_len`` (``on_full``), and how the
    reply is read from the generated text (``reply``)."""

    name: str
    description: str
    params: SamplingParams
    keeps_history: bool = False
    stop_rule: Callable[[list[int]], str | None] | None = None
    on_full: str = "slide"
    reply: Callable[[str], str] = lambda text: text

    def prompt(self, message: str, history: list[tuple[str, str]] | None = None) -> str:
        """The prompt text for ``message`` (and past ``(user, reply)`` turns when kept)."""
        if self.name == "exp7":
            return f"Human: {message}"
        if self.name == "chat":
            turns = "".join(f"Human: {u}\nBot: {b}\n" for u, b in (history or []))
            return f"{turns}Human: {message}\nBot:"
        return message


PRESETS: dict[str, Preset] = {
    "exp7": Preset(
        "exp7", "exp7's chat interface: no history, 'Human: {message}', T=0.3, top-p 0.9, penalty 1.1",
        SamplingParams(temperature=0.3, top_p=0.9, repetition_penalty=1.1, max_new_tokens=100),
        stop_rule=exp7_stop_rule, on_full="stop", reply=after_bot),
    "completion": Preset(
        "completion", "plain continuation of the prompt, as the seeds' generation samples",
        SamplingParams(temperature=0.8, top_k=50, max_new_tokens=100)),
    "chat": Preset(
        "chat", "multi-turn Human:/Bot: with history kept inside the context window",
        SamplingParams(temperature=0.7, top_p=0.9, repetition_penalty=1.1, max_new_tokens=100, stop=("\nHuman:",)),
        keeps_history=True, reply=lambda text: text.strip()),
}


def fit_history(preset: Preset, message: str, history: list[tuple[str, str]], encode: Callable[[str], list[int]],
                max_seq_len: int, max_new_tokens: int) -> list[tuple[str, str]]:
    """The most recent turns whose prompt leaves room for ``max_new_tokens`` in the window."""
    turns = list(history)
    while turns and len(encode(preset.prompt(message, turns))) + max_new_tokens > max_seq_len:
        turns.pop(0)
    return turns

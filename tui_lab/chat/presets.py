"""Chat presets: how a message becomes a prompt, how to sample, when to stop, what the reply is.

One class per preset; each overrides only what differs from :class:`Preset`:

- :class:`Exp7Preset` (``exp7``): the exp7 chat interface (``exp7_inference.py``, see
  FIELD_NOTES): no history, prompt ``Human: {message}``, temperature 0.3, CTRL repetition
  penalty 1.1, top-p 0.9, 100 new tokens; stops on EOS, the same token three times in a
  row, a repeated 3-token pattern, or max_seq_len; the reply is the text after ``Bot:`` if
  present, else the generated text.
- :class:`CompletionPreset` (``completion``): the seeds' generation samples: plain
  continuation of the prompt (front ends show the message, then the continuation).
- :class:`ChatPreset` (``chat``): multi-turn ``Human:`` / ``Bot:`` with history, oldest
  turns dropped to fit the context window (:meth:`Preset.fit_history`).

Token-level pieces (sampling, stop rules over ids) live in :mod:`tui_lab.generate`; this
module imports without torch.
"""

from __future__ import annotations

from typing import Callable, ClassVar

from ..generate.sampling import SamplingParams
from ..generate.stops import exp7_stop_rule

History = list[tuple[str, str]]  # past (user message, reply) turns, oldest first


def after_bot(text: str) -> str:
    """exp7's reply from the generated text (the text after the prompt): the text after the
    first ``Bot:`` if there is one, else all of it; stripped."""
    if "Bot:" in text:
        text = text.split("Bot:", 1)[1]
    return text.strip()


class Preset:
    """A plain continuation; subclasses change the prompt, the reply, the stop rule.

    Class attributes: ``name`` (the CLI's ``--preset``), ``description``, ``params`` (the
    sampling defaults), ``keeps_history`` (earlier turns go into the prompt), ``echoes_message``
    (front ends show the message before the generated text, as a continuation of it) and
    ``on_full`` (``"slide"`` or ``"stop"`` at ``max_seq_len``, see ``Generator.stream``).
    """

    name: ClassVar[str] = "completion"
    description: ClassVar[str] = "plain continuation of the prompt, as the seeds' generation samples"
    params: ClassVar[SamplingParams] = SamplingParams(temperature=0.8, top_k=50, max_new_tokens=100)
    keeps_history: ClassVar[bool] = False
    echoes_message: ClassVar[bool] = True
    on_full: ClassVar[str] = "slide"

    def prompt(self, message: str, history: History | None = None) -> str:
        """The prompt text for ``message`` (and the past turns when the preset keeps them)."""
        return message

    def reply(self, text: str) -> str:
        """The reply read from the generated text (the text after the prompt)."""
        return text

    def stop_rule(self, ids: list[int]) -> str | None:
        """An extra stop over the generated ids (a reason), or None to go on."""
        return None

    def fit_history(self, message: str, history: History, encode: Callable[[str], list[int]],
                    max_seq_len: int, max_new_tokens: int) -> History:
        """The most recent turns whose prompt leaves room for ``max_new_tokens`` in the
        window (none when the preset keeps no history)."""
        if not self.keeps_history:
            return []
        turns = list(history)
        while turns and len(encode(self.prompt(message, turns))) + max_new_tokens > max_seq_len:
            turns.pop(0)
        return turns

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CompletionPreset(Preset):
    """``completion``: the base behaviour, named."""


class Exp7Preset(Preset):
    """``exp7``: exp7's chat interface (no history; ``Human: {message}``; its stop rules)."""

    name = "exp7"
    description = "exp7's chat interface: no history, 'Human: {message}', T=0.3, top-p 0.9, penalty 1.1"
    params = SamplingParams(temperature=0.3, top_p=0.9, repetition_penalty=1.1, max_new_tokens=100)
    echoes_message = False
    on_full = "stop"

    def prompt(self, message: str, history: History | None = None) -> str:
        return f"Human: {message}"

    def reply(self, text: str) -> str:
        return after_bot(text)

    def stop_rule(self, ids: list[int]) -> str | None:
        return exp7_stop_rule(ids)


class ChatPreset(Preset):
    """``chat``: ``Human:`` / ``Bot:`` turns with the history that fits; the model's own next
    ``\\nHuman:`` ends the reply."""

    name = "chat"
    description = "multi-turn Human:/Bot: with history kept inside the context window"
    params = SamplingParams(temperature=0.7, top_p=0.9, repetition_penalty=1.1, max_new_tokens=100,
                            stop=("\nHuman:",))
    keeps_history = True
    echoes_message = False

    def prompt(self, message: str, history: History | None = None) -> str:
        turns = "".join(f"Human: {u}\nBot: {b}\n" for u, b in (history or []))
        return f"{turns}Human: {message}\nBot:"

    def reply(self, text: str) -> str:
        return text.strip()


PRESETS: dict[str, Preset] = {p.name: p for p in (Exp7Preset(), CompletionPreset(), ChatPreset())}


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ValueError: no such preset (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"{name!r}: known presets are {', '.join(PRESETS)}") from None


def fit_history(preset: Preset, message: str, history: History, encode: Callable[[str], list[int]],
                max_seq_len: int, max_new_tokens: int) -> History:
    """:meth:`Preset.fit_history` as a function."""
    return preset.fit_history(message, history, encode, max_seq_len, max_new_tokens)

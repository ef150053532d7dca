"""One chat session with one checkpoint: the chat turn that ``tui-lab chat`` and the app's
chat screen both run.

A turn is three steps, so that a front end with a UI thread can run the middle one in a
worker thread and keep every shared change on its UI thread:

1. :meth:`ChatSession.request` (UI thread): a frozen :class:`TurnRequest` — the message, the
   preset, the sampling parameters and a copy of the history.
2. :meth:`ChatSession.generate` (any thread): fit the history into the context window,
   build the prompt, stream the tokens (``on_text`` gets each piece of text), read the reply.
   It changes nothing but the generator's own ``last_stats``; it returns a :class:`TurnResult`.
3. :meth:`ChatSession.record` (UI thread): append the turn to the transcript, remember it
   as the last reply.

:meth:`ChatSession.turn` runs the three in a row (the CLI). :meth:`ChatSession.reset` is the
one meaning of "reset" / "new chat": forget the history and start a new transcript file
(the old file keeps what was said).

torch is imported only when a checkpoint is loaded (:meth:`ChatSession.open`) or a CPU
thread count is set: the app imports this module at start-up.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import TuiLabError
from ..generate.sampling import SamplingParams
from .presets import Preset, get_preset
from .transcript import Transcript, Turn

if TYPE_CHECKING:
    from ..generate.engine import GenerationStats, Generator

History = tuple[tuple[str, str], ...]

# /set KEY VALUE and the settings dialog: key → (label, type). seed accepts "random".
SETTINGS: dict[str, tuple[str, type]] = {
    "temperature": ("temperature (0 = greedy)", float),
    "top_k": ("top-k (0 = off)", int),
    "top_p": ("top-p (1 = off)", float),
    "repetition_penalty": ("repetition penalty (1 = off)", float),
    "max_new_tokens": ("max new tokens", int),
    "seed": ("seed (empty = random)", int),
}


class ChatError(TuiLabError):
    """A checkpoint path that does not exist, or a setting that is not valid."""


def check_checkpoint_path(path: Path | str) -> Path:
    """``path`` if something is there; a cheap check a front end makes before importing torch
    (what is inside is ``generate.engine.resolve_checkpoint``'s to judge).

    Raises:
        ChatError: nothing at ``path``.
    """
    if str(path).startswith("hf:"):  # a Hub model name, resolved (and checked) when loaded
        return Path(str(path))
    path = Path(path).expanduser()
    if not path.exists():
        raise ChatError(f"{path}: no such checkpoint file or run folder")
    return path


def parse_setting(key: str, value: str, params: SamplingParams) -> SamplingParams:
    """``params`` with one setting changed from text (``top-k`` and ``top_k`` both work;
    ``seed random`` clears the seed).

    Raises:
        ChatError: an unknown key, a value that is not a number, or one out of range.
    """
    name = key.strip().replace("-", "_")
    if name not in SETTINGS:
        raise ChatError(f"unknown setting {key!r}: one of {', '.join(SETTINGS)}")
    label, cast = SETTINGS[name]
    raw = value.strip()
    if name == "seed" and raw.lower() in ("", "random", "none"):
        return replace(params, seed=None)
    try:
        new = replace(params, **{name: cast(raw)})
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ChatError(f"{label.split(' (')[0]}: {raw!r} is not {kind}") from None
    try:
        new.validate()
    except ValueError as exc:
        raise ChatError(str(exc)) from None
    return new


def params_record(params: SamplingParams) -> dict[str, Any]:
    """The sampling settings as saved with a turn (JSON types: ``stop`` as a list)."""
    d = asdict(params)
    d["stop"] = list(d["stop"])
    return d


def stats_line(stats: GenerationStats) -> str:
    """``N tokens · X tokens/s · time to first token Y s · stop reason`` (see ``GenerationStats``)."""
    return (f"{stats.n_tokens} tokens · {stats.tokens_per_s:.1f} tokens/s · "
            f"time to first token {stats.ttft_s or 0:.3f} s · {stats.stop_reason}")


def describe_settings(preset: str, params: SamplingParams) -> str:
    """``exp7 · T 0.3 · top-k 0 · top-p 0.9 · penalty 1.1 · max 100 tokens`` (`` · seed S`` when
    one is set): fits 80 columns."""
    p = params
    seed = "" if p.seed is None else f" · seed {p.seed}"
    return (f"{preset} · T {p.temperature} · top-k {p.top_k} · top-p {p.top_p} · penalty {p.repetition_penalty} · "
            f"max {p.max_new_tokens} tokens{seed}")


@dataclass(frozen=True)
class TurnRequest:
    """What one turn will send: taken on the UI thread, read by the worker."""

    message: str
    preset: Preset
    params: SamplingParams
    history: History = ()


@dataclass
class TurnResult:
    """One finished (or stopped) turn: the prompt sent, the generation's stats, the reply."""

    request: TurnRequest
    prompt: str
    stats: GenerationStats
    reply: str

    @property
    def shown(self) -> str:
        """What a front end shows for the reply: the message and its continuation for a
        preset that echoes the message, else the reply."""
        if self.request.preset.echoes_message:
            return self.request.message + self.reply
        return self.reply

    def summary(self) -> str:
        return stats_line(self.stats)


_threads_lock = threading.Lock()
_threads_before: int | None = None


def use_cpu_threads(n: int) -> None:
    """Let torch use ``n`` CPU threads for generation on this thread (OpenMP counts are per
    thread); the first call remembers the count to put back (:func:`restore_cpu_threads`)."""
    global _threads_before
    import torch

    with _threads_lock:
        if _threads_before is None:
            _threads_before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))


def restore_cpu_threads() -> None:
    """Put back the CPU thread count from before :func:`use_cpu_threads` (no-op if unused)."""
    global _threads_before
    with _threads_lock:
        before, _threads_before = _threads_before, None
    if before is not None:
        import torch

        torch.set_num_threads(before)


class ChatSession:
    """A conversation with one loaded checkpoint.

    Args:
        generator: a loaded ``tui_lab.generate.Generator``.
        preset: the preset's name (``exp7``, ``completion``, ``chat``).
        params: sampling parameters (default: the preset's).
        cpu_threads: on a CPU device, the torch threads a turn may use (None: leave as is);
            the app gives half the cores so that a training run beside it is not starved.

    Raises:
        ValueError: an unknown preset.
    """

    def __init__(self, generator: Generator, preset: str = "completion", params: SamplingParams | None = None,
                 *, cpu_threads: int | None = None):
        self.generator = generator
        self.preset = get_preset(preset)
        self.params = params if params is not None else self.preset.params
        self.cpu_threads = cpu_threads
        self.transcript = Transcript(self.checkpoint)
        self.last: TurnResult | None = None

    @classmethod
    def open(cls, checkpoint: Path | str, device: str = "auto", tokenizer_path: str | None = None, *,
             use_kv_cache: bool = True, preset: str = "completion", params: SamplingParams | None = None,
             cpu_threads: int | None = None, **load_options: Any) -> "ChatSession":
        """Load ``checkpoint`` (a file, a run folder or an experiment folder: see
        ``generate.engine.resolve_checkpoint``) on ``device`` through
        ``Generator.from_checkpoint`` (``load_options`` go to it too, e.g. ``num_heads`` for a
        seed-script checkpoint); imports torch.

        Raises:
            TuiLabError: an unusable checkpoint, tokenizer or device (the message names it).
            ValueError: an unknown preset.
        """
        from ..generate import Generator

        generator = Generator.from_checkpoint(checkpoint, device, tokenizer_path, use_kv_cache=use_kv_cache,
                                              **load_options)
        return cls(generator, preset, params, cpu_threads=cpu_threads)

    @property
    def checkpoint(self) -> Path:
        """The checkpoint file the generator was loaded from."""
        return Path(str(self.generator.metadata.get("checkpoint", "")))

    def describe(self) -> str:
        """``kind · N params · d_model D · L layers · context T · tokenizer · device``, then for a
        converted checkpoint (seed scripts', exp7's, Hugging Face GPT-2) what it is and carries."""
        from ..models import count_parameters

        gen = self.generator
        cfg = gen.model.config
        text = (f"{cfg.kind} · {count_parameters(gen.model):,} params · d_model {cfg.d_model} · "
                f"{cfg.num_layers} layers · context {cfg.max_seq_len} · {gen.tokenizer.name} tokenizer · "
                f"{gen.device}")
        summary = gen.metadata.get("summary")
        return f"{text} · {summary}" if summary else text

    # ------------------------------------------------------------------ settings
    def set_preset(self, name: str) -> None:
        """Switch preset; the sampling parameters become the preset's defaults.

        Raises:
            ValueError: an unknown preset.
        """
        self.preset = get_preset(name)
        self.params = self.preset.params

    def set(self, key: str, value: str) -> None:
        """Change one sampling setting from text (``/set temperature 0.1``).

        Raises:
            ChatError: unknown key or bad value (the message names it).
        """
        self.params = parse_setting(key, value, self.params)

    def settings_line(self) -> str:
        return describe_settings(self.preset.name, self.params)

    # ------------------------------------------------------------------ one turn
    def history(self) -> list[tuple[str, str]]:
        return self.transcript.history()

    def request(self, message: str, preset: Preset | str | None = None,
                params: SamplingParams | None = None) -> TurnRequest:
        """Snapshot a turn (on the UI thread): the message with the session's preset and
        parameters, or the ``preset`` / ``params`` given (the app's shared settings)."""
        p = get_preset(preset) if isinstance(preset, str) else (preset or self.preset)
        return TurnRequest(message, p, params if params is not None else self.params,
                           tuple(self.history()) if p.keeps_history else ())

    def generate(self, request: TurnRequest, on_text: Callable[[str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> TurnResult:
        """Run one turn's generation (safe on a worker thread: shared state is left alone).

        ``on_text`` gets each piece of generated text as it is released; ``should_stop`` is
        polled between tokens (the UI's Esc). A caller that leaves on an exception (Ctrl-C)
        finds the generator's ``last_stats.stop_reason == "stopped"``.

        Raises:
            ValueError: invalid sampling parameters.
            RuntimeError: the device failed (e.g. out of memory).
        """
        gen, preset = self.generator, request.preset
        if self.cpu_threads and gen.device.type == "cpu":
            use_cpu_threads(self.cpu_threads)
        history = preset.fit_history(request.message, list(request.history), gen.tokenizer.encode, gen.max_len,
                                     request.params.max_new_tokens)
        prompt = preset.prompt(request.message, history)
        for ev in gen.stream(prompt, request.params, stop_rule=preset.stop_rule, should_stop=should_stop,
                             on_full=preset.on_full):
            if on_text is not None and ev.text:
                on_text(ev.text)
        stats = gen.last_stats
        return TurnResult(request, prompt, stats, preset.reply(stats.text))

    def record(self, result: TurnResult) -> None:
        """Save a finished turn (on the UI thread): the transcript and :attr:`last`."""
        req = result.request
        self.transcript.add(Turn(req.message, result.reply, req.preset.name, result.stats.as_dict(),
                                 str(self.checkpoint), params_record(req.params)))
        self.last = result

    def turn(self, message: str, on_text: Callable[[str], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> TurnResult:
        """:meth:`request`, :meth:`generate` and :meth:`record` in a row."""
        result = self.generate(self.request(message), on_text, should_stop)
        self.record(result)
        return result

    def result_dict(self, result: TurnResult) -> dict[str, Any]:
        """One turn as the CLI's ``--json`` prints it: the stats, the reply, the prompt sent."""
        gen = self.generator
        return result.stats.as_dict() | {"reply": result.reply, "preset": result.request.preset.name,
                                         "prompt": result.prompt, "checkpoint": str(self.checkpoint),
                                         "device": str(gen.device), "kv_cache": gen.use_kv_cache}

    def reset(self) -> None:
        """A new chat: forget the history and the last reply; later turns go to a new
        transcript file (the old one keeps what was said)."""
        self.transcript = Transcript(self.transcript.checkpoint, folder=self.transcript.folder)
        self.last = None

    @property
    def save_error(self) -> str | None:
        """Why the last turn could not be saved (a read-only run folder), else None."""
        return self.transcript.save_error


__all__ = ["SETTINGS", "ChatError", "ChatSession", "TurnRequest", "TurnResult", "check_checkpoint_path",
           "params_record", "parse_setting", "restore_cpu_threads", "stats_line", "use_cpu_threads"]

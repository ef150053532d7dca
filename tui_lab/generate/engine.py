"""Streaming generation from a checkpoint, with a KV cache.

:class:`Generator` loads a checkpoint (the model is rebuilt from its stored config; no
code from the file runs), then :meth:`Generator.stream` yields tokens one by one. With
the KV cache each step feeds only the newest token (cost per token does not grow with
the whole sequence); without it (``use_kv_cache=False``) each step re-runs the whole
window, as exp7's chat did. When the context reaches ``max_seq_len`` it slides: the
cache is rebuilt from the last three quarters of the window (positions are absolute
in the ``gpt`` family, so a slide must recompute), or generation stops when
``on_full="stop"``.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..errors import TuiLabError
from .sampling import SamplingParams, sample_next


class GenerationError(TuiLabError):
    """A checkpoint or tokenizer that cannot be used for generation."""


@dataclass
class TokenEvent:
    """One generated token: its id and the text it completes (``""`` while a UTF-8
    character is still partial)."""

    token_id: int
    text: str


@dataclass
class GenerationStats:
    """``ttft_s``: seconds from the call to the first token (prefill included);
    ``tokens_per_s``: generated tokens per second over the whole call."""

    n_tokens: int = 0
    ttft_s: float | None = None
    elapsed_s: float = 0.0
    stop_reason: str = ""
    text: str = ""
    token_ids: list[int] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "n_tokens": self.n_tokens, "tokens_per_s": round(self.tokens_per_s, 2),
                "ttft_s": round(self.ttft_s, 4) if self.ttft_s is not None else None,
                "elapsed_s": round(self.elapsed_s, 4), "stop_reason": self.stop_reason}


StopRule = Callable[[list[int]], str | None]


def resolve_checkpoint(path: Path | str) -> Path:
    """A checkpoint file, or a run folder's best checkpoint (then its last).

    Raises:
        GenerationError: nothing usable there.
    """
    from ..runs.store import RunDir

    path = Path(path)
    if path.is_dir():
        ckpt = RunDir(path).best_checkpoint()
        if ckpt is None:
            raise GenerationError(f"{path}: no checkpoint in this folder yet (checkpoints/best.safetensors)")
        return ckpt
    if not path.exists():
        raise GenerationError(f"{path}: no such checkpoint file or run folder")
    return path


class Generator:
    """Generate from ``model`` with ``tokenizer`` on ``device``.

    Args:
        use_kv_cache: decode with the model's KV cache (default) or recompute the window.
        on_full: ``"slide"`` (default) or ``"stop"`` when the context reaches max_seq_len.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device | str = "cpu", *,
                 use_kv_cache: bool = True, on_full: str = "slide", metadata: dict[str, Any] | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.use_kv_cache = use_kv_cache
        self.on_full = on_full
        self.metadata = metadata or {}
        self.max_len = int(model.config["max_seq_len"])
        self.last_stats = GenerationStats()

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", tokenizer_path: str | None = None,
                        **kwargs: Any) -> "Generator":
        """Load a checkpoint file or run folder; the tokenizer comes from the checkpoint's
        ``data`` metadata unless ``tokenizer_path`` is given.

        Raises:
            GenerationError, CheckpointError, DataError: unusable checkpoint or tokenizer.
        """
        from ..data import load_tokenizer
        from ..train.checkpoint import load_model
        from ..train.trainer import resolve_device

        dev = resolve_device(device)
        ckpt = resolve_checkpoint(path)
        model, meta = load_model(ckpt, dev)
        data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
        name = data.get("tokenizer", "gpt2")
        tok_path = tokenizer_path or data.get("tokenizer_path")
        tokenizer = load_tokenizer(name, tok_path)
        if tokenizer.vocab_size > model.config["vocab_size"]:
            raise GenerationError(f"{ckpt}: tokenizer '{name}' has {tokenizer.vocab_size} tokens, "
                                  f"more than the model's vocab_size {model.config['vocab_size']}")
        meta["checkpoint"] = str(ckpt)
        return cls(model, tokenizer, dev, metadata=meta, **kwargs)

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def _logits_full(self, ids: list[int]) -> torch.Tensor:
        window = ids[-self.max_len :]
        x = torch.tensor([window], dtype=torch.long, device=self.device)
        return self.model(x)[0, -1]

    def stream(self, prompt: str | list[int], params: SamplingParams, *, stop_rule: StopRule | None = None,
               should_stop: Callable[[], bool] | None = None) -> Iterator[TokenEvent]:
        """Yield the generated tokens one by one; :attr:`last_stats` holds the totals after.

        Stops at ``max_new_tokens``, at the tokenizer's end-of-text token, when a stop
        string appears in the text (the text is cut before it), when ``stop_rule(ids)``
        returns a reason, when ``should_stop()`` turns True (the UI's Esc), or, with
        ``on_full="stop"``, at ``max_seq_len``.

        Raises:
            ValueError: invalid sampling parameters.
        """
        params.validate()
        t0 = time.perf_counter()
        stats = GenerationStats()
        self.last_stats = stats
        prompt_ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not prompt_ids:
            prompt_ids = [self.tokenizer.eot_token if self.tokenizer.eot_token is not None else 0]
        ids = prompt_ids[-(self.max_len - 1) :]
        gen = torch.Generator(device="cpu")
        gen.manual_seed(params.seed if params.seed is not None else int(time.time_ns() % 2**31))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        new: list[int] = []
        cache = None
        with torch.no_grad():
            if self.use_kv_cache:
                cache = self.model.new_kv_cache(1, device=self.device)
                logits = self.model(torch.tensor([ids], device=self.device), kv_cache=cache)[0, -1]
            else:
                logits = self._logits_full(ids)
            while True:
                if should_stop and should_stop():
                    stats.stop_reason = "stopped"
                    break
                nxt = sample_next(logits, params, torch.tensor(new, dtype=torch.long, device=logits.device), gen)
                if self.tokenizer.eot_token is not None and nxt == self.tokenizer.eot_token:
                    stats.stop_reason = "eos"
                    break
                new.append(nxt)
                ids.append(nxt)
                piece = decoder.decode(self.tokenizer.decode_bytes([nxt]))
                if stats.ttft_s is None:
                    stats.ttft_s = time.perf_counter() - t0
                stats.text += piece
                stats.n_tokens = len(new)
                cut = _first_stop(stats.text, params.stop)
                if cut is not None:
                    stats.text = stats.text[:cut]
                    stats.stop_reason = "stop string"
                    break
                yield TokenEvent(nxt, piece)
                reason = stop_rule(new) if stop_rule else None
                if reason:
                    stats.stop_reason = reason
                    break
                if len(new) >= params.max_new_tokens:
                    stats.stop_reason = "max_new_tokens"
                    break
                if len(ids) >= self.max_len and self.on_full == "stop":
                    stats.stop_reason = "max_seq_len"
                    break
                if cache is not None:
                    if cache.length >= self.max_len:  # slide: rebuild the cache from the recent window
                        keep = ids[-(self.max_len * 3 // 4) :]
                        cache.reset()
                        logits = self.model(torch.tensor([keep], device=self.device), kv_cache=cache)[0, -1]
                    else:
                        logits = self.model(torch.tensor([[nxt]], device=self.device), kv_cache=cache)[0, -1]
                else:
                    logits = self._logits_full(ids)
        tail = decoder.decode(b"", final=True)
        if tail and not stats.stop_reason == "stop string":
            stats.text += tail
        stats.token_ids = new
        stats.elapsed_s = time.perf_counter() - t0
        if not stats.stop_reason:
            stats.stop_reason = "max_new_tokens"

    def complete(self, prompt: str | list[int], params: SamplingParams, **kwargs: Any) -> GenerationStats:
        """Run :meth:`stream` to the end; returns its stats (with the full text)."""
        for _ in self.stream(prompt, params, **kwargs):
            pass
        return self.last_stats


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [text.find(s) for s in stops if s and s in text]
    return min(found) if found else None


def generate_text(model: torch.nn.Module, tokenizer: Any, prompt: str, *, max_new_tokens: int = 40,
                  temperature: float = 0.8, top_k: int = 50, seed: int = 0,
                  device: torch.device | str = "cpu") -> str:
    """A short sampled continuation of ``prompt`` (the trainer's sample panel); restores
    the model's train/eval mode."""
    was_training = model.training
    try:
        gen = Generator(model, tokenizer, device)
        params = SamplingParams(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens, seed=seed)
        return gen.complete(prompt, params).text
    finally:
        model.train(was_training)

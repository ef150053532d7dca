"""Streaming generation from a checkpoint, with a KV cache.

:class:`Generator` loads a checkpoint (the model is rebuilt from its stored config; no
code from the file runs), then :meth:`Generator.stream` yields tokens one by one as
:class:`TokenEvent` objects. With the KV cache each step feeds only the newest token, so
the cost of a token does not grow with a recomputation of the whole sequence; without it
(``use_kv_cache=False``) each step re-runs the whole window, as exp7's chat did. The cache is
the static one (:class:`tui_lab.models.KVCache`): a decode step feeds a reused ``[1, 1]``
device tensor, greedy picks the token on the device, and the token is read back once per
step (for streaming and the stop rules), so the step can be captured in a CUDA graph
(``compile_step=True``, which uses the cache's fixed-shape ``capturable`` mode; eager steps
attend only the filled slots). A prompt's prefill asks the model for its last position's
logits only (``logits_to_keep=1``): the output layer is most of a small model's cost.

The context window: the model sees ``ids[start:]``, at most ``max_seq_len`` tokens. When
the next token would not fit, the window **slides**: it restarts from the last three
quarters of the window (one prefill; positions are absolute in the ``gpt`` family, so a
slide must recompute), or generation stops when ``on_full="stop"``. The cached and the
uncached paths use the same windows, so greedy decoding gives the same tokens either way.

Text is decoded from token bytes with an incremental UTF-8 decoder, so a character split
across tokens is emitted whole, once its last byte arrives; text that might be the start
of a stop string is held back until it is known not to be one.
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..errors import TuiLabError
from .sampling import SamplingParams, next_token

ON_FULL = ("slide", "stop")


class GenerationError(TuiLabError):
    """A checkpoint or tokenizer that cannot be used for generation."""


@dataclass
class TokenEvent:
    """One generated token and the text it releases.

    ``text`` is ``""`` while a UTF-8 character is still partial or while the text could be
    the start of a stop string. ``token_id`` is ``None`` only for a last event that
    releases held-back text without a new token. Joining every event's ``text`` gives
    :attr:`GenerationStats.text`.
    """

    token_id: int | None
    text: str


@dataclass
class GenerationStats:
    """Totals of one :meth:`Generator.stream` call.

    ``ttft_s``: seconds from the call to the first token (tokenizing and prefill included);
    ``tokens_per_s``: generated tokens per second over the whole call; ``decode_tokens_per_s``:
    tokens after the first per second (the steady decode rate, without the prefill).
    """

    n_tokens: int = 0
    prompt_tokens: int = 0
    ttft_s: float | None = None
    elapsed_s: float = 0.0
    stop_reason: str = ""
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    slides: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        if self.ttft_s is None or self.n_tokens < 2 or self.elapsed_s <= self.ttft_s:
            return 0.0
        return (self.n_tokens - 1) / (self.elapsed_s - self.ttft_s)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "n_tokens": self.n_tokens, "tokens_per_s": round(self.tokens_per_s, 2),
                "ttft_s": round(self.ttft_s, 4) if self.ttft_s is not None else None,
                "decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
                "elapsed_s": round(self.elapsed_s, 4), "prompt_tokens": self.prompt_tokens,
                "stop_reason": self.stop_reason, "seed": self.seed, "slides": self.slides}


StopRule = Callable[[list[int]], "str | None"]


def resolve_checkpoint(path: Path | str) -> Path:
    """A checkpoint file; a Hugging Face GPT-2 folder; a run folder's best checkpoint (then
    its last); for an experiment folder (``runs/<experiment>``), the checkpoint of its latest
    run that has one; or ``hf:NAME`` → that Hub model's folder in huggingface_hub's cache
    (downloaded when missing and online).

    Raises:
        GenerationError: nothing usable there.
        CheckpointError: ``hf:NAME`` neither cached nor downloadable (names the cache folder).
    """
    from ..runs.store import RunDir

    if str(path).startswith("hf:"):
        from ..models.foreign.hf_gpt2 import hub_folder

        return hub_folder(str(path))
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() and not RunDir(path).run_path.is_file() and not RunDir(path).checkpoint_dir.is_dir():
            return path  # a Hugging Face folder (checked, with a clear error, when loaded)
        ckpt = RunDir(path).chat_checkpoint() or _latest_run_checkpoint(path)
        if ckpt is None:
            raise GenerationError(f"{path}: no checkpoint in this folder yet (checkpoints/best.safetensors); "
                                  "give a run folder, an experiment folder, a Hugging Face GPT-2 folder "
                                  "or a checkpoint file")
        return ckpt
    if not path.exists():
        raise GenerationError(f"{path}: no such checkpoint file or run folder")
    return path


def _latest_run_checkpoint(folder: Path) -> Path | None:
    """The chat checkpoint of the latest-started run folder inside ``folder`` that has one
    (``run.json``'s ``started_at``, then the run id, which sorts by start time)."""
    from ..runs.store import RunDir, read_json

    found = []
    for sub in folder.iterdir():
        ckpt = RunDir(sub).chat_checkpoint() if sub.is_dir() else None
        if ckpt is not None:
            started = (read_json(RunDir(sub).run_path) or {}).get("started_at")
            found.append((started if isinstance(started, (int, float)) else 0, sub.name, ckpt))
    return max(found)[2] if found else None


def choose_tokenizer(meta: dict[str, Any], ckpt: Path, tokenizer_path: str | None) -> tuple[str, str | None]:
    """``(tokenizer name, path)`` for a checkpoint's metadata: ``tokenizer_path`` when given
    (a ``tokenizer.json`` or a folder holding one → ``hf``; else a GPT-2 BPE folder), else
    what the checkpoint records (``data``), else for exp7 its Hub tokenizer from the cache.

    Raises:
        GenerationError: an exp7 checkpoint whose tokenizer cannot be had (names it).
    """
    from ..data.hf_tokenizer import hub_tokenizer_json, tokenizer_json

    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    if tokenizer_path:
        if tokenizer_json(tokenizer_path) is not None and not (Path(tokenizer_path) / "vocab.bpe").is_file():
            return "hf", tokenizer_path
        return ("gpt2" if data.get("tokenizer") == "hf" else str(data.get("tokenizer") or "gpt2")), tokenizer_path
    hint = meta.get("tokenizer_hint")
    if hint and not data:
        found = hub_tokenizer_json(str(hint))
        if found is None:
            raise GenerationError(
                f"{ckpt}: this {meta.get('source_format', '')} checkpoint was trained with the {hint} tokenizer "
                f"({meta['model_config'].get('vocab_size', 0):,} tokens), which is not in the Hugging Face cache "
                "here and could not be downloaded: give --tokenizer-path with its tokenizer.json (or the folder "
                "holding it)")
        return "hf", str(found)
    name = str(data.get("tokenizer") or "gpt2")
    tok_path = data.get("tokenizer_path")
    if tok_path and not Path(tok_path).expanduser().exists():
        # a relative path was relative to the run's experiments file: look from the run folder up
        for base in ckpt.parents:
            if (base / tok_path).exists():
                tok_path = str(base / tok_path)
                break
    return name, tok_path


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(text), len(s) - 1), best, -1):
            if s.startswith(text[-k:]):
                best = k
                break
    return best


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [text.find(s) for s in stops if s and s in text]
    return min(found) if found else None


class Generator:
    """Generate from ``model`` with ``tokenizer`` on ``device``.

    Args:
        model: a tui-lab model (``forward(idx, kv_cache=None, logits_to_keep=0)``, ``new_kv_cache``,
            ``config``).
        tokenizer: ``encode``, ``decode_bytes`` and ``eot_token`` (see ``tui_lab.data``).
        use_kv_cache: decode with the model's KV cache (default) or recompute the window.
        static_kv_cache: the static cache (default; fixed shapes, device-side position, see
            :mod:`tui_lab.models.kv_cache`) or, ``False``, the sliced baseline.
        compile_step: run each one-token decode step through ``torch.compile`` of the model's
            device-only ``step`` (``mode="reduce-overhead"``, i.e. a CUDA graph, on CUDA);
            off by default. Needs the static cache.
        on_full: ``"slide"`` (default) or ``"stop"`` when the context reaches max_seq_len.
        metadata: the checkpoint's metadata (``checkpoint``, ``experiment``, ``data``...).
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device | str = "cpu", *,
                 use_kv_cache: bool = True, on_full: str = "slide", metadata: dict[str, Any] | None = None,
                 static_kv_cache: bool = True, compile_step: bool = False):
        if on_full not in ON_FULL:
            raise ValueError(f"on_full must be one of {', '.join(ON_FULL)} (got {on_full!r})")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.use_kv_cache = use_kv_cache
        self.on_full = on_full
        self.metadata = metadata or {}
        self.max_len = int(model.config.max_seq_len)
        self.last_stats = GenerationStats()
        self.static_kv_cache = static_kv_cache
        self.compile_step = compile_step
        self._compiled: Callable[..., torch.Tensor] | None = None
        self._cache: Any = None  # with compile_step: the one static cache every call reuses

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", tokenizer_path: str | None = None,
                        num_heads: int | None = None, **kwargs: Any) -> "Generator":
        """Load a checkpoint file, run folder, Hugging Face GPT-2 folder or ``hf:NAME``
        (foreign formats are converted: :mod:`tui_lab.models.foreign`; ``num_heads`` for a
        seed checkpoint); the tokenizer comes from :func:`choose_tokenizer`.

        ``metadata["checkpoint"]`` is the resolved path; for a converted checkpoint
        ``metadata["summary"]`` is one line on its format and the epoch / val perplexity it carries.

        Raises:
            GenerationError, CheckpointError, DataError, DeviceError (unknown device):
                an unusable checkpoint, tokenizer or device (all ``TuiLabError``).
        """
        from ..data import load_tokenizer
        from ..device import resolve_device
        from ..models.checkpoint import load_model
        from ..models.foreign import summary

        dev = resolve_device(device)
        ckpt = resolve_checkpoint(path)
        model, meta = load_model(ckpt, dev, num_heads=num_heads)
        name, tok_path = choose_tokenizer(meta, ckpt, tokenizer_path)
        tokenizer = load_tokenizer(name, tok_path)
        if tokenizer.vocab_size > model.config.vocab_size:
            raise GenerationError(f"{ckpt}: tokenizer '{tokenizer.name}' has {tokenizer.vocab_size} tokens, "
                                  f"more than the model's vocab_size {model.config.vocab_size}")
        meta["checkpoint"] = str(ckpt)
        if summary(meta):
            meta["summary"] = summary(meta)
        return cls(model, tokenizer, dev, metadata=meta, **kwargs)

    # ------------------------------------------------------------------ decoding
    def _forward(self, ids: list[int] | torch.Tensor, cache: Any) -> torch.Tensor:
        """Logits ``[V]`` (float32) after ``ids`` (a list, or a ``[1, T]`` device tensor);
        with a cache, ``ids`` are appended to it.

        ``no_grad`` is entered per call, never held across a ``yield`` (it is thread-local
        state that would leak into the caller's code between tokens)."""
        with torch.no_grad():
            x = ids if isinstance(ids, torch.Tensor) else torch.tensor([ids], dtype=torch.long, device=self.device)
            return self.model(x, kv_cache=cache, logits_to_keep=1)[0, -1].float()

    def new_cache(self) -> Any:
        """A fresh KV cache for one sequence on this generator's device (None without one)."""
        if not self.use_kv_cache:
            return None
        if self.static_kv_cache and self.compile_step:
            # one cache for every call: a captured graph keeps reading and writing the same buffers
            if self._cache is None:
                self._cache = self.model.new_kv_cache(1, device=self.device, capturable=True)
                if self.device.type == "cuda":
                    for buf in (self._cache.k, self._cache.v, self._cache.pos, self._cache.key_pos):
                        torch._dynamo.mark_static_address(buf)
            self._cache.reset()
            return self._cache
        if self.static_kv_cache:
            return self.model.new_kv_cache(1, device=self.device)
        return self.model.new_kv_cache(1, device=self.device, static=False)

    def decode_step(self, token: torch.Tensor, cache: Any) -> torch.Tensor:
        """One decode step: ``token [1, 1]`` (device) → logits ``[V]`` (float32, device).

        With the static cache this is the step a CUDA graph captures: fixed shapes, the
        position read from the cache's device tensor, no host sync; the host only counts
        ``cache.length`` around it (and checks it against ``max_seq_len``). With
        ``compile_step`` the model's ``step`` runs compiled."""
        if not (self.compile_step and getattr(cache, "static", False) and hasattr(self.model, "step")):
            return self._forward(token, cache)
        if cache.length + 1 > self.max_len:
            raise ValueError(f"position {cache.length} exceeds max_seq_len {self.max_len}")
        if self._compiled is None:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            model = self.model

            def step(tok: torch.Tensor, kv: Any) -> torch.Tensor:
                return model.step(tok, kv)[0, -1].float()

            self._compiled = torch.compile(step, mode=mode, fullgraph=True)
        with torch.no_grad():
            logits = self._compiled(token, cache)
        cache.advance(1)
        return logits

    def stream(self, prompt: str | list[int], params: SamplingParams, *, stop_rule: StopRule | None = None,
               should_stop: Callable[[], bool] | None = None, on_full: str | None = None) -> Iterator[TokenEvent]:
        """Yield the generated tokens one by one; :attr:`last_stats` holds the totals
        (updated as it goes, complete once the iterator ends).

        Stops at ``max_new_tokens``, at the tokenizer's end-of-text token (not yielded),
        when a stop string appears in the text (the text is cut before it), when
        ``stop_rule(new_ids)`` returns a reason, when ``should_stop()`` turns True (the
        UI's Esc; checked before each forward pass), or, with ``on_full="stop"``, when the
        sequence reaches ``max_seq_len`` (``on_full`` given here overrides the generator's for
        this call, so two callers need not change shared state). A prompt longer than the window keeps its end.
        A caller that abandons the iterator (closes it, or leaves on an exception) finds
        ``stop_reason == "stopped"``.

        Raises:
            ValueError: invalid sampling parameters.
        """
        try:
            yield from self._stream(prompt, params, stop_rule=stop_rule, should_stop=should_stop,
                                    on_full=on_full or self.on_full)
        finally:
            if not self.last_stats.stop_reason:
                self.last_stats.stop_reason = "stopped"

    def _stream(self, prompt: str | list[int], params: SamplingParams, *, stop_rule: StopRule | None = None,
                should_stop: Callable[[], bool] | None = None, on_full: str = "slide") -> Iterator[TokenEvent]:
        """The body of :meth:`stream`."""
        if on_full not in ON_FULL:
            raise ValueError(f"on_full must be one of {', '.join(ON_FULL)} (got {on_full!r})")
        params.validate()
        t0 = time.perf_counter()
        seed = params.seed if params.seed is not None else int(time.time_ns() % 2**31)
        stats = GenerationStats(seed=seed)
        self.last_stats = stats
        prompt_ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        if not prompt_ids:  # nothing to condition on: start from end-of-text (or byte 0)
            prompt_ids = [self.tokenizer.eot_token if self.tokenizer.eot_token is not None else 0]
        ids = prompt_ids[-max(1, self.max_len - 1):]  # leave room for at least one new token
        stats.prompt_tokens = len(ids)
        start = 0  # the model sees ids[start:]
        keep = max(1, self.max_len * 3 // 4)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = tuple(s for s in params.stop if s)
        eot = self.tokenizer.eot_token
        new: list[int] = []
        stats.token_ids = new  # grows in place: right even if the caller stops iterating early
        emitted = 0  # characters of stats.text already yielded
        cache = self.new_cache()
        token = torch.zeros(1, 1, dtype=torch.long, device=self.device)  # the decode step's input, reused
        logits = self._forward(ids, cache)
        while True:
            nxt_t = next_token(logits, params, new, gen)  # on the device
            nxt = int(nxt_t)  # the one read-back per token (streaming, stop rules)
            if eot is not None and nxt == eot:
                stats.stop_reason = "eos"
                break
            new.append(nxt)
            ids.append(nxt)
            if stats.ttft_s is None:
                stats.ttft_s = time.perf_counter() - t0
            stats.n_tokens = len(new)
            stats.text += decoder.decode(self.tokenizer.decode_bytes([nxt]))
            reason = None
            cut = _first_stop(stats.text, stops)
            if cut is not None:
                stats.text, reason = stats.text[:cut], "stop string"
            elif stop_rule is not None and (rule := stop_rule(new)):
                reason = rule
            elif len(new) >= params.max_new_tokens:
                reason = "max_new_tokens"
            elif len(ids) - start >= self.max_len and on_full == "stop":
                reason = "max_seq_len"
            if reason:
                stats.stop_reason = reason
                if reason != "stop string":
                    stats.text += decoder.decode(b"", final=True)
                piece, emitted = stats.text[emitted:], len(stats.text)
                stats.elapsed_s = time.perf_counter() - t0
                yield TokenEvent(nxt, piece)
                break
            safe = len(stats.text) - _held_back(stats.text, stops) if stops else len(stats.text)
            piece = stats.text[emitted:safe]
            emitted = max(emitted, safe)
            stats.elapsed_s = time.perf_counter() - t0
            yield TokenEvent(nxt, piece)
            if should_stop is not None and should_stop():
                stats.stop_reason = "stopped"
                break
            if len(ids) - start > self.max_len:  # the newest token has no position left: slide
                start = len(ids) - keep
                stats.slides += 1
                if cache is not None:
                    cache.reset()
                logits = self._forward(ids[start:], cache)
            elif cache is not None:
                token.copy_(nxt_t.view(1, 1))
                logits = self.decode_step(token, cache)
            else:
                logits = self._forward(ids[start:], None)
        if stats.stop_reason in ("eos", "stopped"):
            stats.text += decoder.decode(b"", final=True)
            if len(stats.text) > emitted:
                yield TokenEvent(None, stats.text[emitted:])
        stats.elapsed_s = time.perf_counter() - t0

    def complete(self, prompt: str | list[int], params: SamplingParams, **kwargs: Any) -> GenerationStats:
        """Run :meth:`stream` to the end; returns its stats (with the full text)."""
        for _ in self.stream(prompt, params, **kwargs):
            pass
        return self.last_stats


def generate_text(model: torch.nn.Module, tokenizer: Any, prompt: str, *, max_new_tokens: int = 40,
                  temperature: float = 0.8, top_k: int = 50, seed: int = 0,
                  device: torch.device | str = "cpu") -> str:
    """A short sampled continuation of ``prompt`` (the trainer's sample panel), with the KV
    cache; restores the model's train/eval mode."""
    was_training = model.training
    try:
        gen = Generator(model, tokenizer, device)
        params = SamplingParams(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens, seed=seed)
        return gen.complete(prompt, params).text
    finally:
        model.train(was_training)

"""Decoding throughput: the static KV cache vs the sliced cache it replaced, no cache, and
transformers' ``generate`` with its own KV cache, at the same shape, in alternating repetitions.

Tokens/s = generated tokens ÷ seconds from the call to the last token, prefill of the
``context``-token prompt included (``GenerationStats.tokens_per_s``; the same clock around
transformers' ``generate``). Greedy decoding, random weights (speed does not depend on them),
batch 1, ``torch.no_grad``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import torch

from .stats import MIN_REPEATS, alternate, put, ratio
from .training import _sync, reference_model

if TYPE_CHECKING:
    from ..models import ModelConfig


class _Ids:
    """Token ids in, token ids out: decoding speed does not depend on the tokenizer."""

    eot_token = None

    def encode(self, s):  # pragma: no cover - prompts are passed as ids
        raise TypeError("pass token ids")

    def decode_bytes(self, ids):
        return b""


def _tui_lab_measure(model: torch.nn.Module, device: torch.device, prompt: list[int], new_tokens: int,
                     **generator_kwargs: Any) -> Callable[[], float]:
    from ..generate import Generator, SamplingParams

    gen = Generator(model, _Ids(), device, on_full="slide", **generator_kwargs)
    gen.complete(prompt[:16], SamplingParams(temperature=0, max_new_tokens=4))  # warm-up
    params = SamplingParams(temperature=0, max_new_tokens=new_tokens)

    def measure() -> float:
        stats = gen.complete(prompt, params)
        if stats.n_tokens != new_tokens:
            raise RuntimeError(f"generated {stats.n_tokens} tokens, expected {new_tokens} ({stats.stop_reason})")
        return stats.tokens_per_s

    return measure


def _reference_measure(cfg: "ModelConfig", device: torch.device, prompt: list[int],
                       new_tokens: int) -> tuple[Callable[[], float], str]:
    """transformers' ``generate`` (greedy, ``use_cache=True``: its default dynamic cache) on the
    reference model at the same shape."""
    ref, _, name = reference_model(cfg)
    ref.to(device).eval()
    ids = torch.tensor([prompt], device=device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                  eos_token_id=None, pad_token_id=0)

    with torch.no_grad():
        ref.generate(ids[:, :16], **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up

    def measure() -> float:
        with torch.no_grad():
            _sync(device)
            t = time.perf_counter()
            out = ref.generate(ids, **kwargs)
            _sync(device)
            elapsed = time.perf_counter() - t
        n = out.size(1) - ids.size(1)
        if n != new_tokens:
            raise RuntimeError(f"transformers generated {n} tokens, expected {new_tokens}")
        return n / elapsed

    return measure, f"{name}.generate (greedy, use_cache=True)"


def bench_decode(cfg: "ModelConfig | dict[str, Any]", device: torch.device, context: int, new_tokens: int,
                 repeats: int = MIN_REPEATS, reference: bool = True, compile: bool = False) -> dict[str, Any]:
    """Greedy decode tokens/s after a ``context``-token prompt, medians of ``repeats``
    alternating repetitions: ``kv_cache`` (the static cache, tui-lab's default),
    ``sliced_cache`` (the previous cache), ``reference_generate`` (transformers, with its
    cache) and ``no_cache``; ratios of the medians beside them. ``compile``: also
    ``kv_cache_compiled``, each one-token step through ``torch.compile`` (the capturable
    static cache; CUDA graphs on a GPU), its one-time compilation in ``compile_s``."""
    from ..models import build_model, model_config

    cfg = model_config(cfg).model_copy(update={"dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    prompt = torch.randint(0, cfg.vocab_size, (context,), generator=torch.Generator().manual_seed(1)).tolist()
    out: dict[str, Any] = {"context_tokens": context, "new_tokens": new_tokens, "repeats": repeats}
    measures = {"kv_cache": _tui_lab_measure(model, device, prompt, new_tokens),
                "sliced_cache": _tui_lab_measure(model, device, prompt, new_tokens, static_kv_cache=False)}
    if reference:
        try:
            measures["reference_generate"], out["reference"] = _reference_measure(cfg, device, prompt, new_tokens)
        except ImportError:
            out["reference"] = "transformers not installed (pip install 'tui-lab[bench]')"
        except Exception as exc:  # a transformers version that cannot build or run this shape
            out["reference"] = f"reference could not run: {type(exc).__name__}: {exc}"[:300]
    measures["no_cache"] = _tui_lab_measure(model, device, prompt, new_tokens, use_kv_cache=False)
    if compile:
        t = time.perf_counter()
        measures["kv_cache_compiled"] = _tui_lab_measure(model, device, prompt, new_tokens, compile_step=True)
        out["compile_s"] = round(time.perf_counter() - t, 1)  # the warm-up's compilation
    runs = alternate(measures, repeats)
    for label, values in runs.items():
        put(out, f"{label}_tokens_per_s", values)
    ratio(out, "kv_cache_speedup", runs["kv_cache"], runs["no_cache"], 2)
    ratio(out, "static_vs_sliced_cache", runs["kv_cache"], runs["sliced_cache"], 3)
    if "reference_generate" in runs:
        ratio(out, "static_vs_reference_generate", runs["kv_cache"], runs["reference_generate"], 3)
    if compile:
        ratio(out, "compiled_vs_eager_static", runs["kv_cache_compiled"], runs["kv_cache"], 3)
    return out

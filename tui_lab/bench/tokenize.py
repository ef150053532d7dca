"""Tokenization throughput and token-cache reload time."""

from __future__ import annotations

import tempfile
import time
from typing import Any

from .stats import MIN_REPEATS, alternate, put


def bench_tokenize(data_cfg: Any, repeats: int = MIN_REPEATS) -> dict[str, Any]:
    """Tokenize the train split into a fresh cache, then reload it, ``repeats`` times:
    medians of MB/s and seconds (min/max beside them)."""
    from ..data import load_tokenizer, load_tokens

    tok = load_tokenizer(data_cfg.tokenizer, data_cfg.tokenizer_path)
    info: dict[str, Any] = {}

    def cold_and_warm() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            arr = load_tokens(data_cfg, "train", tok, cache_dir=tmp)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            again = load_tokens(data_cfg, "train", tok, cache_dir=tmp)
            int(again.ids[-1])
            info.setdefault("warm", []).append(time.perf_counter() - t)
            info["n_bytes"], info["n_tokens"] = arr.n_bytes, arr.n_tokens
        return cold

    cold = alternate({"tokenize": cold_and_warm}, repeats)["tokenize"]
    out: dict[str, Any] = {"train_tokens": info["n_tokens"], "repeats": repeats}
    put(out, "tokenize_s", cold, 3)
    put(out, "tokenize_mb_per_s", [info["n_bytes"] / 1e6 / c for c in cold], 2)
    put(out, "cache_reload_s", info["warm"], 4)
    return out

"""Decode tokens/s with and without the KV cache for the exp1 and exp3 shapes, in one run.

    python benchmarks/decode_kv_cache.py [--context 256] [--new-tokens 64] [--device cpu]

Random weights (speed does not depend on them), greedy decoding after a --context-token prompt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_lab.bench import bench_decode
from tui_lab.config import load_experiments
from tui_lab.device import resolve_device

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    cfg = load_experiments(ROOT / "experiments.toml")
    dev = resolve_device(args.device)
    print(f"| shape | params (d_model, layers) | context | KV cache tokens/s | no cache tokens/s | ratio | TTFT (cache) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("exp1", "exp3"):
        m = cfg.get(name).model.model_dump(mode="json", exclude_none=True)
        r = bench_decode(m, dev, args.context, args.new_tokens)
        print(f"| {name} | d_model {m['d_model']}, {m['num_layers']} layers | {r['context_tokens']} | "
              f"{r['kv_cache_tokens_per_s']} | {r['no_cache_tokens_per_s']} | {r['kv_cache_speedup']}× | "
              f"{r['kv_cache_ttft_s']} s |", flush=True)

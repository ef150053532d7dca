"""Decode tokens/s for the exp1 and exp3 shapes, in one run: the static KV cache (tui-lab's
default), the previous sliced cache, transformers' generate with its cache, and no cache
(medians of 3 alternating repetitions).

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
    print("| shape | d_model, layers | context | static cache tokens/s | sliced cache | transformers generate | "
          "no cache | static ÷ no cache |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("exp1", "exp3"):
        m = cfg.get(name).model.model_dump(mode="json", exclude_none=True)
        r = bench_decode(m, dev, args.context, args.new_tokens)
        print(f"| {name} | {m['d_model']}, {m['num_layers']} | {r['context_tokens']} | {r['kv_cache_tokens_per_s']} | "
              f"{r['sliced_cache_tokens_per_s']} | {r.get('reference_generate_tokens_per_s', '-')} | "
              f"{r['no_cache_tokens_per_s']} | {r['kv_cache_speedup']}× |", flush=True)

"""`tui-lab check --sanity`: the checks pass on sound experiments and fail on exp7's bugs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tui_lab.models import build_model
from tui_lab.train.sanity import check_causality, check_split_leak

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "gpt": dict(kind="gpt", vocab_size=300, max_seq_len=64, d_model=32, num_heads=4, d_ff=64, num_layers=2),
    "deepseek": dict(kind="deepseek", vocab_size=300, max_seq_len=64, d_model=64, num_heads=4, d_ff=96,
                     num_layers=2, q_lora_rank=16, kv_lora_rank=16),
}


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_causality_check_passes_on_both_families_and_catches_a_model_that_sees_the_future(kind, monkeypatch):
    """exp7's bug: attention without a causal mask. The check passes on the real models and
    fails once attention ignores the mask."""
    torch.manual_seed(0)
    model = build_model(SMALL[kind])
    assert check_causality(model, 300, 64).ok
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def leaky(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        return real_sdpa(q, k, v, dropout_p=dropout_p)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", leaky)
    assert not check_causality(model, 300, 64).ok


def test_leak_check_catches_exp7s_split_and_passes_disjoint_text():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 50257, 200_000).astype(np.uint16)
    # exp7: overlapping windows of ONE stream, shuffled, then split: validation windows are training text
    starts = rng.permutation(len(stream) - 256)[:600]
    val = np.concatenate([stream[s : s + 256] for s in starts[:100]])
    train = np.concatenate([stream[s : s + 256] for s in starts[100:]])
    leaky = check_split_leak(np.concatenate([train, stream]), val)
    assert not leaky.ok and "occur in" in leaky.detail
    held_out = rng.integers(0, 50257, 20_000).astype(np.uint16)
    assert check_split_leak(stream, held_out).ok


def test_sanity_cli_passes_on_the_demo():
    r = subprocess.run([sys.executable, "-m", "tui_lab", "check", "--sanity", "demo"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("pass demo") == 3 and "FAIL" not in r.stdout


def test_sanity_cli_on_wikitext2(wikitext2_dir, gpt2_dir):
    r = subprocess.run([sys.executable, "-m", "tui_lab", "check", "--sanity", "exp1", "exp7", "--set",
                        f"data.path={wikitext2_dir}", "--set", f"data.tokenizer_path={gpt2_dir}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("pass exp1") == 3 and r.stdout.count("pass exp7") == 3

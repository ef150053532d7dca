"""The tiny experiment the process-level tests train: a 1-layer byte-level GPT on pydoc text."""

from __future__ import annotations

import json

TINY_MODEL = dict(kind="gpt", vocab_size=256, max_seq_len=32, d_model=32, num_heads=4, d_ff=64, num_layers=1)
"""The tiny model config of the unit tests (byte vocabulary, 1 layer)."""

TRAIN_DEFAULTS = dict(batch_size=4, max_steps=100, eval_every=10, eval_max_tokens=2048, log_every=5, lr=1e-3)


def tiny_toml(name: str = "tiny", description: str = "tiny test model", **train) -> str:
    """One ``[experiments.NAME]`` table; keyword arguments override ``train`` keys (None drops one)."""
    values = {k: v for k, v in {**TRAIN_DEFAULTS, **train}.items() if v is not None}
    lines = [f"[experiments.{name}]", f"description = {json.dumps(description)}",
             f"[experiments.{name}.model]", 'kind = "gpt"', "vocab_size = 256", "max_seq_len = 64", "d_model = 32",
             "num_heads = 2", "d_ff = 64", "num_layers = 1",
             f"[experiments.{name}.data]", 'dataset = "pydoc"', 'tokenizer = "byte"',
             f"[experiments.{name}.train]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


# A tiny byte-level model for checkpoint, generation and chat tests (random weights are enough
# for the mechanics). The ``tiny_checkpoint`` fixture in conftest.py saves it as a real checkpoint.
TINY_MODEL = dict(kind="gpt", vocab_size=256, max_seq_len=64, d_model=32, num_heads=4, d_ff=64, num_layers=2)

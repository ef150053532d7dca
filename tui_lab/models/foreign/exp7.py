"""Exp7's checkpoints (``vukrosic/blueberry-llm-kimi-deepseek``, ``experiments/exp7``) →
tui-lab's ``deepseek`` family.

Format (read from its public ``exp7_trainer.py``; facts, no code): the periodic checkpoints
``exp7_checkpoint_step_{step}.pt`` are ``torch.save({'step', 'model_state_dict',
'optimizer_state_dict', 'scheduler_state_dict', 'results'})`` (``results`` a plain dict:
``config``, ``training_history`` with per-evaluation ``val_loss`` / ``val_perplexity``...);
the final ``exp7_model.pt`` is the bare ``model.state_dict()``. Its model is
``MoEMinimalLLM`` with each block's attention and feed-forward replaced by DeepSeek-V3's
(``DeepseekV3Attention`` with ``q_lora_rank = kv_lora_rank = 128``, ``qk_nope_head_dim = 0``,
``qk_rope_head_dim = v_head_dim = d/heads``, ``attention_bias = True``; ``DeepseekV3MLP``).

=====================================================================  ==========================
exp7 key (``T = transformer_blocks.i.``)                               tui-lab ``deepseek`` key
=====================================================================  ==========================
``token_embedding.weight`` (``lm_head.weight`` tied to it)             ``tok_emb.weight``
``T norm1.weight`` / ``T norm2.weight``                                ``blocks.i.attn_norm`` / ``mlp_norm``
``T attention.attention.q_a_proj.{weight,bias}``                       ``blocks.i.attn.q_down.*``
``T attention.attention.q_a_layernorm.weight``                         ``blocks.i.attn.q_norm.weight``
``T attention.attention.q_b_proj.weight``                              ``blocks.i.attn.q_up.weight``
``T attention.attention.kv_a_proj_with_mqa.{weight,bias}``             ``blocks.i.attn.kv_down.*``
``T attention.attention.kv_a_layernorm.weight``                        ``blocks.i.attn.kv_norm.weight``
``T attention.attention.kv_b_proj.weight``                             ``blocks.i.attn.v_up.weight``
``T attention.attention.o_proj.{weight,bias}``                         ``blocks.i.attn.out_proj.*``
``T feed_forward.mlp.{gate,up,down}_proj.weight``                      ``blocks.i.mlp.{gate,up,down}.weight``
``norm.weight``                                                        ``norm.weight``
=====================================================================  ==========================

What maps exactly: every weight (no transform: with ``qk_nope_head_dim = 0`` the
``kv_b_proj`` rows are the values alone); RoPE — exp7 de-interleaves the pairs
``(x[2i], x[2i+1])`` into two halves before rotating (``rotate_half``), tui-lab rotates
them in place; both rotate the same pairs by the same angles and permute queries and keys
alike, so every score ``q·k`` is identical; the ``1/sqrt(head_dim)`` scale (its linear RoPE
scaling has factor 1.0: no change); the ``sqrt(d_model)`` embedding scale and tied head.

What does **not** map, and why the logits are not exp7's own:

* **the mask**: exp7 *adds* an all-ones boolean mask to the scores, which shifts every
  score by 1 and masks nothing — every position attends to the whole window, the future
  included. tui-lab's attention is causal (that is the model the weights were meant to
  be, and what generation with a KV cache needs). With more than one layer even the last
  position's logits differ, because earlier positions' hidden states had seen later tokens.
* **the block and final RMSNorm epsilon**: exp7 uses ``nn.RMSNorm(d)`` with the default
  epsilon (float32's machine epsilon, 1.19e-7); tui-lab's ``deepseek`` family uses 1e-6
  (exp7's ``q_a_layernorm`` / ``kv_a_layernorm`` use 1e-6 too). The difference changes a
  normalised activation by about ``0.5·(1e-6 − 1.2e-7)/mean(x²)``, relative.

``max_seq_len`` is not in the weights (RoPE tables are not saved): it comes from the
file's ``results.config.max_seq_len``, else exp7's 256. Tokenizer: exp7 trained with
``HuggingFaceTB/SmolLM-135M``'s (49,152 tokens; ``AutoTokenizer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError
from .common import Converted, Source, apply_mapping, count_layers, expected_shapes, need, number, same_tensor

FORMAT = "exp7"
MARKER = "token_embedding.weight"
TOKENIZER = "HuggingFaceTB/SmolLM-135M"
"""The Hub tokenizer exp7 trained with (49,152 tokens)."""
DEFAULT_MAX_SEQ_LEN = 256
ATTN = "attention.attention."
MLP = "feed_forward.mlp."


def mapping(num_layers: int) -> dict[str, Source]:
    """tui-lab ``deepseek`` key → exp7 key (no transforms)."""
    m = {"tok_emb.weight": Source(MARKER), "norm.weight": Source("norm.weight")}
    pairs = {"q_down": "q_a_proj", "kv_down": "kv_a_proj_with_mqa", "out_proj": "o_proj"}
    for i in range(num_layers):
        b, s = f"blocks.{i}.", f"transformer_blocks.{i}."
        m[f"{b}attn_norm.weight"] = Source(f"{s}norm1.weight")
        m[f"{b}mlp_norm.weight"] = Source(f"{s}norm2.weight")
        for ours, theirs in pairs.items():
            for p in ("weight", "bias"):
                m[f"{b}attn.{ours}.{p}"] = Source(f"{s}{ATTN}{theirs}.{p}")
        m[f"{b}attn.q_norm.weight"] = Source(f"{s}{ATTN}q_a_layernorm.weight")
        m[f"{b}attn.q_up.weight"] = Source(f"{s}{ATTN}q_b_proj.weight",
                                           why="q_b_proj must give heads·d/heads = d_model rows: qk_nope_head_dim 0")
        m[f"{b}attn.kv_norm.weight"] = Source(f"{s}{ATTN}kv_a_layernorm.weight")
        m[f"{b}attn.v_up.weight"] = Source(f"{s}{ATTN}kv_b_proj.weight",
                                           why="kv_b_proj must give only values, d_model rows: qk_nope_head_dim 0")
        for ours in ("gate", "up", "down"):
            m[f"{b}mlp.{ours}.weight"] = Source(f"{s}{MLP}{ours}_proj.weight")
    return m


def _results(obj: Any) -> dict[str, Any]:
    res = obj.get("results") if isinstance(obj, dict) else None
    return res if isinstance(res, dict) else {}


def convert(obj: Any, state: dict[str, torch.Tensor], path: Path, num_heads: int | None = None,
            experiments_file: Path | None = None) -> Converted:
    """Convert an exp7 checkpoint (``obj`` the loaded file, ``state`` its model state dict).

    Raises:
        CheckpointError: missing / extra / wrong-shape keys, an untied head, a layout with a
            "nope" part (``qk_nope_head_dim > 0``) that tui-lab's MLA does not have.
    """
    tok = need(state, MARKER, path, 2, FORMAT)
    L = count_layers(state, "transformer_blocks.", path, FORMAT)
    s0 = f"transformer_blocks.0.{ATTN}"
    q_rank = int(need(state, f"{s0}q_a_layernorm.weight", path, 1, FORMAT).shape[0])
    kv_rank = int(need(state, f"{s0}kv_a_layernorm.weight", path, 1, FORMAT).shape[0])
    kv_a = need(state, f"{s0}kv_a_proj_with_mqa.weight", path, 2, FORMAT)
    d_ff = int(need(state, f"transformer_blocks.0.{MLP}gate_proj.weight", path, 2, FORMAT).shape[0])
    V, d = (int(x) for x in tok.shape)
    rope_dim = int(kv_a.shape[0]) - kv_rank
    notes = []
    if num_heads is None:
        if rope_dim <= 0 or d % rope_dim:
            raise CheckpointError(f"{path}: key '{s0}kv_a_proj_with_mqa.weight' has {kv_a.shape[0]} rows: "
                                  f"kv_lora_rank {kv_rank} + a RoPE key width that does not divide d_model {d} "
                                  "(exp7 uses d_model/heads); give --num-heads H")
        num_heads = d // rope_dim
        notes.append(f"num_heads {num_heads} from the RoPE key width {rope_dim} = d_model/heads")
    else:
        notes.append(f"num_heads {num_heads} from --num-heads")
    if num_heads < 1 or d % num_heads:
        raise CheckpointError(f"{path}: num_heads {num_heads} does not divide d_model {d}")
    config = _results(obj).get("config") if isinstance(_results(obj).get("config"), dict) else {}
    T = config.get("max_seq_len")
    if isinstance(T, int) and not isinstance(T, bool) and T > 0:
        notes.append(f"max_seq_len {T} from the file's results.config")
    else:
        T = DEFAULT_MAX_SEQ_LEN
        notes.append(f"max_seq_len {T}: exp7's (RoPE tables are not saved with the weights)")
    cfg = {"kind": "deepseek", "vocab_size": V, "max_seq_len": int(T), "d_model": d, "num_heads": int(num_heads),
           "d_ff": d_ff, "num_layers": L, "dropout": 0.0, "q_lora_rank": q_rank, "kv_lora_rank": kv_rank,
           "rope_theta": 10_000.0}
    head = state.get("lm_head.weight")
    consumed: tuple[str, ...] = ()
    if head is not None:
        if not same_tensor(head, tok):
            raise CheckpointError(f"{path}: key 'lm_head.weight' differs from 'token_embedding.weight'; exp7's "
                                  "head is tied to the token embedding, and so is tui-lab's")
        consumed = ("lm_head.weight",)
    converted = apply_mapping(state, mapping(L), expected_shapes(cfg), path, FORMAT, consumed_elsewhere=consumed)
    notes.append("exp7 attended without a causal mask (its all-ones mask hides nothing); tui-lab runs these "
                 "weights causally, so its logits and its reported validation figures differ from exp7's")
    meta: dict[str, Any] = {"source_format": FORMAT, "notes": notes, "tokenizer_hint": TOKENIZER}
    if isinstance(obj, dict):
        step = number(obj.get("step"))
        if step is not None:
            meta["step"] = int(step)
        history = _results(obj).get("training_history")
        last = history[-1] if isinstance(history, list) and history and isinstance(history[-1], dict) else {}
        for key, out in (("train_loss", "train_loss"), ("val_loss", "val_loss"), ("val_perplexity", "val_ppl")):
            value = number(last.get(key))
            if value is not None:
                meta[out] = value
    return Converted(converted, cfg, meta)

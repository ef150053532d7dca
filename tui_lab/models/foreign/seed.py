"""The seed scripts' ``LanguageModel`` checkpoints (exp1-exp6) → tui-lab's ``gpt`` family.

Format (public facts about the seed scripts): ``torch.save({'epoch', 'model_state_dict',
'optimizer_state_dict', 'train_loss', 'val_loss', 'val_perplexity'}, 'mha_model_best.pt')``.
State-dict keys, and where they go (``i`` = layer):

=========================================  ==============================
seed key                                   tui-lab ``gpt`` key
=========================================  ==============================
``embeddings.token_embed.weight``          ``tok_emb.weight``
``embeddings.pos_embed.weight``            ``pos_emb.weight``
``blocks.i.norm1.{weight,bias}``           ``blocks.i.ln_1.*``
``blocks.i.attention.q_proj.*`` (k, v,     ``blocks.i.attn.q_proj.*`` (k, v, out)
out likewise)
``blocks.i.norm2.{weight,bias}``           ``blocks.i.ln_2.*``
``blocks.i.ffn.linear1.*``                 ``blocks.i.ff_in.*``
``blocks.i.ffn.linear2.*``                 ``blocks.i.ff_out.*``
``norm.{weight,bias}``                     ``ln_f.*``
``lm_head.bias``                           ``out_bias``
``lm_head.weight``                         (tied: must equal the token embedding)
=========================================  ==============================

The function is the same (pre-norm blocks, ReLU feed-forward, LayerNorm eps 1e-5, causal
attention with ``d/heads``-wide heads, tied head + output bias), so the mapping is exact.
The shapes give every size but the number of heads: it comes from ``num_heads``, or from
the experiment of the experiments file with the same shape (same parameter count).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError
from .common import Converted, Source, apply_mapping, count_layers, expected_shapes, need, number, same_tensor

FORMAT = "seed"
MARKER = "embeddings.token_embed.weight"
"""A state dict with this key is a seed ``LanguageModel``'s."""

FIELDS = ("epoch", "model_state_dict", "optimizer_state_dict", "train_loss", "val_loss", "val_perplexity")


def mapping(num_layers: int) -> dict[str, Source]:
    """tui-lab ``gpt`` key → seed key (no transforms: the layouts are the same)."""
    m = {"tok_emb.weight": Source("embeddings.token_embed.weight"),
         "pos_emb.weight": Source("embeddings.pos_embed.weight"),
         "ln_f.weight": Source("norm.weight"), "ln_f.bias": Source("norm.bias"),
         "out_bias": Source("lm_head.bias")}
    for i in range(num_layers):
        b, s = f"blocks.{i}.", f"blocks.{i}."
        for p in ("weight", "bias"):
            m[f"{b}ln_1.{p}"] = Source(f"{s}norm1.{p}")
            m[f"{b}ln_2.{p}"] = Source(f"{s}norm2.{p}")
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                m[f"{b}attn.{proj}.{p}"] = Source(f"{s}attention.{proj}.{p}")
            m[f"{b}ff_in.{p}"] = Source(f"{s}ffn.linear1.{p}")
            m[f"{b}ff_out.{p}"] = Source(f"{s}ffn.linear2.{p}")
    return m


def parameter_count(V: int, T: int, d: int, d_ff: int, L: int) -> int:
    """The seeds' parameter count ``V·d + T·d + L·(4(d²+d) + 2·d·d_ff + d_ff + d + 4d) + 2d + V``."""
    return V * d + T * d + L * (4 * (d * d + d) + 2 * d * d_ff + d_ff + d + 4 * d) + 2 * d + V


def _experiments(experiments_file: Path | None) -> tuple[str, list[tuple[str, Any]]]:
    """(file name, [(experiment, ModelConfig)]) from ``experiments_file``, else
    ``./experiments.toml``, else tui-lab's default experiments; an unreadable file gives []."""
    from ...config import ConfigError, load_experiments

    candidates = [experiments_file] if experiments_file else [Path("experiments.toml")]
    candidates.append(Path(__file__).resolve().parents[2] / "config" / "default_experiments.toml")
    for f in candidates:
        if f is not None and Path(f).is_file():
            try:
                cfg = load_experiments(f)
            except ConfigError:
                continue
            return str(f), [(name, exp.model) for name, exp in cfg.experiments.items()]
    return "experiments.toml", []


def infer_num_heads(path: Path, shape: dict[str, int], n_params: int,
                    experiments_file: Path | None = None) -> tuple[int, str]:
    """The number of heads of the experiment(s) with this shape, and a sentence saying so.

    Raises:
        CheckpointError: no experiment with this shape, or several with different heads.
    """
    fname, exps = _experiments(experiments_file)
    keys = ("vocab_size", "max_seq_len", "d_model", "d_ff", "num_layers")
    same = [(n, m) for n, m in exps if m.kind == "gpt" and all(getattr(m, k) == shape[k] for k in keys)]
    desc = (f"d_model {shape['d_model']}, {shape['num_layers']} layers, d_ff {shape['d_ff']}, "
            f"context {shape['max_seq_len']}, vocab {shape['vocab_size']}: {n_params:,} parameters")
    if not same:
        raise CheckpointError(f"{path}: a seed checkpoint ({desc}) does not say its number of heads and no "
                              f"experiment in {fname} has this shape: give --num-heads H")
    heads = sorted({m.num_heads for _, m in same})
    names = ", ".join(n for n, _ in same)
    if len(heads) > 1:
        raise CheckpointError(f"{path}: experiments {names} in {fname} have this checkpoint's shape ({desc}) "
                              f"but different numbers of heads ({', '.join(map(str, heads))}): give --num-heads H")
    return heads[0], f"num_heads {heads[0]} from experiment {names} in {fname} (same shape, {n_params:,} parameters)"


def convert(obj: Any, state: dict[str, torch.Tensor], path: Path, num_heads: int | None = None,
            experiments_file: Path | None = None) -> Converted:
    """Convert a seed checkpoint (``obj`` the loaded file, ``state`` its model state dict).

    Raises:
        CheckpointError: missing / extra / wrong-shape keys, an untied head, a number of
            heads that does not divide d_model or cannot be found.
    """
    tok = need(state, MARKER, path, 2, FORMAT)
    pos = need(state, "embeddings.pos_embed.weight", path, 2, FORMAT)
    L = count_layers(state, "blocks.", path, FORMAT)
    ff = need(state, "blocks.0.ffn.linear1.weight", path, 2, FORMAT)
    V, d = tok.shape
    shape = {"vocab_size": int(V), "max_seq_len": int(pos.shape[0]), "d_model": int(d), "d_ff": int(ff.shape[0]),
             "num_layers": L}
    n_params = parameter_count(shape["vocab_size"], shape["max_seq_len"], int(d), shape["d_ff"], L)
    notes = []
    if num_heads is None:
        num_heads, note = infer_num_heads(path, shape, n_params, experiments_file)
        notes.append(note)
    else:
        notes.append(f"num_heads {num_heads} from --num-heads")
    if num_heads < 1 or d % num_heads:
        raise CheckpointError(f"{path}: num_heads {num_heads} does not divide d_model {d}")
    cfg = {"kind": "gpt", **shape, "num_heads": int(num_heads), "dropout": 0.0, "activation": "relu",
           "layer_norm_eps": 1e-5}
    head = state.get("lm_head.weight")
    consumed: tuple[str, ...] = ()
    if head is not None:
        if not same_tensor(head, tok):
            raise CheckpointError(f"{path}: key 'lm_head.weight' differs from 'embeddings.token_embed.weight'; "
                                  "the seeds' head is tied to the token embedding, and so is tui-lab's")
        consumed = ("lm_head.weight",)
    converted = apply_mapping(state, mapping(L), expected_shapes(cfg), path, FORMAT, consumed_elsewhere=consumed)
    meta: dict[str, Any] = {"source_format": FORMAT, "notes": notes, "data": {"tokenizer": "gpt2"}}
    if isinstance(obj, dict):
        for key, out in (("epoch", "epoch"), ("train_loss", "train_loss"), ("val_loss", "val_loss"),
                         ("val_perplexity", "val_ppl")):
            value = number(obj.get(key))
            if value is not None:
                meta[out] = int(value) if key == "epoch" else value
    return Converted(converted, cfg, meta)

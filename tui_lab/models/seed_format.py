"""The seed scripts' ``LanguageModel`` state-dict keys ↔ tui-lab's ``gpt`` keys.

The seed scripts (exp1-exp6) saved ``{'model_state_dict': model.state_dict(), ...}`` with
their own module names; tui-lab's :class:`~tui_lab.models.gpt.GPT` holds the same tensors
(same shapes, same layout: ``nn.Linear`` weights ``[out, in]``) under other names:

=========================================  =====================================
seed key                                    tui-lab ``gpt`` key
=========================================  =====================================
``embeddings.token_embed.weight``           ``tok_emb.weight``        ``[V, d]``
``embeddings.pos_embed.weight``             ``pos_emb.weight``        ``[T, d]``
``blocks.{i}.attention.{q,k,v,out}_proj.*`` ``blocks.{i}.attn.{q,k,v,out}_proj.*``
``blocks.{i}.ffn.linear1.*``                ``blocks.{i}.ff_in.*``    ``[d_ff, d]``
``blocks.{i}.ffn.linear2.*``                ``blocks.{i}.ff_out.*``   ``[d, d_ff]``
``blocks.{i}.norm1.*`` / ``norm2.*``        ``blocks.{i}.ln_1.*`` / ``ln_2.*``
``norm.*``                                  ``ln_f.*``
``lm_head.weight``                          (tied: must equal ``tok_emb.weight``; dropped)
``lm_head.bias``                            ``out_bias``              ``[V]``
=========================================  =====================================

Prefixes from ``nn.DataParallel`` (``module.``, exp4's two GPUs) and ``torch.compile``
(``_orig_mod.``) are stripped first. With tui-lab's seed settings (``activation = "relu"``,
``dropout_layout = "seed"``, ``init = "torch_default"``) the loaded model computes the seed
model's function (tests/test_fidelity.py proves equal logits against a reference).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

_PREFIXES = ("module.", "_orig_mod.")
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^embeddings\.token_embed\.weight$"), "tok_emb.weight"),
    (re.compile(r"^embeddings\.pos_embed\.weight$"), "pos_emb.weight"),
    (re.compile(r"^blocks\.(\d+)\.attention\.(q|k|v|out)_proj\.(weight|bias)$"), r"blocks.\1.attn.\2_proj.\3"),
    (re.compile(r"^blocks\.(\d+)\.ffn\.linear1\.(weight|bias)$"), r"blocks.\1.ff_in.\2"),
    (re.compile(r"^blocks\.(\d+)\.ffn\.linear2\.(weight|bias)$"), r"blocks.\1.ff_out.\2"),
    (re.compile(r"^blocks\.(\d+)\.norm([12])\.(weight|bias)$"), r"blocks.\1.ln_\2.\3"),
    (re.compile(r"^norm\.(weight|bias)$"), r"ln_f.\1"),
    (re.compile(r"^lm_head\.bias$"), "out_bias"),
]
_TIED = "lm_head.weight"


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def from_seed_state_dict(sd: Mapping[str, torch.Tensor], *, strict: bool = True) -> dict[str, torch.Tensor]:
    """Rename a seed ``LanguageModel`` state dict to tui-lab ``gpt`` keys (tensors shared, not copied).

    Args:
        sd: the seed model's ``state_dict()`` (a checkpoint's ``model_state_dict``).
        strict: refuse keys that are not in the table above (else they are dropped).
    Returns:
        a dict for ``GPT.load_state_dict`` (tui-lab's ``gpt`` with the same shapes).
    Raises:
        ValueError: an unknown key (``strict``), ``lm_head.weight`` that is not the token
            embedding (an untied head cannot be represented), or no token embedding.
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    head = None
    for raw, tensor in sd.items():
        key = _strip(raw)
        if key == _TIED:
            head = tensor
            continue
        for pattern, repl in _RULES:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = tensor
                break
        else:
            unknown.append(raw)
    if unknown and strict:
        raise ValueError(f"not a seed LanguageModel state dict: unknown keys {', '.join(sorted(unknown)[:8])}"
                         + (f" (+{len(unknown) - 8} more)" if len(unknown) > 8 else ""))
    if "tok_emb.weight" not in out:
        raise ValueError("not a seed LanguageModel state dict: no embeddings.token_embed.weight")
    if head is not None and (head.shape != out["tok_emb.weight"].shape or not torch.equal(head, out["tok_emb.weight"])):
        raise ValueError("lm_head.weight differs from embeddings.token_embed.weight: tui-lab's gpt has a tied head")
    return out


def to_seed_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`from_seed_state_dict`: tui-lab ``gpt`` keys → the seed names,
    with ``lm_head.weight`` (the tied embedding) included as the seed's ``state_dict()`` has it.

    Raises:
        ValueError: a key that is not a ``gpt`` parameter in the table above.
    """
    inverse = [
        (re.compile(r"^tok_emb\.weight$"), "embeddings.token_embed.weight"),
        (re.compile(r"^pos_emb\.weight$"), "embeddings.pos_embed.weight"),
        (re.compile(r"^blocks\.(\d+)\.attn\.(q|k|v|out)_proj\.(weight|bias)$"), r"blocks.\1.attention.\2_proj.\3"),
        (re.compile(r"^blocks\.(\d+)\.ff_in\.(weight|bias)$"), r"blocks.\1.ffn.linear1.\2"),
        (re.compile(r"^blocks\.(\d+)\.ff_out\.(weight|bias)$"), r"blocks.\1.ffn.linear2.\2"),
        (re.compile(r"^blocks\.(\d+)\.ln_([12])\.(weight|bias)$"), r"blocks.\1.norm\2.\3"),
        (re.compile(r"^ln_f\.(weight|bias)$"), r"norm.\1"),
        (re.compile(r"^out_bias$"), "lm_head.bias"),
    ]
    out: dict[str, torch.Tensor] = {}
    for raw, tensor in sd.items():
        key = _strip(raw)
        for pattern, repl in inverse:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = tensor
                break
        else:
            raise ValueError(f"not a tui-lab gpt state dict key: {raw}")
    if "embeddings.token_embed.weight" in out:
        out[_TIED] = out["embeddings.token_embed.weight"]
    return out


def seed_shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """The ``model`` keys a seed state dict's shapes determine: vocab_size, max_seq_len,
    d_model, d_ff, num_layers (num_heads is not in the tensors: read it from the run's config).

    Raises:
        ValueError: as :func:`from_seed_state_dict`.
    """
    t = from_seed_state_dict(sd, strict=False)
    layers = {int(k.split(".")[1]) for k in t if k.startswith("blocks.")}
    needed = {"pos_emb.weight": "embeddings.pos_embed.weight", "blocks.0.ff_in.weight": "blocks.0.ffn.linear1.weight"}
    missing = [seed for ours, seed in needed.items() if ours not in t]
    if missing or layers != set(range(len(layers))):
        raise ValueError("not a complete seed LanguageModel state dict: "
                         + (f"missing {', '.join(missing)}" if missing
                            else f"blocks {sorted(layers)} are not 0..{len(layers) - 1}"))
    V, d = t["tok_emb.weight"].shape
    return {"vocab_size": int(V), "max_seq_len": int(t["pos_emb.weight"].shape[0]), "d_model": int(d),
            "d_ff": int(t["blocks.0.ff_in.weight"].shape[0]), "num_layers": len(layers)}

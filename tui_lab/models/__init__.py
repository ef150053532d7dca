"""Model families: ``gpt`` (the seeds' LanguageModel, exp1-exp6) and ``deepseek`` (exp7's MLA model).

Public API: :func:`build_model`, :func:`model_config` (the typed :class:`ModelConfig`),
:func:`count_parameters`, :func:`flops_per_token`, :class:`KVCache`; weights on disk in
:mod:`.checkpoint`. Every model has ``forward(idx, kv_cache=None)``, ``new_kv_cache(...)``
and ``.config``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..config.schema import ModelConfig
from .kv_cache import KVCache, SlicedKVCache


def model_config(model_cfg: Mapping[str, Any] | ModelConfig) -> ModelConfig:
    """The ``model`` table as a validated, typed (frozen) :class:`ModelConfig`.

    Args:
        model_cfg: a ``ModelConfig`` (returned as is) or a mapping (a checkpoint's stored
            ``model_config``, a ``[experiments.X.model]`` table).
    Raises:
        ValueError: not a mapping, or a key that is unknown, of the wrong type or out of range.
    """
    from pydantic import ValidationError

    if not isinstance(model_cfg, ModelConfig):
        if not isinstance(model_cfg, Mapping):
            raise ValueError(f"invalid model config: expected a mapping or ModelConfig, got {type(model_cfg).__name__}")
        try:
            model_cfg = ModelConfig.model_validate(dict(model_cfg))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'model'}: {e['msg']}" for e in err.errors())
            raise ValueError(f"invalid model config: {problems}") from None
    return model_cfg


def config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """A model config as the plain JSON-serialisable dict stored in checkpoints."""
    return cfg.model_dump(mode="json", exclude_none=True)


def build_model(model_cfg: Mapping[str, Any] | Any) -> torch.nn.Module:
    """Build the model an experiment's ``model`` table describes (freshly initialised).

    Args:
        model_cfg: a mapping (``kind`` = ``gpt`` or ``deepseek``, vocab_size, max_seq_len,
            d_model, num_heads, d_ff, num_layers, dropout, q_lora_rank, kv_lora_rank,
            rope_theta, pad_vocab_multiple) or a ``tui_lab.config.schema.ModelConfig``.
    Returns:
        a module with ``forward(idx: LongTensor[B, T], kv_cache=None) -> FloatTensor[B, T, vocab_size]``
        (with ``targets=LongTensor[B, T]``: the mean cross-entropy, a float32 scalar; with
        ``logits_to_keep=n``: the last n positions' logits ``[B, n, vocab_size]``),
        ``new_kv_cache(batch_size, device=None, dtype=None, static=True, capturable=False) -> KVCache`` and ``.config``
        (the typed :class:`ModelConfig`, defaults filled in; ``build_model(model.config)``
        builds the same architecture). Parameters are created
        on the current default device (``with torch.device("meta"):`` for a free count).
    Raises:
        ValueError: the table is invalid (unknown kind or key, wrong type, ``d_model`` not
            divisible by ``num_heads``, deepseek without its ranks, ...).
    """
    cfg = model_config(model_cfg)
    if cfg.kind == "gpt":
        from .gpt import GPT

        return GPT(cfg)
    from .deepseek import DeepSeekLM

    return DeepSeekLM(cfg)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of unique parameters (all of them, trainable or not; a tied weight counts once,
    so the GPT head adds only its bias), less the vocabulary padding rows of
    ``pad_vocab_multiple`` (they hold no information). Works on ``meta`` models and
    ``torch.compile`` / DDP wrappers."""
    inner = getattr(model, "_orig_mod", model)
    inner = getattr(inner, "module", inner)
    return sum(p.numel() for p in model.parameters()) - getattr(inner, "vocab_padding_params", 0)


def flops_per_token(model_cfg: Mapping[str, Any] | Any, seq_len: int, num_params: int | None = None) -> int:
    """Training FLOPs per token (forward + backward) ≈ ``6·N + 12·L·d·T``.

    ``6·N``: a multiply-add per parameter used in a matmul, ×3 for the backward pass;
    ``12·L·d·T``: the attention scores and weighted sum over a context of T = ``seq_len``
    tokens (PaLM, Chowdhery et al. 2022, appendix B: ``6N + 12·L·H·Q·T`` with ``H·Q = d``;
    Kaplan et al. 2020, arXiv 2001.08361, Table 1; nanoGPT ``estimate_mfu``).

    N, unless given: as nanoGPT's ``get_num_params(non_embedding=True)``: every parameter
    except the learned positional embedding (a lookup, no FLOPs). The tied token embedding
    **is** counted because it is also the output projection, whose ``V·d`` matmul dominates
    small models (exp1: 804k of 869k parameters). Kaplan's N, which leaves the embedding out
    entirely, would undercount exp1's compute ~40×.

    Args:
        model_cfg: the ``model`` table (mapping or ``ModelConfig``).
        seq_len: training context length T in tokens.
        num_params: use this N instead (e.g. a reference implementation's own count).
    Returns:
        FLOPs per trained token (int). MFU = tokens/s · this / peak FLOP/s.
    Raises:
        ValueError: invalid ``model_cfg`` or ``seq_len`` < 1.
    """
    cfg = model_config(model_cfg)
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if num_params is None:
        with torch.device("meta"):
            num_params = count_parameters(build_model(cfg))
        if cfg.kind == "gpt":
            num_params -= cfg.max_seq_len * cfg.d_model  # learned positions: a lookup
    return int(6 * num_params + 12 * cfg.num_layers * cfg.d_model * seq_len)


__all__ = ["KVCache", "SlicedKVCache", "ModelConfig", "build_model", "config_dict", "count_parameters", "flops_per_token", "model_config"]

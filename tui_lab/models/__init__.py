"""Model families: ``gpt`` (the seeds' LanguageModel) and ``deepseek`` (exp7's MLA model)."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .kv_cache import KVCache


def build_model(model_cfg: Mapping[str, Any] | Any) -> torch.nn.Module:
    """Build the model an experiment's ``model`` table describes.

    Args:
        model_cfg: a mapping (``kind`` = ``gpt`` or ``deepseek``, vocab_size, max_seq_len,
            d_model, num_heads, d_ff, num_layers, dropout, …) or a ``ModelConfig``.
    Returns:
        a module with ``forward(idx: LongTensor[B, T], kv_cache=None) -> FloatTensor[B, T, vocab_size]``,
        ``new_kv_cache(batch_size)`` and ``.config`` (the table as a dict).
    Raises:
        ValueError: the table is invalid (unknown kind, impossible shape, ...).
    """
    from pydantic import ValidationError

    from ..config.schema import ModelConfig

    if not isinstance(model_cfg, ModelConfig):
        try:
            model_cfg = ModelConfig.model_validate(dict(model_cfg))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'model'}: {e['msg']}" for e in err.errors())
            raise ValueError(f"invalid model config: {problems}") from None
    cfg = model_cfg.model_dump(mode="json", exclude_none=True)
    if cfg["kind"] == "gpt":
        from .gpt import GPT

        return GPT(cfg)
    from .deepseek import DeepSeekLM

    return DeepSeekLM(cfg)


def count_parameters(model: torch.nn.Module) -> int:
    """Unique trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_token(model_cfg: Mapping[str, Any], seq_len: int, num_params: int) -> int:
    """Training FLOPs per token ≈ 6·N + 12·L·d·T (forward + backward; Kaplan et al. 2020,
    PaLM appendix B, nanoGPT ``estimate_mfu``), with N all parameters including the tied
    embedding, which is used as the output projection."""
    return 6 * num_params + 12 * model_cfg["num_layers"] * model_cfg["d_model"] * seq_len


__all__ = ["KVCache", "build_model", "count_parameters", "flops_per_token"]

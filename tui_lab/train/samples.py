"""Generation samples for the run's sample panel, written at evaluations."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def sample_text(model: torch.nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int,
                device: torch.device, temperature: float = 0.8, top_k: int = 50, seed: int = 0) -> str:
    """A short top-k continuation of ``prompt`` (the model's train/eval mode is restored)."""
    from ..generate import generate_text

    return generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                         top_k=top_k, seed=seed, device=device)

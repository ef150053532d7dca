"""Next-token sampling: repetition penalty, temperature, top-k, top-p (all on one logits row)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. ``temperature == 0`` is greedy; ``top_k == 0`` and ``top_p == 1``
    disable those filters; ``repetition_penalty == 1`` disables the penalty."""

    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 100
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def with_(self, **changes) -> "SamplingParams":
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> None:
        """Raises:
            ValueError: a value outside its range, naming the parameter."""
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (got {self.temperature})")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (got {self.top_k})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (got {self.repetition_penalty})")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 (got {self.max_new_tokens})")


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019, as exp7 used it): for every token id in
    ``previous``, divide a positive logit by ``penalty`` and multiply a negative one.

    logits ``[V]``; previous ``LongTensor[N]`` → new logits ``[V]``.
    """
    if penalty == 1.0 or previous.numel() == 0:
        return logits
    ids = previous.unique()
    picked = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits, set the rest to -inf (Fan et al. 2018)."""
    if k <= 0 or k >= logits.numel():
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most likely tokens
    whose probabilities sum to at least ``p``; the most likely token always stays."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = torch.softmax(sorted_logits, -1).cumsum(-1)
    drop = cum - torch.softmax(sorted_logits, -1) >= p  # mass before this token already reaches p
    drop[0] = False
    out = logits.clone()
    out[order[drop]] = float("-inf")
    return out


def sample_next(logits: torch.Tensor, params: SamplingParams, previous: torch.Tensor,
                generator: torch.Generator | None) -> int:
    """Pick the next token id from one logits row ``[V]`` (float32 on any device).

    Order: repetition penalty, then greedy (temperature 0) or temperature → top-k → top-p
    → multinomial draw from ``generator``.
    """
    logits = apply_repetition_penalty(logits.float(), previous, params.repetition_penalty)
    if params.temperature == 0:
        return int(logits.argmax())
    logits = logits / params.temperature
    logits = top_p_filter(top_k_filter(logits, params.top_k), params.top_p)
    probs = torch.softmax(logits, -1)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return int(torch.multinomial(probs, 1, generator=generator))

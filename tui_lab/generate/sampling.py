"""Next-token sampling: repetition penalty, temperature, top-k, top-p (all on one logits row).

The draw uses a seeded ``torch.Generator`` on the CPU, so a seed reproduces the same
tokens on any device. torch is imported inside the functions: :class:`SamplingParams`
(and the presets built on it) import without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
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
        for name in ("temperature", "top_p", "repetition_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number (got {getattr(self, name)})")
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


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor | Sequence[int],
                             penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019, "CTRL: A Conditional Transformer Language Model
    for Controllable Generation", section 4.1; as exp7 used it): for every distinct token id
    in ``previous``, divide a positive logit by ``penalty`` and multiply a negative one, so
    that a penalty > 1 always makes the token less likely. Each id is penalised once,
    however often it occurred.

    logits ``[V]``; previous ``LongTensor[N]`` or ids → new logits ``[V]`` (the input is
    not modified).
    """
    import torch

    if penalty == 1.0 or len(previous) == 0:
        return logits
    if not isinstance(previous, torch.Tensor):
        previous = torch.tensor(list(previous), dtype=torch.long)
    ids = previous.to(logits.device).unique()
    picked = logits[ids]
    logits = logits.clone()
    logits[ids] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits, set the rest to -inf (Fan et al. 2018, "Hierarchical
    Neural Story Generation"). Logits tied with the k-th largest are kept too."""
    import torch

    if k <= 0 or k >= logits.numel():
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020, "The Curious Case of Neural Text
    Degeneration"): keep the smallest set of most likely tokens whose probabilities sum to
    at least ``p``; the most likely token always stays."""
    import torch

    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(sorted_logits, -1)
    drop = probs.cumsum(-1) - probs >= p  # the mass before this token already reaches p
    drop[0] = False
    return logits.index_fill(0, order[drop], float("-inf"))


def process_logits(logits: torch.Tensor, params: SamplingParams,
                   previous: torch.Tensor | Sequence[int] = ()) -> torch.Tensor:
    """The logits a token is drawn from: repetition penalty, then temperature, top-k and
    top-p (for ``temperature == 0``, only the penalty: the caller takes the argmax)."""
    logits = apply_repetition_penalty(logits.float(), previous, params.repetition_penalty)
    if params.temperature == 0:
        return logits
    logits = logits / params.temperature
    return top_p_filter(top_k_filter(logits, params.top_k), params.top_p)


def next_token(logits: torch.Tensor, params: SamplingParams, previous: torch.Tensor | Sequence[int],
               generator: torch.Generator | None) -> torch.Tensor:
    """The next token id as a 0-d LongTensor on ``logits``' device (no host sync for greedy).

    Order: repetition penalty over ``previous`` (the ids generated so far), then greedy
    (temperature 0: argmax, on the device) or temperature → top-k → top-p → a multinomial
    draw from ``generator`` (seeded: the same seed gives the same tokens on any device; the
    draw runs on the generator's device, so on a GPU the probabilities are copied to it).
    """
    import torch

    logits = process_logits(logits, params, previous)
    if params.temperature == 0:
        return logits.argmax()
    probs = torch.softmax(logits, -1)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator)[0].to(logits.device)


def sample_next(logits: torch.Tensor, params: SamplingParams, previous: torch.Tensor | Sequence[int],
                generator: torch.Generator | None) -> int:
    """Pick the next token id from one logits row ``[V]`` (any float dtype, any device):
    :func:`next_token`, read back to the host."""
    return int(next_token(logits, params, previous, generator))

"""Pieces shared by the model families: RMSNorm, rotary position embedding, input checks,
the padded vocabulary and the tied output head.

The KV cache and the masked attention call that uses it live in :mod:`.kv_cache`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kv_cache import AnyKVCache
from .loss import linear_cross_entropy


class RMSNorm(nn.Module):
    """Root-mean-square layer norm: ``x / sqrt(mean(x²) + eps) * weight`` over the last dim.

    Zhang & Sennrich 2019, "Root Mean Square Layer Normalization" (arXiv 1910.07467); no
    mean subtraction and no bias. ``x [..., dim]`` → same shape. ``dim`` parameters.
    ``eps=None``: ``torch.finfo(x.dtype).eps`` (≈ 1.2e-7 in float32), as ``torch.nn.RMSNorm``'s default.
    """

    def __init__(self, dim: int, eps: float | None = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rope_tables(dim: int, max_len: int, theta: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[max_len, dim/2]`` (float32) for rotary position embedding.

    Pair ``i`` of a ``dim``-wide vector at position ``m`` is rotated by the angle
    ``m · theta^(-2i/dim)`` (RoFormer, Su et al. 2021, arXiv 2104.09864, eq. 15).

    Raises:
        ValueError: ``dim`` is odd.
    """
    if dim % 2:
        raise ValueError(f"RoPE needs an even dimension, got {dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs ``(x[2i], x[2i+1])`` of ``x [B, H, T, D]`` by their position.

    ``cos``/``sin`` ``[T, D/2]`` are the rows of :func:`rope_tables` for the T absolute
    positions of ``x``. Computed in float32, returned in ``x``'s dtype. Because the
    rotation depends only on the position, a query at ``m`` and a key at ``n`` score as a
    function of ``m - n`` (RoFormer, arXiv 2104.09864).
    """
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.type_as(x)


def check_positions(idx: torch.Tensor, kv_cache: AnyKVCache | None, max_seq_len: int) -> int:
    """Validate a forward call's input (host side: shapes and the cache's host ``length``,
    no device read); return the absolute position of its first token.

    Raises:
        ValueError: ``idx`` is not ``[B, T]`` with T ≥ 1, a cache was made for another
            batch size, or positions ``start … start+T-1`` would reach ``max_seq_len``.
    """
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"expected token ids of shape [batch, time] with time >= 1, got {tuple(idx.shape)}")
    B, T = idx.shape
    start = 0
    if kv_cache is not None:
        start = kv_cache.length
        cached_batch = kv_cache.batch_size
        if cached_batch != B:
            raise ValueError(f"the KV cache was made for batch size {cached_batch}, got a batch of {B}")
    if start + T > max_seq_len:
        raise ValueError(f"positions {start}..{start + T - 1} exceed max_seq_len {max_seq_len}"
                         + (f" ({start} tokens already cached)" if start else ""))
    return start


def padded_vocab_size(vocab_size: int, multiple: int) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (50,257 → 50,304 for 64, as
    nanoGPT pads GPT-2's vocabulary so the output matmul's N dimension is aligned)."""
    return -(-vocab_size // multiple) * multiple


def output_head(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, vocab_size: int,
                targets: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
    """The tied output projection: logits ``[B, T, vocab_size]`` or, with ``targets [B, T]``,
    the mean cross-entropy (a float32 scalar, nats/token) through the fused, chunked
    :func:`~tui_lab.models.loss.linear_cross_entropy`.

    ``weight [V_padded, d]`` / ``bias [V_padded]`` may hold padding rows past
    ``vocab_size``; the logits are cut back to ``vocab_size`` (a view, not contiguous when
    padded), so the padding never reaches a loss or a sampler. ``logits_to_keep=n`` (n > 0,
    no targets): the logits of the last n positions only, ``[B, n, vocab_size]``.
    """
    if targets is not None:
        return linear_cross_entropy(h, weight, bias, targets, vocab_size)
    if logits_to_keep:  # the last positions only (a prompt's prefill needs one)
        h = h[:, -logits_to_keep:]
    logits = F.linear(h, weight, bias)
    return logits if logits.size(-1) == vocab_size else logits[..., :vocab_size]

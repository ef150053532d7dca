"""Key/value cache for incremental decoding, and the attention call that uses it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    """Preallocated keys ``[B, Hk, max_len, Dk]`` and values ``[B, H, max_len, Dv]`` per layer.

    ``length`` tokens are cached; a forward pass writes its new keys/values at
    ``length …`` in every layer, then the model calls :meth:`advance`. ``Hk`` may be 1
    (one key shared by all heads, as exp7's rope-only keys); it is broadcast when used.
    """

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_len: int, k_dim: int, v_dim: int,
                 device: torch.device | str, dtype: torch.dtype, k_heads: int | None = None):
        kh = k_heads or num_heads
        self.k = [torch.zeros(batch_size, kh, max_len, k_dim, device=device, dtype=dtype) for _ in range(num_layers)]
        self.v = [torch.zeros(batch_size, num_heads, max_len, v_dim, device=device, dtype=dtype) for _ in range(num_layers)]
        self.max_len = max_len
        self.length = 0

    def reset(self) -> None:
        self.length = 0

    def advance(self, n: int) -> None:
        self.length += n

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` for the new positions; return all cached keys/values so far."""
        s, t = self.length, k.size(2)
        self.k[layer][:, :, s : s + t] = k
        self.v[layer][:, :, s : s + t] = v
        return self.k[layer][:, :, : s + t], self.v[layer][:, :, : s + t]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache | None, layer: int,
           dropout_p: float) -> torch.Tensor:
    """Causal scaled dot-product attention (Vaswani et al. 2017) through
    ``F.scaled_dot_product_attention``.

    q ``[B, H, T, Dk]``, k ``[B, Hk, T, Dk]``, v ``[B, H, T, Dv]`` → ``[B, H, T, Dv]``.
    With a cache, the T new queries sit at absolute positions ``cache.length …`` and see
    every cached key plus the new ones up to themselves. ``is_causal=True`` would align
    the mask top-left when T differs from the key length, so a single query uses no mask
    and several queries an explicit one.
    """
    if cache is not None:
        start = cache.length
        k, v = cache.update(layer, k, v)
    if k.size(1) != q.size(1):
        k = k.expand(-1, q.size(1), -1, -1)
    if cache is None or cache.length == 0 and q.size(2) == k.size(2):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    T = q.size(2)
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    q_pos = torch.arange(start, start + T, device=q.device)[:, None]
    k_pos = torch.arange(k.size(2), device=q.device)[None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=k_pos <= q_pos, dropout_p=dropout_p)

"""Key/value caches for incremental decoding, and the attention call that uses them.

Two caches with one interface (``length``, ``reset``, ``positions``, ``update``, ``commit``):

* :class:`KVCache` — the **static** cache, the default everywhere: fixed buffers
  ``k [layers, batch, k_heads, max_seq_len, k_dim]`` and ``v [layers, batch, heads,
  max_seq_len, v_dim]`` written in place at a position held **on the device**
  (``pos``, a 0-d LongTensor), attention masked by position. With ``capturable=True``
  attention reads all ``max_seq_len`` slots: every tensor of a decode step has a shape that
  depends only on the number of new tokens, and nothing in the step reads a value back to
  the host, so one decode step can be captured in a CUDA graph
  (``torch.compile(mode="reduce-overhead")`` / ``torch.cuda.CUDAGraph``). This is the
  "static cache" layout of transformers' ``StaticCache`` and of gpt-fast (PyTorch Labs,
  ``generate.py``: ``index_copy_`` at ``input_pos``, mask by position).
* :class:`SlicedKVCache` — the previous design, kept as the baseline of ``tui-lab bench``
  and of the equivalence tests: the same preallocated buffers, but each step attends to
  the slice ``[:length]`` (a shape that grows by one every token, so no graph capture).

  Eager decoding (``capturable=False``, the default) writes at the host's position and
  reads only the filled slots ``[:length + T]`` — the host knows ``length`` — so attention
  costs what the tokens so far cost, not what ``max_seq_len`` costs: on a CPU the same
  operations as :class:`SlicedKVCache` (``tui-lab bench``: 0.96–1.04× its tokens/s at exp3,
  a tie within the noise of one run). Same buffers, same slots, same tokens.

``length`` is the host's count of cached tokens (the model's input checks and the
sliding window use it; with ``capturable=True`` it is never read inside a decode step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    """Static KV cache (see the module docstring).

    Shapes: ``k [L, B, Hk, S, Dk]``, ``v [L, B, H, S, Dv]`` with S = ``max_len``; ``Hk`` may
    be 1 (one key shared by all heads, as exp7's rope-only keys), broadcast when used.
    ``pos`` (device, 0-d int64) is the absolute position of the next token (kept in both
    modes; only a ``capturable`` step reads it).
    ``capturable``: attend over all S slots (fixed shapes, for ``torch.compile`` / CUDA
    graphs) instead of the filled ``[:length + T]`` (eager decoding, the default).

    Use: the model calls :meth:`positions` (T new tokens → their positions ``[T]`` on the
    device, and the ``[T, S]`` boolean mask of the keys each may see), then :meth:`update`
    per layer (writes in place, returns the full buffers and the mask), then :meth:`commit`
    (``pos += T`` on the device). :meth:`advance` moves the host count ``length``.
    """

    static = True

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_len: int, k_dim: int, v_dim: int,
                 device: torch.device | str, dtype: torch.dtype, k_heads: int | None = None,
                 capturable: bool = False):
        kh = k_heads or num_heads
        self.capturable = capturable
        self.k = torch.zeros(num_layers, batch_size, kh, max_len, k_dim, device=device, dtype=dtype)
        self.v = torch.zeros(num_layers, batch_size, num_heads, max_len, v_dim, device=device, dtype=dtype)
        self.pos = torch.zeros((), dtype=torch.long, device=device)
        self.key_pos = torch.arange(max_len, device=device)  # [S]: the slot index = the key's position
        self.max_len = max_len
        self.batch_size = batch_size
        self.length = 0
        self._q_pos = self.key_pos[:0]
        self._mask = torch.zeros(0, max_len, dtype=dtype, device=device)

    def reset(self) -> None:
        """Empty the cache (stale slots stay in memory but are masked out)."""
        self.pos.zero_()
        self.length = 0

    def advance(self, n: int) -> None:
        """The host count of cached tokens grows by ``n`` (the model's ``forward`` calls it)."""
        self.length += n

    def positions(self, t: int) -> torch.Tensor:
        """Absolute positions ``[t]`` (device) of the next ``t`` tokens; also prepares the
        additive ``[t, S]`` mask (0 where the query at p sees key 0 … p, -inf after) used by
        every layer of this step."""
        if self.capturable:  # the position read on the device: no host value inside a captured step
            q_pos = self.pos + torch.arange(t, device=self.pos.device)
        else:  # eager: the host knows it (one op fewer per step)
            q_pos = torch.arange(self.length, self.length + t, device=self.pos.device)
        self._q_pos = q_pos
        if t == 1 and not self.capturable:  # one query over the filled slots sees them all
            return q_pos
        # additive float mask, made once per step (a boolean one is converted in every layer)
        self._mask = torch.zeros(t, self.max_len, dtype=self.k.dtype, device=self.k.device).masked_fill_(
            self.key_pos[None, :] > q_pos[:, None], float("-inf"))
        return q_pos

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Write ``k [B, Hk, T, Dk]`` / ``v [B, H, T, Dv]`` at this step's positions (in place);
        return the keys ``[B, Hk, S', Dk]``, values ``[B, H, S', Dv]`` and the mask ``[T, S']``
        with S' = S when ``capturable``, else ``length + T`` (the filled slots; then a single
        query, which sees every filled slot, gets no mask: None)."""
        if self.capturable:  # written at the device position
            self.k[layer].index_copy_(2, self._q_pos, k.to(self.k.dtype))
            self.v[layer].index_copy_(2, self._q_pos, v.to(self.v.dtype))
            return self.k[layer], self.v[layer], self._mask
        s, t = self.length, k.size(2)  # eager: at the host position, the same slots
        n = s + t
        self.k[layer, :, :, s:n] = k
        self.v[layer, :, :, s:n] = v
        return self.k[layer, :, :, :n], self.v[layer, :, :, :n], (None if t == 1 else self._mask[:, :n])

    def commit(self, t: int) -> None:
        """``pos += t`` on the device (the end of a forward pass)."""
        self.pos.add_(t)


class SlicedKVCache:
    """The previous cache: per layer, preallocated keys ``[B, Hk, S, Dk]`` and values
    ``[B, H, S, Dv]``; each step attends to the first ``length + T`` slots (growing
    shapes, the host position). Kept as a baseline (``tui-lab bench``, equivalence tests)."""

    static = False

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_len: int, k_dim: int, v_dim: int,
                 device: torch.device | str, dtype: torch.dtype, k_heads: int | None = None):
        kh = k_heads or num_heads
        self.k = [torch.zeros(batch_size, kh, max_len, k_dim, device=device, dtype=dtype) for _ in range(num_layers)]
        self.v = [torch.zeros(batch_size, num_heads, max_len, v_dim, device=device, dtype=dtype) for _ in range(num_layers)]
        self.max_len = max_len
        self.batch_size = batch_size
        self.length = 0
        self._device = torch.device(device)
        self._t = 0

    def reset(self) -> None:
        self.length = 0

    def advance(self, n: int) -> None:
        self.length += n

    def positions(self, t: int) -> torch.Tensor:
        self._t = t
        return torch.arange(self.length, self.length + t, device=self._device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Store the new keys/values; return the cached ones so far and the mask (None: a
        single query sees every key; ``is_causal`` when nothing was cached before)."""
        s, t = self.length, k.size(2)
        self.k[layer][:, :, s : s + t] = k
        self.v[layer][:, :, s : s + t] = v
        mask = None
        if t > 1 and s > 0:
            q_pos = torch.arange(s, s + t, device=k.device)[:, None]
            mask = torch.arange(s + t, device=k.device)[None, :] <= q_pos
        return self.k[layer][:, :, : s + t], self.v[layer][:, :, : s + t], mask

    def commit(self, t: int) -> None:
        pass


AnyKVCache = KVCache | SlicedKVCache


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: AnyKVCache | None, layer: int,
           dropout_p: float) -> torch.Tensor:
    """Causal scaled dot-product attention (Vaswani et al. 2017) through
    ``F.scaled_dot_product_attention``.

    q ``[B, H, T, Dk]``, k ``[B, Hk, T, Dk]``, v ``[B, H, T, Dv]`` → ``[B, H, T, Dv]``.
    Without a cache, or for a prefill into an empty cache (its first T slots only):
    ``is_causal=True``. Otherwise the T new queries sit at the cache's positions and see
    every key up to their own position, through the cache's explicit mask
    (``is_causal=True`` would align the mask top-left when T differs from the number of
    keys, so a single decode query would see only key 0).
    """
    if cache is None:
        if k.size(1) != q.size(1):
            k = k.expand(-1, q.size(1), -1, -1)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    T = q.size(2)
    # a prefill into an empty cache (the host knows: ``length`` is 0) needs only its own T
    # keys, causally; a one-token decode step never reads ``length`` (``T > 1`` is False
    # first), so a compiled step holds no guard on it
    fresh = T > 1 and cache.length == 0
    k, v, mask = cache.update(layer, k, v)
    if fresh:
        k, v = k[:, :, :T], v[:, :, :T]
    if k.size(1) != q.size(1):
        k = k.expand(-1, q.size(1), -1, -1)
    if fresh:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

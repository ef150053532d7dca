"""The seeds' ``LanguageModel``: a GPT-2-style decoder (exp1-exp6).

Token embedding + learned positional embedding, ``num_layers`` pre-norm blocks of
multi-head causal self-attention (q, k, v, out projections with bias) and a GELU
feed-forward (``d_model → d_ff → d_model``, with bias), a final LayerNorm, and an
output projection tied to the token embedding plus an output bias of ``vocab_size``.
Sources: GPT-2 (Radford et al. 2019); nanoGPT ``model.py`` (Karpathy).
Parameters: ``V·d + T·d + L·(4(d²+d) + 2·d·d_ff + d_ff + d + 4d) + 2d + V``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kv_cache import KVCache, attend


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (p(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        y = attend(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        return self.resid_dropout(self.out_proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.ff_in = nn.Linear(d_model, d_ff)
        self.ff_out = nn.Linear(d_ff, d_model)
        self.ff_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.ff_dropout(self.ff_out(F.gelu(self.ff_in(self.ln_2(x)))))


class GPT(nn.Module):
    """GPT-2-style language model.

    ``forward(idx: LongTensor[B, T], kv_cache=None) -> FloatTensor[B, T, vocab_size]``.
    With a :class:`KVCache` the tokens take positions ``cache.length …`` and are appended.

    Raises:
        ValueError: positions beyond ``max_seq_len``.
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)
        V, T, d = config["vocab_size"], config["max_seq_len"], config["d_model"]
        L, h, d_ff, p = config["num_layers"], config["num_heads"], config["d_ff"], config.get("dropout", 0.0)
        self.max_seq_len = T
        self.num_layers, self.num_heads, self.head_dim = L, h, d // h
        self.tok_emb = nn.Embedding(V, d)
        self.pos_emb = nn.Embedding(T, d)
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(Block(d, h, d_ff, p) for _ in range(L))
        self.ln_f = nn.LayerNorm(d)
        self.out_bias = nn.Parameter(torch.zeros(V))
        self.apply(self._init)
        for name, param in self.named_parameters():
            if name.endswith("out_proj.weight") or name.endswith("ff_out.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * L))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_kv_cache(self, batch_size: int, device=None, dtype=None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_seq_len`` tokens."""
        device = device or self.tok_emb.weight.device
        dtype = dtype or self.tok_emb.weight.dtype
        return KVCache(self.num_layers, batch_size, self.num_heads, self.max_seq_len, self.head_dim,
                       self.head_dim, device, dtype)

    def forward(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        B, T = idx.shape
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > self.max_seq_len:
            raise ValueError(f"positions {start}..{start + T - 1} exceed max_seq_len {self.max_seq_len}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache, i)
        if kv_cache is not None:
            kv_cache.advance(T)
        return F.linear(self.ln_f(x), self.tok_emb.weight, self.out_bias)

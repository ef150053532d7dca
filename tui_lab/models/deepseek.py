"""Exp7's architecture: DeepSeek-style multi-head latent attention + SiLU-gated MLP, causal.

Pre-norm blocks with RMSNorm (Zhang & Sennrich 2019); the token embedding is scaled by
``sqrt(d_model)`` and tied to the output head (no output bias). Attention is multi-head
latent attention (DeepSeek-V2, arXiv 2405.04434) with low-rank queries
(``d → q_lora_rank`` with bias, RMSNorm, ``→ heads·head_dim``) and keys/values from a
compressed latent (``d → kv_lora_rank + head_dim`` with bias; RMSNorm on the latent;
``kv_lora_rank → heads·head_dim`` values). Queries and the shared key are rotated with
RoPE (RoFormer, arXiv 2104.09864) over the whole head dimension: there is no "nope"
part, exactly as exp7 was configured. The MLP is SiLU-gated (Shazeer 2020), no bias.
Unlike exp7's own code the attention is causal.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kv_cache import KVCache, attend


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rope_tables(dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin ``[max_len, dim/2]`` for rotary position embedding."""
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    ang = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of ``x [B, H, T, D]`` by position; cos/sin ``[T, D/2]``."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.type_as(x)


class LatentAttention(nn.Module):
    def __init__(self, d: int, heads: int, q_rank: int, kv_rank: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.kv_rank = heads, d // heads, kv_rank
        self.q_down = nn.Linear(d, q_rank)
        self.q_norm = RMSNorm(q_rank)
        self.q_up = nn.Linear(q_rank, heads * self.head_dim, bias=False)
        self.kv_down = nn.Linear(d, kv_rank + self.head_dim)
        self.kv_norm = RMSNorm(kv_rank)
        self.v_up = nn.Linear(kv_rank, heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(heads * self.head_dim, d)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, cos, sin, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_up(self.q_norm(self.q_down(x))).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        latent, k_rope = self.kv_down(x).split([self.kv_rank, self.head_dim], dim=-1)
        v = self.v_up(self.kv_norm(latent)).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = k_rope.view(B, T, 1, self.head_dim).transpose(1, 2)  # one key shared by all heads
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = attend(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        return self.resid_dropout(self.out_proj(y.transpose(1, 2).reshape(B, T, -1)))


class GatedMLP(nn.Module):
    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.gate = nn.Linear(d, d_ff, bias=False)
        self.up = nn.Linear(d, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        d = cfg["d_model"]
        self.attn_norm = RMSNorm(d)
        self.attn = LatentAttention(d, cfg["num_heads"], cfg["q_lora_rank"], cfg["kv_lora_rank"], cfg.get("dropout", 0.0))
        self.mlp_norm = RMSNorm(d)
        self.mlp = GatedMLP(d, cfg["d_ff"])
        self.drop = nn.Dropout(cfg.get("dropout", 0.0))

    def forward(self, x, cos, sin, cache, layer):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer)
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class DeepSeekLM(nn.Module):
    """``forward(idx: LongTensor[B, T], kv_cache=None) -> FloatTensor[B, T, vocab_size]``.

    The KV cache holds the per-head values and the single shared rotated key per position.

    Raises:
        ValueError: positions beyond ``max_seq_len``.
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)
        d, L = config["d_model"], config["num_layers"]
        self.max_seq_len, self.num_layers = config["max_seq_len"], L
        self.num_heads, self.head_dim = config["num_heads"], d // config["num_heads"]
        self.tok_emb = nn.Embedding(config["vocab_size"], d)
        self.emb_scale = math.sqrt(d)
        self.drop = nn.Dropout(config.get("dropout", 0.0))
        self.blocks = nn.ModuleList(Block(config) for _ in range(L))
        self.norm = RMSNorm(d)
        cos, sin = rope_tables(self.head_dim, self.max_seq_len, config.get("rope_theta", 10_000.0))
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                # embedding std 0.02/sqrt(d): after the sqrt(d) scale inputs have std 0.02, and the tied
                # head's logits stay small so the loss at init is ~ln(vocab_size)
                std = 0.02 / math.sqrt(d) if name == "tok_emb.weight" else 0.02
                if name.endswith("out_proj.weight") or name.endswith("down.weight") and "mlp" in name:
                    std = 0.02 / math.sqrt(2 * L)
                nn.init.normal_(p, mean=0.0, std=std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def new_kv_cache(self, batch_size: int, device=None, dtype=None) -> KVCache:
        device = device or self.tok_emb.weight.device
        dtype = dtype or self.tok_emb.weight.dtype
        return KVCache(self.num_layers, batch_size, self.num_heads, self.max_seq_len, self.head_dim, self.head_dim,
                       device, dtype, k_heads=1)

    def forward(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        B, T = idx.shape
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > self.max_seq_len:
            raise ValueError(f"positions {start}..{start + T - 1} exceed max_seq_len {self.max_seq_len}")
        cos, sin = self.rope_cos[start : start + T], self.rope_sin[start : start + T]
        x = self.drop(self.tok_emb(idx) * self.emb_scale)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, kv_cache, i)
        if kv_cache is not None:
            kv_cache.advance(T)
        return F.linear(self.norm(x), self.tok_emb.weight)

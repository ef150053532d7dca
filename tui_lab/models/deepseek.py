"""Exp7's architecture: DeepSeek-style multi-head latent attention + SiLU-gated MLP, causal.

Pre-norm blocks with RMSNorm (Zhang & Sennrich 2019); the token embedding is scaled by
``sqrt(d_model)`` and tied to the output head (no output bias); a final RMSNorm.

As exp7's code (docs/fidelity.md): the block and final norms use ``torch.nn.RMSNorm``'s
default eps (``finfo(dtype).eps``), the two latent norms inside attention 1e-6 (DeepSeek-V3's
``DeepseekV3RMSNorm``); dropout on the scaled embedding, the attention weights, the attention
and MLP branches (block level) and after the final norm.

Attention is multi-head latent attention (MLA; DeepSeek-V2, arXiv 2405.04434, §2.1):

* queries through a low-rank bottleneck: ``d → q_lora_rank`` (bias), RMSNorm,
  ``q_lora_rank → heads·head_dim`` (no bias);
* one down-projection ``d → kv_lora_rank + head_dim`` (bias) gives the compressed latent
  ``c_kv`` and the decoupled RoPE key; RMSNorm on ``c_kv``, then
  ``kv_lora_rank → heads·head_dim`` values (no bias);
* RoPE (RoFormer, arXiv 2104.09864) on the whole head dimension of queries and key:
  ``qk_rope_head_dim = head_dim = d/heads`` and **no** "nope" part, exactly as exp7 was
  configured, so the key is the rotated RoPE key alone, **shared by all heads** (as
  DeepSeek-V2's ``k_R``);
* ``v_head_dim = d/heads``; output projection ``heads·head_dim → d`` with bias.

The MLP is SiLU-gated (``down(silu(gate(x)) * up(x))``, Shazeer 2020, arXiv 2002.05202),
no bias. Unlike exp7's own code, whose attention added an all-ones mask, attention here is
causal.

Parameters per layer (d=256, 4 heads, ranks 128, d_ff=1024, as exp7): attention 213,824
(q_down 32,896 + q_norm 128 + q_up 32,768 + kv_down 49,344 + kv_norm 128 + v_up 32,768 +
out_proj 65,792), MLP 786,432, two norms 512; with vocab 49,152, 3 layers and the final
norm: 15,585,472.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config.schema import ModelConfig
from .kv_cache import AnyKVCache, KVCache, SlicedKVCache, attend
from .layers import RMSNorm, apply_rope, check_positions, output_head, padded_vocab_size, rope_tables


class LatentAttention(nn.Module):
    """Causal multi-head latent attention: ``x [B, T, d]`` → ``[B, T, d]``.

    ``cos``/``sin`` ``[T, head_dim/2]`` are the RoPE rows of the T absolute positions.
    Keys are ``[B, 1, T, head_dim]`` (one per position, shared by the heads; broadcast in
    :func:`.kv_cache.attend`), values ``[B, heads, T, head_dim]``.
    """

    def __init__(self, d: int, heads: int, q_rank: int, kv_rank: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.kv_rank = heads, d // heads, kv_rank
        self.q_down = nn.Linear(d, q_rank)
        self.q_norm = RMSNorm(q_rank)
        self.q_up = nn.Linear(q_rank, heads * self.head_dim, bias=False)
        self.kv_down = nn.Linear(d, kv_rank + self.head_dim)  # [latent c_kv | RoPE key]
        self.kv_norm = RMSNorm(kv_rank)
        self.v_up = nn.Linear(kv_rank, heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(heads * self.head_dim, d)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: AnyKVCache | None,
                layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_up(self.q_norm(self.q_down(x))).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        latent, k_rope = self.kv_down(x).split([self.kv_rank, self.head_dim], dim=-1)
        v = self.v_up(self.kv_norm(latent)).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = k_rope.unsqueeze(1)  # [B, 1, T, head_dim]: one key shared by all heads
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = attend(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        return self.resid_dropout(self.out_proj(y.transpose(1, 2).reshape(B, T, -1)))


class GatedMLP(nn.Module):
    """SiLU-gated feed-forward ``down(silu(gate(x)) * up(x))``, ``d → d_ff → d``, no bias."""

    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.gate = nn.Linear(d, d_ff, bias=False)
        self.up = nn.Linear(d, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(attn_norm(x))`` then ``x + mlp(mlp_norm(x))``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, p = cfg.d_model, cfg.dropout
        self.attn_norm = RMSNorm(d, eps=None)  # exp7: nn.RMSNorm(d_model), default eps
        self.attn = LatentAttention(d, cfg.num_heads, cfg.q_lora_rank, cfg.kv_lora_rank, p)
        self.mlp_norm = RMSNorm(d, eps=None)
        self.mlp = GatedMLP(d, cfg.d_ff)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: AnyKVCache | None,
                layer: int) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer)
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class DeepSeekLM(nn.Module):
    """Exp7's DeepSeek-style decoder (MLA + SiLU-gated MLP + RMSNorm), causal.

    Args:
        config: the validated ``model`` table (:class:`~tui_lab.config.schema.ModelConfig`) with ``kind = "deepseek"``, ``q_lora_rank`` and
            ``kv_lora_rank``; kept as ``self.config``. Use :func:`tui_lab.models.build_model`.

    ``forward(idx: LongTensor[B, T], kv_cache=None) -> FloatTensor[B, T, vocab_size]``
    (unnormalised logits); positions, ``targets=`` (the fused loss) and
    ``pad_vocab_multiple`` as in :class:`~tui_lab.models.gpt.GPT`.

    KV cache: per layer, the **rotated shared key** ``[B, 1, max_seq_len, head_dim]`` and the
    per-head **values** ``[B, heads, max_seq_len, head_dim]`` — ``d_model + head_dim``
    numbers per position and layer (320 for exp7), against ``2·d_model`` for plain
    multi-head attention. Caching the latent instead (``kv_lora_rank + head_dim`` = 192)
    would be smaller still but needs the value up-projection of every cached position at
    each step (or absorbing it into ``out_proj``); at these sizes the plain values are simpler
    and faster.

    Init (``config.init``): ``"gpt2"`` — weights N(0, 0.02); residual projections
    (``attn.out_proj``, ``mlp.down``) N(0, 0.02/sqrt(2·num_layers)); the embedding
    N(0, 0.02/sqrt(d_model)), so that after the ``sqrt(d_model)`` scale the inputs have std
    0.02 and the tied head's logits start near zero (loss ≈ ln(vocab_size)); biases zero,
    norm weights one. ``"torch_default"`` — exp7's code: the embedding N(0, 0.02) (its base
    model's ``_init_weights``), every attention / MLP linear PyTorch's own (Kaiming-uniform
    weights, uniform biases: exp7 swapped the DeepSeek modules in after that init ran), norm
    weights one; loss at init ≈ ln(vocab_size) too (logits ≈ N(0, 0.32²) at d_model 256).

    Raises:
        ValueError: ``idx`` not ``[B, T]``, a cache of another batch size, or positions
            beyond ``max_seq_len``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d, L = config.d_model, config.num_layers
        self.max_seq_len, self.num_layers = config.max_seq_len, L
        self.num_heads, self.head_dim = config.num_heads, d // config.num_heads
        self.vocab_size = V = config.vocab_size
        V_pad = padded_vocab_size(V, config.pad_vocab_multiple)
        self.vocab_padding_params = (V_pad - V) * d
        self.tok_emb = nn.Embedding(V_pad, d)
        self.emb_scale = math.sqrt(d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(L))
        self.norm = RMSNorm(d, eps=None)  # exp7: nn.RMSNorm(d_model), default eps
        self.out_drop = nn.Dropout(config.dropout)  # exp7: dropout after the final norm
        cos, sin = rope_tables(self.head_dim, self.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if config.init == "torch_default":  # the modules keep PyTorch's init; only the embedding is set
                if name == "tok_emb.weight":
                    nn.init.normal_(p, mean=0.0, std=0.02)
            elif name == "tok_emb.weight":
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(d))
            elif name.endswith(("attn.out_proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))
            elif p.dim() >= 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.tok_emb.weight[V:].zero_()  # padding rows (none unless pad_vocab_multiple > 1)

    def new_kv_cache(self, batch_size: int, device=None, dtype=None, static: bool = True,
                     capturable: bool = False) -> KVCache | SlicedKVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_seq_len`` tokens:
        shared keys ``[num_layers, batch_size, 1, max_seq_len, head_dim]`` and per-head values
        ``[num_layers, batch_size, num_heads, max_seq_len, head_dim]`` (see the class
        docstring); the static :class:`KVCache` (default) or, ``static=False``, the sliced baseline.
        ``capturable=True``: the static cache's fixed-shape mode, for a compiled / CUDA-graph
        decode step (see :class:`KVCache`)."""
        device = device or self.tok_emb.weight.device
        dtype = dtype or self.tok_emb.weight.dtype
        kw = {"capturable": capturable} if static else {}
        cls = KVCache if static else SlicedKVCache
        return cls(self.num_layers, batch_size, self.num_heads, self.max_seq_len, self.head_dim, self.head_dim,
                   device, dtype, k_heads=1, **kw)

    def forward(self, idx: torch.Tensor, kv_cache: AnyKVCache | None = None,
                targets: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        check_positions(idx, kv_cache, self.max_seq_len)
        out = self.step(idx, kv_cache, targets, logits_to_keep)
        if kv_cache is not None:
            kv_cache.advance(idx.size(1))
        return out

    def step(self, idx: torch.Tensor, kv_cache: AnyKVCache | None = None,
             targets: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        """:meth:`forward` without the host-side checks and ``length`` count (device only;
        with the static cache a decode step can be captured in a CUDA graph; see
        :meth:`tui_lab.models.gpt.GPT.step`). RoPE rows are gathered at the cache's device positions."""
        T = idx.size(1)
        if kv_cache is None:
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        else:
            pos = kv_cache.positions(T)
            cos, sin = self.rope_cos[pos], self.rope_sin[pos]
        x = self.drop(self.tok_emb(idx) * self.emb_scale)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, kv_cache, i)
        if kv_cache is not None:
            kv_cache.commit(T)
        return output_head(self.out_drop(self.norm(x)), self.tok_emb.weight, None, self.vocab_size, targets,
                           logits_to_keep)

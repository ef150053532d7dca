"""The seeds' ``LanguageModel``: a GPT-2-style decoder (exp1-exp6).

Token embedding + learned positional embedding, ``num_layers`` **pre-norm** blocks
(``x + attn(ln_1(x))``, then ``x + ffn(ln_2(x))``, as GPT-2) of multi-head causal
self-attention (q, k, v and out projections ``d × d`` with bias — the parameter count
of ``nn.MultiheadAttention``) and a feed-forward (``model.activation``: GELU by default) ``d → d_ff → d`` with bias; a final
LayerNorm; the output projection is tied to the token embedding, plus an output bias
of ``vocab_size``.

Two layouts of the same parameters (``model.dropout_layout``, ``model.init``):

* ``"seed"`` / ``"torch_default"`` — the seed scripts' ``LanguageModel`` (exp1-exp6): dropout
  on the attention weights, on the attention output, inside the FFN after the activation,
  after its second linear and **again** on the FFN branch at block level (so four ``nn.Dropout``
  calls per block plus the attention weights), none on the embeddings; PyTorch's default
  initialisation (``nn.Embedding`` N(0, 1) — tied to the head, so the loss at init is far
  above ln V —, ``nn.Linear`` Kaiming-uniform weights and uniform biases in ±1/sqrt(fan_in),
  LayerNorm ones / zeros, the output bias uniform in ±1/sqrt(d_model) as ``nn.Linear(d, V)``'s).
  :mod:`.seed_format` maps the seed scripts' state-dict keys onto this module's.
* ``"gpt2"`` / ``"gpt2"`` — GPT-2 / nanoGPT: dropout on the embeddings, the attention weights,
  the attention output and the FFN output; init N(0, 0.02), biases zero, residual projections
  N(0, 0.02/sqrt(2·num_layers)); loss at init ≈ ln V.

Sources: GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask
Learners"), Transformer attention (Vaswani et al. 2017, arXiv 1706.03762), and the
layout of nanoGPT's ``model.py`` (Karpathy).

Parameters (V vocab, T max_seq_len, d d_model, L layers):
``V·d + T·d + L·(4(d²+d) + (2·d·d_ff + d_ff + d) + 4d) + 2d + V`` — 869,153 for exp1,
7,342,033 for exp3, 63,873,617 for exp6 (the seed logs' counts).
"""

from __future__ import annotations

import math
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config.schema import ModelConfig
from .kv_cache import AnyKVCache, KVCache, SlicedKVCache, attend
from .layers import check_positions, output_head, padded_vocab_size


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``x [B, T, d]`` → ``[B, T, d]``.

    Attention itself is ``F.scaled_dot_product_attention`` (see :func:`.kv_cache.attend`
    for the masks with a cache); ``dropout`` applies to the attention weights (training
    only) and to the output (residual dropout).
    """

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

    def forward(self, x: torch.Tensor, cache: AnyKVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (proj(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, T, hd]
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        y = attend(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        return self.resid_dropout(self.out_proj(y.transpose(1, 2).reshape(B, T, C)))


ACTIVATIONS = {
    "relu": F.relu,  # the seed scripts' LanguageModel
    "gelu": F.gelu,  # exact (erf) GELU, Hendrycks & Gimpel 2016, arXiv 1606.08415
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's approximation ("gelu_new")
}
"""The feed-forward activations of the ``gpt`` family, by ``model.activation``."""


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + ffn(ln_2(x))``.

    ``dropout_layout = "gpt2"``: ``ffn = drop(ff_out(act(ff_in(·))))``; ``"seed"``:
    ``ffn = drop(drop(ff_out(drop(act(ff_in(·))))))`` — the seed FFN's dropout after ReLU and
    after ``linear2``, then the block's own dropout on the branch (``ff_act_dropout``,
    ``ff_dropout``, ``ff_block_dropout``; the two extra ones are ``nn.Identity`` in ``gpt2``).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d_model, p = cfg.d_model, cfg.dropout
        self.ln_1 = nn.LayerNorm(d_model, eps=cfg.layer_norm_eps)
        self.attn = CausalSelfAttention(d_model, cfg.num_heads, p)
        self.ln_2 = nn.LayerNorm(d_model, eps=cfg.layer_norm_eps)
        self.ff_in = nn.Linear(d_model, cfg.d_ff)
        self.ff_out = nn.Linear(cfg.d_ff, d_model)
        seed = cfg.dropout_layout == "seed"
        self.ff_act_dropout = nn.Dropout(p) if seed else nn.Identity()
        self.ff_dropout = nn.Dropout(p)
        self.ff_block_dropout = nn.Dropout(p) if seed else nn.Identity()
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x: torch.Tensor, cache: AnyKVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        h = self.ff_out(self.ff_act_dropout(self.act(self.ff_in(self.ln_2(x)))))
        return x + self.ff_block_dropout(self.ff_dropout(h))


class GPT(nn.Module):
    """GPT-2-style language model (the seeds' ``LanguageModel`` with ``activation = "relu"``,
    ``dropout_layout = "seed"``, ``init = "torch_default"``).

    Args:
        config: the validated ``model`` table (:class:`~tui_lab.config.schema.ModelConfig`);
            kept as ``self.config``. Use :func:`tui_lab.models.build_model` rather than this class.

    ``forward(idx: LongTensor[B, T], kv_cache=None) -> FloatTensor[B, T, vocab_size]``
    (unnormalised next-token logits). Without a cache the tokens sit at positions
    ``0 … T-1`` with full causal attention; with a :class:`KVCache` they sit at
    ``kv_cache.length …``, their keys/values are written there and ``kv_cache.length``
    grows by T. :meth:`step` is the device-only part (what a CUDA graph captures).
    ``logits_to_keep=n`` (n > 0): logits of the last n positions only, ``[B, n, vocab_size]``
    (a prompt's prefill needs one; the name is transformers'). ``forward(idx,
    targets=LongTensor[B, T])`` returns the mean cross-entropy instead
    (float32 scalar, nats/token) without materialising the logits
    (:func:`~tui_lab.models.loss.linear_cross_entropy`).

    ``pad_vocab_multiple`` > 1 rounds the embedding's rows up (50,257 → 50,304 for 64);
    the padding rows start at zero, never receive a gradient, are cut from the logits and
    are left out of :func:`~tui_lab.models.count_parameters`.

    Init (``config.init``): ``"gpt2"`` as GPT-2 / nanoGPT — weights N(0, 0.02), biases zero,
    the two residual output projections per block N(0, 0.02/sqrt(2·num_layers)), loss at
    init ≈ ln(vocab_size); ``"torch_default"`` as the seed scripts — every module keeps
    PyTorch's own initialisation and the output bias is uniform in ±1/sqrt(d_model).
    Dropout placement: ``config.dropout_layout`` (module docstring).

    Raises:
        ValueError: ``idx`` not ``[B, T]``, a cache of another batch size, or positions
            beyond ``max_seq_len``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        V, T, d = config.vocab_size, config.max_seq_len, config.d_model
        L, h, p = config.num_layers, config.num_heads, config.dropout
        self.max_seq_len = T
        self.num_layers, self.num_heads, self.head_dim = L, h, d // h
        self.vocab_size = V
        V_pad = padded_vocab_size(V, config.pad_vocab_multiple)
        self.vocab_padding_params = (V_pad - V) * (d + 1)  # embedding rows + output bias entries
        self.tok_emb = nn.Embedding(V_pad, d)
        self.pos_emb = nn.Embedding(T, d)
        self.drop = nn.Dropout(p) if config.dropout_layout == "gpt2" else nn.Identity()  # seed: none on embeddings
        self.blocks = nn.ModuleList(Block(config) for _ in range(L))
        self.ln_f = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.out_bias = nn.Parameter(torch.zeros(V_pad))  # the head's weight is tok_emb.weight (tied)
        if config.init == "gpt2":
            self.apply(self._init)
            for name, param in self.named_parameters():
                if name.endswith(("attn.out_proj.weight", "ff_out.weight")):  # residual projections
                    nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * L))
        else:  # torch_default: the modules were built with PyTorch's init; the head bias as nn.Linear(d, V)'s
            nn.init.uniform_(self.out_bias, -1 / math.sqrt(d), 1 / math.sqrt(d))
        with torch.no_grad():
            self.tok_emb.weight[V:].zero_()  # padding rows (none unless pad_vocab_multiple > 1)
            self.out_bias[V:].zero_()

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_kv_cache(self, batch_size: int, device=None, dtype=None, static: bool = True,
                     capturable: bool = False) -> KVCache | SlicedKVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_seq_len`` tokens.

        Keys and values ``[num_layers, batch_size, num_heads, max_seq_len, head_dim]``,
        preallocated on ``device`` in ``dtype`` (default: the model's): the static
        :class:`KVCache` (default), or with ``static=False`` the sliced baseline.
        ``capturable=True``: the static cache's fixed-shape mode, for a compiled / CUDA-graph
        decode step (see :class:`KVCache`).
        """
        device = device or self.tok_emb.weight.device
        dtype = dtype or self.tok_emb.weight.dtype
        kw = {"capturable": capturable} if static else {}
        cls = KVCache if static else SlicedKVCache
        return cls(self.num_layers, batch_size, self.num_heads, self.max_seq_len, self.head_dim,
                   self.head_dim, device, dtype, **kw)

    def forward(self, idx: torch.Tensor, kv_cache: AnyKVCache | None = None,
                targets: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        check_positions(idx, kv_cache, self.max_seq_len)
        out = self.step(idx, kv_cache, targets, logits_to_keep)
        if kv_cache is not None:
            kv_cache.advance(idx.size(1))
        return out

    def step(self, idx: torch.Tensor, kv_cache: AnyKVCache | None = None,
             targets: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        """:meth:`forward` without the host-side checks and the host ``length`` count: with
        the static :class:`KVCache` every operation stays on the device and every shape
        depends only on ``idx``'s, so a decode step (``idx [B, 1]``) can be captured in a
        CUDA graph. The caller keeps positions within ``max_seq_len``."""
        T = idx.size(1)
        pos = kv_cache.positions(T) if kv_cache is not None else torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache, i)
        if kv_cache is not None:
            kv_cache.commit(T)
        return output_head(self.ln_f(x), self.tok_emb.weight, self.out_bias, self.vocab_size, targets, logits_to_keep)

"""Fused linear + cross-entropy: the output projection and the loss in row chunks.

A language model's last step, ``logits = h · Wᵀ + b`` followed by cross-entropy, holds a
``[B·T, V]`` float32 logits tensor — 823 MB for one exp3 batch (8 × 512 tokens, V = 50,257),
and as much again for its gradient. :func:`linear_cross_entropy` computes the same mean
loss and the same gradients a chunk of rows at a time, so at most ``[chunk_rows, V]`` logits
exist at once; the gradients of ``h``, ``W`` and ``b`` are computed during the forward
pass (the loss is the graph's end, so its upstream gradient is a scalar) and only scaled
in the backward.

Sources: the approach of Liger-Kernel's ``FusedLinearCrossEntropy`` (LinkedIn, Hsu et al.
2024, arXiv 2410.10989) and Cut Cross-Entropy (Wijmans et al. 2024, arXiv 2411.09009),
written here in plain PyTorch so that it runs on CPUs and every GPU; the softmax
cross-entropy gradient ``softmax(z) − onehot(y)`` is the textbook one.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK_ELEMENTS = 1 << 25
"""Logits per chunk (rows × V): 32 Mi floats = 128 MiB in float32, 668 rows at V = 50,257."""

EXP_FLOOR = -87.0
"""Shifted logits ``z − max(z)`` are raised to this before ``exp``. ``exp(−87.3)`` is float32's
smallest normal number, so below the floor ``exp`` gives a denormal or 0, which cannot change a
softmax denominator that is ≥ 1 (the max term) nor a probability by more than 1.2e-38. What it
does change is speed: PyTorch's vectorised CPU ``exp`` leaves its fast path for such inputs —
16–20 ns per element instead of 1.4–1.8 ns on a Zen 4 core — and models initialised as the seeds
are (``nn.Embedding`` N(0, 1) tied to the head) have logits spread over hundreds of nats, so
most of a chunk sat below it (a third of an exp3 training step on the CPU before the floor)."""


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                vocab_size: int, chunk_rows: int, compute_dtype: torch.dtype) -> torch.Tensor:
        n = h.size(0)
        # the whole (padded) weight: a vocabulary padded to a multiple of 64 keeps the matmul
        # aligned; the padding columns are masked to -inf, so they get probability 0
        wc = weight.to(compute_dtype)  # one cast for every chunk (bf16 under autocast)
        bc = bias.to(compute_dtype) if bias is not None else None
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros_like(weight, dtype=torch.float32)
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            for start in range(0, n, chunk_rows):
                hc = h[start : start + chunk_rows].to(compute_dtype)
                tc = targets[start : start + chunk_rows]
                z = (hc @ wc.t() if bc is None else torch.addmm(bc, hc, wc.t())).float()  # [rows, V_padded]
                if vocab_size < z.size(1):
                    z[:, vocab_size:] = float("-inf")
                target_z = z.gather(1, tc[:, None]).squeeze(1)  # [rows]
                top = z.amax(dim=-1, keepdim=True)  # [rows, 1], for a stable exp
                g = z.sub_(top).clamp_min_(EXP_FLOOR).exp_()  # exp(z - max), in place of the logits
                if vocab_size < g.size(1):
                    g[:, vocab_size:] = 0.0  # padding: probability exactly 0 (the floor made it 1e-38)
                denom = g.sum(dim=-1)  # [rows]
                total += (denom.log() + top.squeeze(1) - target_z).sum()  # logsumexp(z) - z[target]
                g.mul_((1.0 / (denom * n))[:, None])  # softmax / n
                g[torch.arange(g.size(0), device=g.device), tc] -= 1.0 / n  # d(mean loss)/dz
                g = g.to(compute_dtype)
                grad_h[start : start + chunk_rows] = g @ wc
                grad_w += (g.t() @ hc).float()
                if grad_b is not None:
                    grad_b += g.float().sum(0)
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype), grad_b.to(bias.dtype) if grad_b is not None else None)
        return total / n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        scale = grad_out.to(grad_h.dtype)
        return (grad_h * scale, grad_w * grad_out.to(grad_w.dtype),
                grad_b * grad_out.to(grad_b.dtype) if grad_b is not None else None, None, None, None, None)


@torch.compiler.disable  # a Python loop over chunks: run eagerly inside a compiled model
def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                         vocab_size: int | None = None, chunk_rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``h · weight[:vocab_size]ᵀ + bias[:vocab_size]`` against ``targets``.

    Equals ``F.cross_entropy(F.linear(h, weight, bias)[..., :vocab_size].float(), targets)``
    and its gradients up to float rounding, without materialising the logits.

    Args:
        h: hidden states ``[..., d_model]`` (e.g. ``[B, T, d]``).
        weight: output projection ``[V_padded, d_model]`` (the tied token embedding).
        bias: ``[V_padded]`` or None.
        targets: token ids ``[...]`` (h's leading shape), each in ``[0, vocab_size)``.
        vocab_size: real vocabulary size; rows of ``weight`` past it (padding) take part in
            the matmul but their logits are masked to -inf, so they never change the loss
            and get a zero gradient. Default: ``weight.size(0)``.
        chunk_rows: rows of ``h`` per chunk; default keeps a chunk's logits near
            :data:`DEFAULT_CHUNK_ELEMENTS`.
    Returns:
        the mean loss in nats/token, a float32 scalar. Under ``torch.autocast`` the matmuls
        run in the autocast dtype and the log-softmax in float32.
    Raises:
        ValueError: shapes that do not fit together.
    """
    d = h.size(-1)
    v_pad = weight.size(0)
    vocab_size = v_pad if vocab_size is None else vocab_size
    if weight.dim() != 2 or weight.size(1) != d or not 0 < vocab_size <= v_pad:
        raise ValueError(f"weight {tuple(weight.shape)} does not fit hidden size {d} and vocab_size {vocab_size}")
    if h.shape[:-1] != targets.shape:
        raise ValueError(f"targets {tuple(targets.shape)} do not match hidden states {tuple(h.shape)}")
    if bias is not None and bias.shape != (v_pad,):
        raise ValueError(f"bias {tuple(bias.shape)} does not match weight {tuple(weight.shape)}")
    h2, t = h.reshape(-1, d), targets.reshape(-1)
    rows = chunk_rows or max(1, DEFAULT_CHUNK_ELEMENTS // vocab_size)
    dev = h.device.type
    compute = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
    return _LinearCrossEntropy.apply(h2, weight, bias, t, vocab_size, rows, compute)

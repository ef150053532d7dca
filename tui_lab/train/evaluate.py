"""Held-out evaluation: mean NLL over every target token, perplexity, next-token accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..runs.metrics import perplexity


@dataclass
class EvalResult:
    """``val_loss``: mean NLL in nats per token over ``n_tokens`` target tokens;
    ``val_ppl = exp(val_loss)``; ``val_acc``: fraction of targets that were the argmax;
    ``nll_sum``: total NLL in nats (for word-level perplexity = exp(nll_sum / n_words))."""

    val_loss: float
    val_ppl: float
    val_acc: float
    n_tokens: int
    nll_sum: float


def eval_token_count(n_ids: int, max_tokens: int | None = None) -> int:
    """How many target tokens :func:`evaluate` scores on a stream of ``n_ids`` tokens."""
    n = n_ids if max_tokens is None else min(n_ids, max_tokens + 1)
    return max(n - 1, 0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, ids: np.ndarray, seq_len: int, batch_size: int,
             device: torch.device | str, max_tokens: int | None = None,
             autocast_dtype: torch.dtype | None = None,
             progress: Callable[[int], None] | None = None) -> EvalResult:
    """Evaluate ``model`` on the token stream ``ids`` (1-D), in non-overlapping windows.

    Every target token is counted exactly once (the final partial window too) and the
    loss is ``sum(NLL) / count`` — never a mean of per-batch means, never padding.

    Args:
        ids: 1-D token ids of the held-out split; only the first ``max_tokens + 1`` are used
            when ``max_tokens`` is set.
        seq_len: context length T of each window.
        progress: called after each batch with the target tokens scored so far (of
            :func:`eval_token_count`); no device synchronisation.
    Raises:
        ValueError: fewer than 2 tokens to evaluate.
    """
    n = len(ids) if max_tokens is None else min(len(ids), max_tokens + 1)
    if n < 2:
        raise ValueError("evaluation needs at least 2 tokens")
    was_training = model.training
    model.eval()
    device = torch.device(device)
    starts = list(range(0, n - 1, seq_len))
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    full = [s for s in starts if s + seq_len + 1 <= n]
    tail = [s for s in starts if s + seq_len + 1 > n]

    def run(chunk: torch.Tensor) -> None:
        nonlocal nll_sum, correct, count
        chunk = chunk.to(device, non_blocking=True)
        x, y = chunk[:, :-1], chunk[:, 1:]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
        logits = logits.float()
        nll_sum += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").double()
        correct += (logits.argmax(-1) == y).sum()
        count += y.numel()
        if progress is not None:
            progress(count)

    offsets = np.arange(seq_len + 1, dtype=np.int64)
    for i in range(0, len(full), batch_size):
        s = np.asarray(full[i : i + batch_size], dtype=np.int64)
        run(torch.from_numpy(np.asarray(ids[s[:, None] + offsets[None, :]], dtype=np.int64)))
    for s in tail:
        run(torch.from_numpy(np.asarray(ids[s:n], dtype=np.int64))[None, :])
    model.train(was_training)
    total = float(nll_sum.item())
    loss = total / count
    return EvalResult(val_loss=loss, val_ppl=perplexity(loss), val_acc=int(correct.item()) / count,
                      n_tokens=count, nll_sum=total)

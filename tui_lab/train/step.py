"""One optimizer step: gradient accumulation over micro-batches, clipping, AdamW update."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from .distributed import DistContext
from .sampler import WindowSampler

LossHook = Callable[[int, torch.Tensor], torch.Tensor]
"""``hook(step, loss) -> loss``: called on each micro-batch loss of optimizer step ``step``
(1-based: the step being computed). Tests pass one to inject faults (a NaN loss) or to
stop a run at an exact step; production code passes none."""


@dataclass
class StepResult:
    """``loss_sum``: sum of the micro-batch losses (0-d tensor on the device, nats/token);
    ``n_micro``: how many; ``epoch_ended``: the sampler finished an epoch in this step."""

    loss_sum: torch.Tensor
    n_micro: int
    epoch_ended: bool


def micro_batch_loss(train_model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fused: bool) -> torch.Tensor:
    """Mean next-token cross-entropy of ``x`` → ``y`` (LongTensor[B, T] each).

    ``fused``: the model computes it in row chunks (no [B, T, V] logits, tui_lab.models.loss);
    else full logits, then ``F.cross_entropy`` in float32."""
    if fused:
        return train_model(x, targets=y)
    logits = train_model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


def train_step(train_model: torch.nn.Module, model: torch.nn.Module, opt: torch.optim.Optimizer,
               sampler: WindowSampler, cfg: TrainConfig, ctx: DistContext, device: torch.device,
               autocast: torch.dtype | None, step: int, loss_hook: LossHook | None = None) -> StepResult:
    """Forward + backward on ``cfg.grad_accum_steps`` micro-batches (the sampler's
    per-process batch), clip the gradient norm to ``cfg.grad_clip`` (0: off), one optimizer step.

    ``train_model`` may be the DDP / compiled wrapper of ``model``; under DDP gradients are
    all-reduced on the last micro-batch only (``no_sync`` before it). ``step`` is the
    1-based number of the step computed (for ``loss_hook``).
    """
    loss_sum = torch.zeros((), device=device)
    epoch_ended = False
    for micro in range(cfg.grad_accum_steps):
        x, y, ended = sampler.next_batch()
        epoch_ended |= ended
        if device.type == "cuda":  # page-locked copies let the transfer overlap compute
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        last_micro = micro == cfg.grad_accum_steps - 1
        sync = train_model.no_sync() if ctx.enabled and not last_micro else contextlib.nullcontext()
        with sync:
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                loss = micro_batch_loss(train_model, x, y, cfg.fused_cross_entropy)
            if loss_hook is not None:
                loss = loss_hook(step, loss)
            (loss / cfg.grad_accum_steps).backward()
        loss_sum += loss.detach()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return StepResult(loss_sum, cfg.grad_accum_steps, epoch_ended)

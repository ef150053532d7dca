"""The optimizer and the mixed-precision choice of a training run (one small function each)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019) with ``cfg.lr`` and ``cfg.betas``; weight decay on
    matrices only, not on biases, norms or other 1-D parameters (as GPT-2 / nanoGPT's
    ``configure_optimizers``). The fused CUDA kernel on CUDA."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": tuple(cfg.betas)}
    if device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the schedule is computed per step)."""
    for group in opt.param_groups:
        group["lr"] = lr


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the forward passes: bfloat16 on CUDA, None (float32) elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else None


def enable_tf32(device: torch.device) -> None:
    """TF32 matmuls and convolutions on CUDA (float32 parameters, faster tensor-core math)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

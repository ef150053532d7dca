"""The optimizer and the mixed-precision choice of a training run (one small function each)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019) with ``cfg.lr`` and ``cfg.betas``. ``train.decay_all =
    false``: weight decay on matrices only, not on biases, norms or other 1-D parameters (as
    GPT-2 / nanoGPT's ``configure_optimizers``); ``true``: one group, decay on every parameter
    (the seed scripts' plain ``AdamW(model.parameters(), weight_decay=0.1)``). The fused CUDA
    kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_all:
        groups = [{"params": params, "weight_decay": cfg.weight_decay}]
    else:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": tuple(cfg.betas)}
    if device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the schedule is computed per step)."""
    for group in opt.param_groups:
        group["lr"] = lr


def autocast_dtype(device_type: str, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on a device type: ``torch.bfloat16`` for
    "bf16" on CUDA, else None (no autocast: fp32 on the CPU, on MPS and with "fp32")."""
    return torch.bfloat16 if precision == "bf16" and device_type == "cuda" else None


def enable_tf32(device: torch.device, precision: str = "bf16") -> None:
    """On CUDA: TF32 matmuls with ``train.precision = "bf16"``; "fp32" keeps PyTorch's default,
    full-fp32 matmuls (the seed scripts' numerics). cuDNN convolutions may use TF32 either way."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "bf16"
        torch.backends.cudnn.allow_tf32 = True

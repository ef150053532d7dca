"""Learning-rate schedules, computed from the step alone (so resume needs no scheduler state)."""

from __future__ import annotations

import math

from ..config import TrainConfig


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    ``constant``: ``lr`` after a linear warm-up of ``warmup_steps``. ``cosine``: linear
    warm-up, then cosine decay from ``lr`` to ``lr * min_lr_ratio`` at ``total_steps``
    (SGDR, Loshchilov & Hutter 2017, without restarts; as in nanoGPT's ``get_lr``).
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    min_lr = cfg.lr * cfg.min_lr_ratio
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)

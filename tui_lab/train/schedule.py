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


def evaluations_after(step: int, total_steps: int, eval_every: int, steps_per_epoch: int | None = None) -> int:
    """How many evaluations a run still makes after optimizer step ``step`` (the loop's rule:
    every ``eval_every`` steps, at each epoch end, and at the last step; estimates the
    epoch ends as multiples of ``steps_per_epoch``). For the CLI's time estimate."""
    points = set()
    if eval_every:
        points.update(range((step // eval_every + 1) * eval_every, total_steps + 1, eval_every))
    if steps_per_epoch:
        points.update(range((step // steps_per_epoch + 1) * steps_per_epoch, total_steps + 1, steps_per_epoch))
    if total_steps > step:
        points.add(total_steps)
    return len(points)

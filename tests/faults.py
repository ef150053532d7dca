"""Fault injection for tests, passed into the trainer (production code reads no fault setting).

In-process tests give :class:`~tui_lab.train.loop.Trainer` a ``loss_hook`` from here;
subprocess tests run ``tests/fault_entry.py``, which wraps the real CLI with one.
"""

from __future__ import annotations

from typing import Callable


def nan_at(step: int) -> Callable:
    """A loss hook that makes the loss of optimizer step ``step`` (1-based) NaN."""
    def hook(s: int, loss):
        return loss * float("nan") if s == step else loss
    return hook


def stop_after(trainer, step: int) -> Callable:
    """A loss hook that asks ``trainer`` to stop once step ``step`` is done (as SIGINT would)."""
    def hook(s: int, loss):
        if s == step:
            trainer.stop_requested = True
        return loss
    return hook

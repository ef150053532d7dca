"""Resuming a run: which folders can be resumed, and what ``last.state.pt`` holds.

The training state is plain tensors and numbers (``torch.load(weights_only=True)``):
``optimizer``, ``sampler`` (epoch, batch position), ``rng_cpu`` / ``rng_cuda``,
``world_size``, ``progress`` (:class:`~tui_lab.train.progress.Progress`) and
``loss_window`` (sum and count of the training losses since the last log line, so the
first logged loss after a resume equals the uninterrupted run's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import Experiment
from ..models.checkpoint import read_checkpoint
from ..runs.store import RunDir
from .distributed import DistContext
from .errors import TrainingError
from .log import LossWindow
from .progress import Progress
from .sampler import WindowSampler
from .setup import experiment_of_run
from .state import load_train_state


def open_resumable(path: Path, experiment: str, overrides: list[str] | None = None) -> tuple[RunDir, Experiment]:
    """The run folder ``path`` and its saved experiment, checked for ``--resume``.

    Raises:
        TrainingError: not a run folder, no training state yet, a run of another experiment,
            or ``--set`` overrides given (a resumed run keeps its saved config).
    """
    run = RunDir(Path(path))
    if not run.exists():
        raise TrainingError(f"--resume {path}: not a run folder (no run.json / config.json)")
    if not run.can_resume():
        raise TrainingError(f"--resume {path}: no checkpoint to resume from yet (checkpoints/last.state.pt)")
    if run.experiment != experiment:
        raise TrainingError(f"--resume {path}: that run is of experiment '{run.experiment}', not '{experiment}'")
    if overrides:
        raise TrainingError("--resume continues a run with its saved config: --set is not allowed with it")
    return run, experiment_of_run(run)


def training_state(opt: torch.optim.Optimizer, sampler: WindowSampler, progress: Progress, window: LossWindow,
                   ctx: DistContext, device: torch.device) -> dict[str, Any]:
    """What ``last.state.pt`` holds (see the module docstring)."""
    return {
        "optimizer": opt.state_dict(),
        "sampler": sampler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "world_size": ctx.world_size,
        "progress": progress.state_dict(),
        "loss_window": window.state_dict(),
    }


def restore(run: RunDir, model: torch.nn.Module, opt: torch.optim.Optimizer, sampler: WindowSampler,
            progress: Progress, window: LossWindow, ctx: DistContext, device: torch.device) -> None:
    """Load ``run``'s last weights and training state into the given objects.

    Raises:
        CheckpointError: the files are missing or unreadable.
        TrainingError: the run was trained with another number of processes, or on other data.
    """
    state = load_train_state(run.train_state_path)
    if state.get("world_size", 1) != ctx.world_size:
        raise TrainingError(f"{run.path}: the run was trained with {state.get('world_size', 1)} processes; "
                            f"resume it with --nproc-per-node {state.get('world_size', 1)}")
    weights, _ = read_checkpoint(run.last_weights_path)
    model.load_state_dict(weights)
    opt.load_state_dict(state["optimizer"])
    try:
        sampler.load_state_dict(state["sampler"])
    except ValueError as exc:
        raise TrainingError(f"{run.path}: {exc}") from None
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    progress.load_state_dict(state["progress"])
    window.load_state_dict(state.get("loss_window"))

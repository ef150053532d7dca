"""Writing a run's checkpoints: ``best`` / ``last`` weights and the training state beside ``last``.

Every file is written atomically (temp file, fsync, rename), so a failed write — a full
disk, a size limit — leaves the previous checkpoint intact. Write errors become
:class:`~tui_lab.train.errors.RunFailed` with a message saying what to do.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import torch

from ..config import Experiment
from ..models.checkpoint import save_weights
from ..runs.store import RunDir
from .errors import RunFailed
from .state import save_train_state


def disk_error_text(exc: OSError) -> str:
    """A short reason for a failed write: 'the disk is full' for ENOSPC / EDQUOT."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"the disk is full ({exc.strerror})"
    return f"{exc.strerror or exc} (disk full?)"


def write_weights(exp: Experiment, run: RunDir, model: torch.nn.Module, path: Path, step: int,
                  val_loss: float | None) -> None:
    """Save ``model``'s weights with the metadata chat and resume need (experiment, data
    table with an absolute tokenizer path, step, val_loss, run id)."""
    data = exp.data.model_dump(mode="json")
    if data.get("tokenizer_path"):  # absolute, so chat finds it from any folder
        data["tokenizer_path"] = str(Path(data["tokenizer_path"]).expanduser().resolve())
    extra = {"experiment": exp.name, "data": data, "step": step, "val_loss": val_loss, "run_id": run.run_id}
    save_weights(path, model, exp.model, extra)


def save_best(exp: Experiment, run: RunDir, model: torch.nn.Module, step: int, val_loss: float) -> None:
    """``checkpoints/best.safetensors``.

    Raises:
        RunFailed: the write failed (the previous best is intact)."""
    try:
        write_weights(exp, run, model, run.best_weights_path, step, val_loss)
    except OSError as exc:
        raise RunFailed(f"checkpoint write failed at step {step} in {run.checkpoint_dir}: "
                        f"{disk_error_text(exc)}; the previous checkpoint is intact") from None


def save_last(exp: Experiment, run: RunDir, model: torch.nn.Module, step: int, state: dict[str, Any]) -> None:
    """``checkpoints/last.safetensors``, then ``last.state.pt`` (``state``: optimizer, sampler,
    RNG, progress, loss window — see :mod:`tui_lab.train.resume`).

    Weights first, then the state that points at them: a crash between the two leaves a
    state one evaluation older than the weights, never a state with no weights.

    Raises:
        RunFailed: a write failed (the previous checkpoint is intact)."""
    try:
        write_weights(exp, run, model, run.last_weights_path, step, None)
        save_train_state(run.train_state_path, state)
    except OSError as exc:
        raise RunFailed(f"checkpoint write failed at step {step} in {run.checkpoint_dir}: {disk_error_text(exc)}; "
                        f"the previous checkpoint is intact — free space, then --resume {run.path}") from None


class SpaceReserve:
    """A small file kept in the run folder while a run trains, deleted when a write fails:
    on a full disk it frees the room that the final ``run.json`` (status ``failed`` and the
    message) and the ``end`` event need."""

    def __init__(self, path: Path, size: int = 64 * 1024):
        self.path = Path(path)
        try:
            with open(self.path, "wb") as fh:
                fh.write(b"\0" * size)  # real bytes: tmpfs and most filesystems allocate on write
        except OSError:
            self.release()

    def release(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass

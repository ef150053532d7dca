"""Setting a run up: its folder, its data, its model, its step budget.

Each function does one job and raises :class:`~tui_lab.train.errors.TrainingError` with a
message naming the key to change when the experiment cannot be trained as given.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..atomic import atomic_write_json
from ..config import Experiment, TrainConfig, experiment_to_table
from ..config.load import experiment_of_table
from ..runs.store import RUN_FORMAT, RunDir, create_run
from .distributed import DistContext, local_main_first
from .errors import TrainingError
from .sampler import WindowSampler

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""Run ids become folder names: one path component of letters, digits, '_', '-', '.'; no '..'."""


def check_run_id(run_id: str) -> None:
    """Raises:
        TrainingError: ``run_id`` is not one safe path component (``../x``, ``a/b``, ``..``, empty)."""
    if not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise TrainingError(f"--run-id {run_id!r}: a run id is one folder name of 1-128 letters, digits, "
                            "'_', '-' or '.', starting with a letter or digit (no '/', no '..')")


def start_run(exp: Experiment, runs_dir: Path | str, run_id: str | None = None,
              sweep: dict[str, Any] | None = None) -> RunDir:
    """Create the run folder for a new run (through the run store) and save the resolved
    config (with the run's sweep record under ``sweep`` when it is part of a sweep, see
    :mod:`tui_lab.config.sweep`) and a ``starting`` ``run.json`` in it.

    Raises:
        TrainingError: ``run_id`` is not a safe folder name.
        FileExistsError: a run of that id exists already.
    """
    if run_id is not None:
        check_run_id(run_id)
    run = create_run(runs_dir, exp.name, run_id)
    atomic_write_json(run.config_path, {**experiment_to_table(exp), **({"sweep": sweep} if sweep else {})})
    atomic_write_json(run.run_path, {"format": RUN_FORMAT, "experiment": exp.name, "run_id": run.run_id,
                                     "status": "starting", "created_at": time.time(), **process_identity()})
    return run


def experiment_of_run(run: RunDir) -> Experiment:
    """The resolved experiment saved in ``run/config.json``.

    Raises:
        TrainingError: no readable config in the folder.
    """
    table = run.read_config()
    if not table:
        raise TrainingError(f"{run.path}: not a run folder (no readable {run.config_path.name})")
    return experiment_of_table(table, run.experiment, source=str(run.config_path))


@dataclass
class TrainData:
    """The token streams of a run: ``train_ids`` / ``val_ids`` 1-D arrays of token ids;
    ``val_words``: words in the whole validation split (word-level perplexity), or None when
    ``data.max_val_tokens`` cuts it."""

    tokenizer: Any
    train_ids: np.ndarray
    val_ids: np.ndarray
    val_words: int | None


def load_data(exp: Experiment, ctx: DistContext,
              token_progress: Callable[[int, int | None], None] | None = None) -> TrainData:
    """Load the tokenizer and both splits (tokenizing them into the cache the first time).

    Under DDP each node's local rank 0 tokenizes first; the other ranks then read its cache.

    Raises:
        TrainingError: the tokenizer has more tokens than ``model.vocab_size``.
        DataError: the data cannot be read.
    """
    from ..data import load_tokenizer, load_tokens

    d = exp.data
    tokenizer = load_tokenizer(d.tokenizer, d.tokenizer_path)
    if tokenizer.vocab_size > exp.model.vocab_size:
        raise TrainingError(f"experiment '{exp.name}': tokenizer '{d.tokenizer}' has {tokenizer.vocab_size} tokens "
                            f"but model.vocab_size is {exp.model.vocab_size}")
    with local_main_first(ctx):
        train = load_tokens(d, "train", tokenizer, progress=token_progress)
        val = load_tokens(d, "validation", tokenizer, progress=token_progress)
    return TrainData(tokenizer=tokenizer,
                     train_ids=train.ids[: d.max_train_tokens] if d.max_train_tokens else train.ids,
                     val_ids=val.ids[: d.max_val_tokens] if d.max_val_tokens else val.ids,
                     val_words=val.n_words if not d.max_val_tokens else None)


def check_batch(exp: Experiment, nproc: int) -> None:
    """Refuse, before a run folder exists, a ``train.global_batch_size`` that does not divide
    across ``nproc`` processes (× ``grad_accum_steps``). Under torchrun the trainer checks
    against the job's real world size instead.

    Raises:
        TrainingError: the message names the key, both numbers and ``--nproc-per-node``.
    """
    from .distributed import under_torchrun

    if under_torchrun():
        return
    try:
        exp.train.per_process_batch(nproc)
    except ValueError as exc:
        raise TrainingError(f"experiment '{exp.name}': {exc} (--nproc-per-node {nproc})") from None


def make_sampler(exp: Experiment, data: TrainData, ctx: DistContext) -> WindowSampler:
    """The training batch sampler of this rank.

    Raises:
        TrainingError: the training split holds fewer windows than one (global) batch, or the
            validation split fewer than 2 tokens.
    """
    if len(data.val_ids) < 2:
        raise TrainingError(f"experiment '{exp.name}': the validation split has {len(data.val_ids)} tokens; "
                            "evaluation needs at least 2 (raise data.max_val_tokens or use other data)")
    try:  # train.batch_size, or train.global_batch_size split over the processes (ValueError if it does not divide)
        return WindowSampler(data.train_ids, exp.seq_len, exp.train.per_process_batch(ctx.world_size),
                             exp.train.seed, ctx.rank, ctx.world_size)
    except ValueError as exc:
        raise TrainingError(f"experiment '{exp.name}': {exc}") from None


def build_model(exp: Experiment, device: torch.device, ctx: DistContext) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(model, train_model)``: the model on ``device`` (seeded with ``train.seed``), and
    what the loop calls — the same model, wrapped in DDP under torchrun and compiled when
    ``train.compile`` (checkpoints save the unwrapped ``model``, so their keys stay clean)."""
    from ..models import build_model as build

    torch.manual_seed(exp.train.seed)
    model = build(exp.model).to(device)
    train_model: torch.nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if exp.train.compile:
        train_model = torch.compile(train_model)
    return model, train_model


def step_budget(sampler: WindowSampler, cfg: TrainConfig) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)``: optimizer steps per pass over the training windows,
    and the run's length — ``max_steps`` or ``epochs × steps_per_epoch``, whichever is smaller."""
    steps_per_epoch = max(1, sampler.batches_per_epoch // cfg.grad_accum_steps)
    total = min(x for x in (cfg.max_steps, cfg.epochs and cfg.epochs * steps_per_epoch) if x)
    return steps_per_epoch, total


def process_identity() -> dict[str, Any]:
    """The ``run.json`` keys that identify this process to readers: pid, proc_start (its
    creation time, Unix s: ``run.json`` format 2), host."""
    from ..runs.process import create_time

    return {"pid": os.getpid(), "proc_start": create_time(), "host": socket.gethostname()}

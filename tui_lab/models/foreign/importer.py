"""``tui-lab import``: a foreign checkpoint → a tui-lab run folder marked ``imported``.

The folder has what a trained run has for chat and the result tables:
``checkpoints/best.safetensors`` (the converted weights + model config + the tokenizer to
use), ``config.json`` (the experiment's tables with the converted ``model`` table) and
``run.json`` with ``status = "imported"``, ``num_params``, ``epoch`` / ``best_epoch``,
``step`` / ``best_step`` where the file records them, ``best_val_loss`` (the file's
validation loss, nats/token, as its own code computed it) and ``best_val_ppl`` =
:func:`tui_lab.runs.metrics.perplexity` of it (the file's own perplexity figure is kept as
``source_val_ppl``), ``final_train_loss`` (the file's train loss), plus ``source`` and
``source_format``. An exp7 import's ``config.json`` holds only the model table: tui-lab's
exp7 data and train tables would misdescribe a file trained on exp7's own corpus. No ``metrics.jsonl``: the
file has no history. The folder appears whole or not at all (built beside, then renamed).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_json
from ...config.schema import NAME_RE
from ...runs.metrics import perplexity
from ...runs.store import IMPORTED, RunDir, new_run_id
from ..checkpoint import CheckpointError, load_model, save_weights


def _experiments(experiments_file: Path | None) -> dict[str, Any]:
    from ...config import ConfigError, load_experiments

    if experiments_file is None or not Path(experiments_file).is_file():
        return {}
    try:
        return dict(load_experiments(experiments_file).experiments)
    except ConfigError:
        return {}


def _default_name(meta: dict[str, Any], source: Path, exps: dict[str, Any], path: Path) -> str:
    cfg = meta["model_config"]
    fmt = meta.get("source_format")
    if fmt == "exp7":
        return "exp7"
    if fmt == "seed":
        keys = ("vocab_size", "max_seq_len", "d_model", "d_ff", "num_layers", "num_heads")
        same = [n for n, e in exps.items() if e.model.kind == "gpt" and all(getattr(e.model, k) == cfg[k] for k in keys)]
        if len(same) == 1:
            return same[0]
        if same:
            raise CheckpointError(f"{path}: experiments {', '.join(same)} all have this checkpoint's shape: "
                                  "give --experiment NAME")
        raise CheckpointError(f"{path}: no experiment has this checkpoint's shape: give --experiment NAME")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.name).strip("-.") or "imported"
    return name[:64]


def import_checkpoint(path: Path | str, runs_dir: Path | str, *, experiment: str | None = None,
                      output: Path | str | None = None, num_heads: int | None = None,
                      experiments_file: Path | None = None) -> RunDir:
    """Convert ``path`` (anything :func:`tui_lab.models.checkpoint.load_model` reads) into a
    run folder: ``output`` if given (it must not exist, or be empty), else
    ``runs_dir/<experiment>/<new run id>``. ``experiment`` defaults to the experiment of
    ``experiments_file`` with the checkpoint's shape (seeds), ``exp7``, or the folder name.

    Raises:
        CheckpointError: an unreadable checkpoint, an ambiguous or invalid experiment name,
            an ``output`` that is not empty.
        OSError: the folder could not be written (nothing is left half-written).
    """
    src = Path(path)
    if output is not None:
        output = Path(output)
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise CheckpointError(f"--output {output}: exists and is not empty")
    model, meta = load_model(src, "cpu", num_heads=num_heads, experiments_file=experiments_file)
    if "source_format" not in meta:
        raise CheckpointError(f"{src}: already a tui-lab checkpoint: nothing to import (chat with it directly)")
    exps = _experiments(experiments_file)
    if experiment:
        name = experiment
    elif output is not None:  # a run folder's experiment is its parent folder's name (RunDir.experiment)
        name = output.resolve().parent.name
    else:
        name = _default_name(meta, Path(meta.get("source", src)), exps, src)
    if not NAME_RE.match(name) or ".." in name:
        raise CheckpointError(f"--experiment {name!r}: 1-64 letters, digits, '_', '-' or '.' (a folder name)")
    final = output if output is not None else Path(runs_dir) / name / new_run_id()

    from .. import count_parameters

    model_cfg = dict(meta["model_config"])
    table: dict[str, Any] = {"name": name, "description": f"imported from {src}", "model": model_cfg}
    exp = exps.get(name)
    if exp is not None and meta.get("source_format") != "exp7":  # exp7 trained on its own corpus and tokenizer:
        # tui-lab's exp7 data / train tables would misdescribe the file, so they are left out
        full = exp.model_dump(mode="json")
        table = {**full, "description": f"{full.get('description', '')} (imported from {src})".strip(),
                 "model": {**model_cfg, "dropout": full["model"].get("dropout", 0.0)}}
    data = meta.get("data") if isinstance(meta.get("data"), dict) else None
    if isinstance(table.get("data"), dict) and (data is None or data.get("tokenizer") != "hf"):
        data = table["data"]  # the experiment's (it may name an offline tokenizer_path)
    extra: dict[str, Any] = {"experiment": name, "source": str(src), "source_format": meta["source_format"]}
    if data:
        extra["data"] = data
    for key in ("tokenizer_hint", "epoch", "step", "val_loss", "val_ppl", "notes"):
        if meta.get(key) is not None:
            extra[key] = meta[key]

    val_loss = meta.get("val_loss")
    info: dict[str, Any] = {
        "experiment": name, "status": IMPORTED, "started_at": time.time(), "ended_at": time.time(),
        "host": socket.gethostname(), "num_params": count_parameters(model), "source": str(src),
        "source_format": meta["source_format"], "message": "; ".join(meta.get("notes") or []) or None,
        "epoch": meta.get("epoch"), "best_epoch": meta.get("epoch"), "step": meta.get("step"),
        "best_step": meta.get("step"), "best_val_loss": val_loss,
        "best_val_ppl": perplexity(val_loss) if isinstance(val_loss, (int, float)) else None,
        "source_val_ppl": meta.get("val_ppl"), "final_train_loss": meta.get("train_loss"),
    }
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.importing-{os.getpid()}"
    try:
        run = RunDir(tmp)
        run.checkpoint_dir.mkdir(parents=True)
        save_weights(run.best_weights_path, model, model.config, extra=extra)
        atomic_write_json(run.config_path, table)
        info["run_id"] = final.name
        atomic_write_json(run.run_path, info)
        if final.exists():
            final.rmdir()  # empty (checked above)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunDir(final)

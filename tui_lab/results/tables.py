"""Result tables built from run folders: the runs table, a run's perplexity progression, and
a comparison of runs — the tables the seed logs wrote by hand. No torch here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs.store import RunDir, load_history, read_json


@dataclass(frozen=True)
class Column:
    """``key`` is also the JSON key (units in the name); ``kind``: int, float or str."""

    key: str
    header: str
    kind: str = "str"
    decimals: int = 2


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)


RUN_COLUMNS = [
    Column("experiment", "Experiment"),
    Column("run_id", "Run"),
    Column("dataset", "Dataset"),
    Column("train_tokens", "Train tokens", "int"),
    Column("num_params", "Params", "int"),
    Column("d_model", "d_model", "int"),
    Column("num_layers", "Layers", "int"),
    Column("num_heads", "Heads", "int"),
    Column("batch_size", "Batch", "int"),
    Column("epochs", "Epochs", "int"),
    Column("steps", "Steps", "int"),
    Column("tokens_seen", "Tokens seen", "int"),
    Column("wall_time_s", "Wall time (s)", "float", 0),
    Column("best_epoch", "Best epoch", "int"),
    Column("best_step", "Best step", "int"),
    Column("final_train_loss", "Final train loss", "float", 4),
    Column("best_val_loss", "Best val loss", "float", 4),
    Column("best_val_ppl", "Best val ppl", "float", 2),
    Column("best_val_word_ppl", "Word ppl", "float", 2),
    Column("chinchilla_ratio", "D/N", "float", 2),
    Column("tokens_per_s", "Tokens/s", "float", 0),
    Column("device", "Device"),
    Column("status", "Status"),
    Column("cost_usd", "Cost ($)", "float", 2),
    Column("git_commit", "Commit"),
]


def resolve_run(spec: str, runs_dir: Path) -> RunDir:
    """A run from a folder path, ``experiment/run_id`` or a bare run id under ``runs_dir``.

    Raises:
        LookupError: no such run (the message names what was looked for).
    """
    path = Path(spec)
    if (path / "run.json").is_file():
        return RunDir(path)
    if (Path(runs_dir) / spec / "run.json").is_file():
        return RunDir(Path(runs_dir) / spec)
    matches = sorted(Path(runs_dir).glob(f"*/{spec}/run.json")) if Path(runs_dir).is_dir() else []
    if len(matches) == 1:
        return RunDir(matches[0].parent)
    if len(matches) > 1:
        raise LookupError(f"run {spec!r} is ambiguous in {runs_dir}: give experiment/run_id")
    raise LookupError(f"run {spec!r}: no run folder with that path or id under {runs_dir}")


def _dataset(config: dict[str, Any]) -> str | None:
    data = config.get("data") or {}
    if data.get("path"):
        return Path(data["path"]).name
    if data.get("config"):
        return str(data["config"])
    return data.get("dataset")


def run_record(run: RunDir, price_per_gpu_hour: float = 0.0) -> dict[str, Any]:
    """Every column of the runs table for one run (None where unknown)."""
    info = run.read_run()
    config = read_json(run.config_path) or {}
    model, train = config.get("model") or {}, config.get("train") or {}
    events = load_history(run)
    trains = [e for e in events if e.get("event") == "train" and e.get("train_loss") is not None]
    evals = [e for e in events if e.get("event") == "eval"]
    best = min(evals, key=lambda e: e.get("val_loss", math.inf), default=None)
    tps = [e["tokens_per_s"] for e in trains if e.get("tokens_per_s")]
    wall = info.get("elapsed_s")
    if wall is None and events:
        wall = max((e.get("elapsed_s") or 0) for e in events)
    params = info.get("num_params")
    tokens_seen = info.get("tokens_seen")
    device = info.get("device_name") or info.get("device")
    cost = None
    if price_per_gpu_hour and wall and str(info.get("device", "")).startswith("cuda"):
        cost = wall / 3600 * price_per_gpu_hour * (info.get("world_size") or 1)
    return {
        "experiment": run.experiment,
        "run_id": run.run_id,
        "dataset": _dataset(config),
        "train_tokens": info.get("train_tokens"),
        "num_params": params,
        "d_model": model.get("d_model"),
        "num_layers": model.get("num_layers"),
        "num_heads": model.get("num_heads"),
        "batch_size": train.get("batch_size"),
        "epochs": info.get("epoch"),
        "steps": info.get("step"),
        "tokens_seen": tokens_seen,
        "wall_time_s": wall,
        "best_epoch": best.get("epoch") if best else None,
        "best_step": best.get("step") if best else None,
        "final_train_loss": trains[-1]["train_loss"] if trains else None,
        "best_val_loss": best.get("val_loss") if best else None,
        "best_val_ppl": best.get("val_ppl") if best else None,
        "best_val_word_ppl": best.get("val_word_ppl") if best else None,
        "chinchilla_ratio": tokens_seen / params if tokens_seen and params else None,
        "tokens_per_s": sum(tps) / len(tps) if tps else None,
        "device": device,
        "status": info.get("status"),
        "cost_usd": cost,
        "git_commit": (info.get("git_commit") or "")[:10] or None,
    }


def runs_table(runs: list[RunDir], price_per_gpu_hour: float = 0.0) -> Table:
    """One row per run, in start order (then run id): the seeds' comparative table."""
    records = [run_record(r, price_per_gpu_hour) for r in runs]
    started = {r.path: (r.read_run().get("started_at") or 0) for r in runs}
    order = sorted(range(len(runs)), key=lambda i: (started[runs[i].path], runs[i].experiment, runs[i].run_id))
    return Table("Runs", RUN_COLUMNS, [records[i] for i in order])


def progression_table(run: RunDir) -> Table:
    """Validation perplexity at each evaluation, with the change from the previous one."""
    rows = []
    prev = None
    for e in load_history(run):
        if e.get("event") != "eval":
            continue
        ppl = e.get("val_ppl")
        rows.append({"step": e.get("step"), "epoch": e.get("epoch"), "tokens_seen": e.get("tokens_seen"),
                     "val_loss": e.get("val_loss"), "val_ppl": ppl,
                     "delta_val_ppl": ppl - prev if prev is not None and ppl is not None else None})
        prev = ppl
    cols = [Column("step", "Step", "int"), Column("epoch", "Epoch", "int"), Column("tokens_seen", "Tokens seen", "int"),
            Column("val_loss", "Val loss", "float", 4), Column("val_ppl", "Val perplexity", "float", 2),
            Column("delta_val_ppl", "Change", "float", 2)]
    return Table(f"Perplexity progression: {run.experiment}/{run.run_id}", cols, rows)


COMPARE_KEYS = [("num_params", "Params", "int", 0), ("tokens_seen", "Tokens seen", "int", 0),
                ("best_val_loss", "Best val loss", "float", 4), ("best_val_ppl", "Best val ppl", "float", 2),
                ("wall_time_s", "Wall time (s)", "float", 0), ("tokens_per_s", "Tokens/s", "float", 0)]


def comparison_table(runs: list[RunDir], price_per_gpu_hour: float = 0.0) -> Table:
    """Runs side by side in the given order, each metric with the change from the previous
    run, absolute and in % (the seeds' "Exp N to N+1" findings)."""
    records = [run_record(r, price_per_gpu_hour) for r in runs]
    cols = [Column("run", "Run")]
    for key, header, kind, dec in COMPARE_KEYS:
        cols += [Column(key, header, kind, dec), Column(f"delta_{key}", "Δ", kind if kind == "float" else "int", dec),
                 Column(f"delta_{key}_pct", "Δ %", "float", 1)]
    rows = []
    for i, rec in enumerate(records):
        row: dict[str, Any] = {"run": f"{rec['experiment']}/{rec['run_id']}"}
        for key, *_ in COMPARE_KEYS:
            row[key] = rec[key]
            prev = records[i - 1][key] if i else None
            ok = isinstance(prev, (int, float)) and isinstance(rec[key], (int, float))
            row[f"delta_{key}"] = rec[key] - prev if ok else None
            row[f"delta_{key}_pct"] = (rec[key] - prev) / prev * 100 if ok and prev else None
        rows.append(row)
    return Table("Comparison", cols, rows)


def all_runs(runs_dir: Path) -> list[RunDir]:
    """Every run folder under ``runs_dir`` (with a run.json)."""
    root = Path(runs_dir)
    return [RunDir(p.parent) for p in sorted(root.glob("*/*/run.json"))] if root.is_dir() else []

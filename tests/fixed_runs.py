"""Fixed run folders for the report and seed-group tests, written with the run store's API
(``create_run``, ``atomic_write_json``, ``MetricsWriter``) the way the trainer writes them:
no training, the same bytes every time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tui_lab.atomic import atomic_write_json
from tui_lab.runs import MetricsWriter, RunDir, create_run

TINY_GPT = {"kind": "gpt", "vocab_size": 50257, "max_seq_len": 512, "d_model": 16, "num_heads": 2, "d_ff": 64,
            "num_layers": 2, "dropout": 0.3}
WT2_RAW = {"dataset": "Salesforce/wikitext", "config": "wikitext-2-raw-v1", "tokenizer": "gpt2", "join": "strip-lines"}


def make_run(root: Path, experiment: str, run_id: str, *, t0: float, evals: list[tuple[int, float]],
             tokens_per_s: list[float], model: dict | None = None, data: dict | None = None,
             train: dict | None = None, sweep: dict | None = None, num_params: int = 869_153,
             tokens_per_step: int = 4096, steps_per_epoch: int = 100, val_tokens: int = 242_643,
             train_tokens: int = 2_347_038, device: str = "cpu") -> RunDir:
    """A finished run: ``evals`` are (step, validation perplexity); ``tokens_per_s`` one value per
    train event (steps 10, 20, ...); run.json's training clock ``elapsed_s`` makes the run's
    tokens/s (tokens seen ÷ elapsed_s) their mean."""
    run = create_run(root, experiment, run_id)
    config: dict[str, Any] = {"name": experiment, "model": model or TINY_GPT, "data": data or WT2_RAW,
                              "train": {"batch_size": 8, "lr": 3e-4, "seed": 1337, **(train or {})}}
    if sweep is not None:
        config["sweep"] = sweep
    atomic_write_json(run.config_path, config)
    w = MetricsWriter(run.metrics_path)
    w.write("start", time=t0, step=0, total_steps=evals[-1][0], num_params=num_params, device=device,
            train_tokens=train_tokens, val_tokens=val_tokens)
    for i, tps in enumerate(tokens_per_s, 1):
        step = 10 * i
        w.write("train", time=t0 + step, step=step, epoch=step // steps_per_epoch, train_loss=round(7.0 - 0.01 * step, 4),
                lr=3e-4, tokens_seen=step * tokens_per_step, tokens_per_s=tps, elapsed_s=float(step), mem_mb=10.0)
    best = math.inf
    for step, ppl in evals:
        loss = round(math.log(ppl), 6)
        best = min(best, loss)
        w.write("eval", time=t0 + step + 0.5, step=step, epoch=step // steps_per_epoch, val_loss=loss, val_ppl=ppl,
                val_acc=0.1, val_tokens=val_tokens, val_word_ppl=None, is_best=loss <= best, best_val_loss=best,
                tokens_seen=step * tokens_per_step, elapsed_s=float(step))
    last = evals[-1][0]
    w.write("end", time=t0 + last + 1, status="finished", step=last, message=f"reached {last} steps", best_val_loss=best)
    w.close()
    atomic_write_json(run.run_path, {
        "experiment": experiment, "run_id": run_id, "status": "finished", "pid": None, "host": "lab",
        "device": device, "device_name": "CPU", "started_at": t0, "ended_at": t0 + last + 1, "attempts": 1,
        "num_params": num_params, "train_tokens": train_tokens, "val_tokens": val_tokens, "total_steps": last,
        "steps_per_epoch": steps_per_epoch, "tokens_per_step": tokens_per_step, "batch_size": 8, "world_size": 1,
        "step": last, "epoch": last // steps_per_epoch, "tokens_seen": last * tokens_per_step,
        "best_val_loss": best, "elapsed_s": round(last * tokens_per_step / (sum(tokens_per_s) / len(tokens_per_s)), 3),
        "wall_time_s": float(last + 1), "git_commit": "ab12" * 10,
    })
    return run

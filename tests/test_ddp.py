"""DistributedDataParallel through torchrun, on the CPU with gloo and 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui_lab.runs import RunDir, load_history

from tiny import tiny_toml



def train(cfg: Path, runs: Path, *extra: str, cache: Path | None = None) -> RunDir:
    env = {**os.environ, **({"TUI_LAB_CACHE_DIR": str(cache)} if cache else {})}
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir",
                        str(runs), "--device", "cpu", "--quiet", *extra], capture_output=True, text=True, timeout=600,
                       env=env)
    assert r.returncode == 0, r.stderr
    (path,) = list((runs / "tiny").iterdir())
    return RunDir(path)


def losses(run: RunDir, event: str, key: str) -> dict[int, float]:
    return {e["step"]: e[key] for e in load_history(run) if e["event"] == event}


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    cfg = tmp_path / "experiments.toml"
    cfg.write_text(tiny_toml(batch_size=8, max_steps=30))
    single = train(cfg, tmp_path / "single")
    cold = tmp_path / "cold-cache"  # rank 0 tokenizes, rank 1 waits for it and reads the cache
    ddp = train(cfg, tmp_path / "ddp", "--nproc-per-node", "2", "--set", "train.batch_size=4", cache=cold)
    assert sorted(p.suffix for p in cold.iterdir()) == [".bin", ".bin", ".json", ".json"]  # no temp files left
    info = json.loads(ddp.run_path.read_text())
    assert info["world_size"] == 2 and info["status"] == "finished"
    assert info["tokens_seen"] == json.loads(single.run_path.read_text())["tokens_seen"] == 30 * 8 * 64
    a, b = losses(single, "train", "train_loss"), losses(ddp, "train", "train_loss")
    assert sorted(a) == sorted(b) == [5, 10, 15, 20, 25, 30]
    for step in a:  # stated tolerance: 1e-4 relative (float reduction order differs across ranks)
        assert b[step] == pytest.approx(a[step], rel=1e-4), (step, a, b)
    va, vb = losses(single, "eval", "val_loss"), losses(ddp, "eval", "val_loss")
    assert vb[30] == pytest.approx(va[30], rel=1e-4)
    # only rank 0 wrote the run folder: one run, one metrics file, no duplicate events
    steps = [e["step"] for e in load_history(ddp) if e["event"] == "train"]
    assert steps == sorted(set(steps))
    assert len(list((tmp_path / "ddp" / "tiny").iterdir())) == 1


@pytest.mark.slow
def test_global_batch_size_gives_the_same_steps_with_one_and_two_processes(tmp_path):
    """train.global_batch_size is divided across processes: 8 sequences per step with 1 process
    (8 each) and with 2 (4 each), so the tokens per step, and the curve, do not change."""
    cfg = tmp_path / "experiments.toml"
    cfg.write_text(tiny_toml(batch_size=None, global_batch_size=8, max_steps=20, eval_every=20))
    single = train(cfg, tmp_path / "single")
    ddp = train(cfg, tmp_path / "ddp", "--nproc-per-node", "2")
    one, two = (json.loads(r.run_path.read_text()) for r in (single, ddp))
    assert (one["world_size"], one["batch_size"], one["global_batch_size"]) == (1, 8, 8)
    assert (two["world_size"], two["batch_size"], two["global_batch_size"]) == (2, 4, 8)
    assert one["tokens_seen"] == two["tokens_seen"] == 20 * 8 * 64
    assert one["total_steps"] == two["total_steps"] == 20
    a, b = losses(single, "train", "train_loss"), losses(ddp, "train", "train_loss")
    assert sorted(a) == sorted(b) == [5, 10, 15, 20]
    for step in a:  # stated tolerance: 1e-4 relative (float reduction order differs across ranks)
        assert b[step] == pytest.approx(a[step], rel=1e-4), (step, a, b)
    per_step = [e["tokens_seen"] for e in load_history(ddp) if e["event"] == "train"]
    assert per_step == [s * 8 * 64 for s in (5, 10, 15, 20)]


def test_global_batch_size_that_does_not_divide_is_refused_before_the_run_starts(tmp_path):
    cfg = tmp_path / "experiments.toml"
    cfg.write_text(tiny_toml(batch_size=None, global_batch_size=7, max_steps=2))
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir",
                        str(tmp_path / "runs"), "--device", "cpu", "--quiet", "--nproc-per-node", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "train.global_batch_size (7) does not divide by 2 processes" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()  # no half-made run folder

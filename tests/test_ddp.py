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

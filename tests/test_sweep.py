"""Sweeps from TOML: the grid, its checks (like --set), `tui-lab sweep` (--dry-run, --set), and a
2 x 2 grid (2 lr x 2 seeds) of tiny runs trained to the end through the queue, then exported
as seed groups with mean ± std (n) checked against the runs' own run.json."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny import tiny_toml
from tui_lab.config import ConfigError, load_experiments
from tui_lab.config.sweep import grid_points, plan_sweep, point_overrides, toml_literal
from tui_lab.runs import queue

GRID = '\n[experiments.tiny.sweep]\n"train.lr" = [1e-3, 2e-3]\n"train.seed" = [0, 1]\n'


def write_cfg(tmp_path: Path, sweep: str = GRID, **train) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text('[settings]\nruns_dir = "runs"\n\n' + tiny_toml("tiny", **train) + sweep)
    return path


def cli(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def test_grid_is_the_cartesian_product_first_key_outermost():
    points = grid_points({"train.lr": [1e-3, 2e-3], "train.seed": [0, 1, 2]})
    assert len(points) == 6 and points[:2] == [{"train.lr": 1e-3, "train.seed": 0}, {"train.lr": 1e-3, "train.seed": 1}]
    assert point_overrides(points[3]) == ["train.lr=0.002", "train.seed=0"]
    assert [toml_literal(v) for v in (True, "a\"b", [0.9, 0.95], 1e-5)] == ["true", '"a\\"b"', "[0.9, 0.95]", "1e-05"]


def test_plan_resolves_every_run_with_the_common_set(tmp_path):
    cfg = load_experiments(write_cfg(tmp_path))
    plan = plan_sweep(cfg, "tiny", ["train.max_steps=7"], sweep_id="tiny-s1")
    assert [r.overrides for r in plan.runs][1] == ["train.max_steps=7", "train.lr=0.001", "train.seed=1"]
    assert plan.record(plan.runs[2]) == {"id": "tiny-s1", "overrides": {"train.lr": 0.002, "train.seed": 0},
                                         "set": ["train.max_steps=7"]}
    resolved = cfg.get("tiny", plan.runs[3].overrides)
    assert (resolved.train.lr, resolved.train.seed, resolved.train.max_steps) == (2e-3, 1, 7)
    with pytest.raises(ConfigError, match="varies train.lr"):
        plan_sweep(cfg, "tiny", ["train.lr=0.1"])
    other = tmp_path / "nosweep"
    other.mkdir()
    with pytest.raises(ConfigError, match=r"has no \[experiments.tiny.sweep\]"):
        plan_sweep(load_experiments(write_cfg(other, sweep="")), "tiny")


@pytest.mark.parametrize("sweep,named", [
    ('"train.lrr" = [1e-3]', "sweep key 'train.lrr': unknown key"),
    ('"trian.lr" = [1e-3]', "sweep key 'trian.lr': unknown section 'trian'"),
    ('"lr" = [1e-3]', "sweep key 'lr': a sweep key is section.key"),
    ('"train.seed" = [0, "one"]', "sweep key train.seed = \"one\""),
    ('"train.lr" = [-1.0]', "sweep key train.lr = -1.0"),
    ('"train.lr" = []', "key 'sweep.train.lr': List should have at least 1 item"),
    ('"model.num_heads" = [3]', "sweep key model.num_heads = 3"),  # d_model 32 is not divisible by 3
    # each value is fine alone, the point d_model 30 x 4 heads is not
    ('"model.d_model" = [32, 30]\n"model.num_heads" = [2, 4]', "sweep point model.d_model=30 model.num_heads=4"),
])
def test_check_rejects_a_bad_sweep_key_naming_it(tmp_path, sweep, named):
    """`tui-lab check` exits 2 with a message naming the file, experiment and sweep key; no traceback."""
    path = write_cfg(tmp_path, sweep=f"\n[experiments.tiny.sweep]\n{sweep}\n")
    r = cli(tmp_path, "check", str(path))
    assert r.returncode == 2, r.stdout
    assert named in r.stderr and "experiments.toml" in r.stderr and "experiment 'tiny'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_bad_sweep_queues_nothing(tmp_path):
    write_cfg(tmp_path, sweep='\n[experiments.tiny.sweep]\n"train.seed" = [0, "x"]\n')
    r = cli(tmp_path, "sweep", "tiny")
    assert r.returncode == 2 and "train.seed" in r.stderr
    assert not (tmp_path / "runs" / "queue.json").exists()
    write_cfg(tmp_path)
    r = cli(tmp_path, "sweep", "tiny", "--set", "train.seed=3")
    assert r.returncode == 2 and "varies train.seed" in r.stderr
    assert not (tmp_path / "runs" / "queue.json").exists()


def test_dry_run_lists_the_runs_and_queues_nothing(tmp_path):
    write_cfg(tmp_path)
    r = cli(tmp_path, "sweep", "tiny", "--dry-run", "--set", "train.max_steps=5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("sweep tiny-") and "4 runs of tiny (--set train.max_steps=5)" in lines[0]
    assert [line.split(". ", 1)[1] for line in lines[1:5]] == [
        "train.lr=0.001 train.seed=0", "train.lr=0.001 train.seed=1",
        "train.lr=0.002 train.seed=0", "train.lr=0.002 train.seed=1"]
    assert "nothing queued" in r.stdout
    assert queue.read_queue(tmp_path / "runs") == []


def test_sweep_entries_carry_their_record(tmp_path):
    write_cfg(tmp_path)
    r = cli(tmp_path, "sweep", "tiny", "--no-start", "--set", "train.max_steps=5")
    assert r.returncode == 0, r.stderr
    sweep_id = r.stdout.split()[1].rstrip(":")
    entries = queue.read_queue(tmp_path / "runs")
    assert [e["overrides"] for e in entries][0] == ["train.max_steps=5", "train.lr=0.001", "train.seed=0"]
    assert [e["sweep"]["overrides"] for e in entries] == [
        {"train.lr": lr, "train.seed": s} for lr in (1e-3, 2e-3) for s in (0, 1)]
    assert {e["sweep"]["id"] for e in entries} == {sweep_id}
    assert not queue.runner_alive(tmp_path / "runs")


@pytest.mark.slow
def test_a_2x2_sweep_trains_through_the_queue_and_exports_seed_groups(tmp_path):
    """`tui-lab sweep` of 2 lr x 2 seeds (tiny runs of a few steps): four run folders, one after
    another, each config.json with its sweep id and own overrides; `export --sweep ID
    --group-seeds` gives mean ± std (n = 2) of the best val ppl as computed here from run.json."""
    write_cfg(tmp_path, max_steps=6, eval_every=3, log_every=2, eval_max_tokens=1024)
    runs = tmp_path / "runs"
    try:
        r = cli(tmp_path, "sweep", "tiny", "--set", "train.batch_size=2", "--device", "cpu")
        assert r.returncode == 0, r.stderr
        sweep_id = r.stdout.split()[1].rstrip(":")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            infos = [json.loads(p.read_text()) for p in runs.glob("tiny/*/run.json")]
            if len(infos) == 4 and all(i.get("status") in ("finished", "failed", "diverged") for i in infos):
                break
            time.sleep(0.5)
        folders = sorted(runs.glob("tiny/*/run.json"), key=lambda p: json.loads(p.read_text())["started_at"])
        infos = [json.loads(p.read_text()) for p in folders]
        assert [i["status"] for i in infos] == ["finished"] * 4, (runs / "queue.log").read_text()
        assert all(a["ended_at"] <= b["started_at"] for a, b in zip(infos, infos[1:]))  # one after another
        configs = [json.loads((p.parent / "config.json").read_text()) for p in folders]
        expected = [{"train.lr": lr, "train.seed": s} for lr in (1e-3, 2e-3) for s in (0, 1)]
        assert [c["sweep"] for c in configs] == [
            {"id": sweep_id, "overrides": e, "set": ["train.batch_size=2"]} for e in expected]
        assert [(c["train"]["lr"], c["train"]["seed"], c["train"]["batch_size"]) for c in configs] == [
            (e["train.lr"], e["train.seed"], 2) for e in expected]

        out = cli(tmp_path, "export", "--sweep", sweep_id, "--group-seeds", "-f", "json")
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        assert [(r["group"], r["n"], r["seeds"]) for r in rows] == [
            ("train.lr=0.001", 2, "0, 1"), ("train.lr=0.002", 2, "0, 1")]
        # the eval events keep perplexity to 4 decimals, run.json to full precision: 1e-4 apart at most
        close = dict(abs=2e-4)
        for row, pair in zip(rows, (infos[:2], infos[2:])):
            ppl = [i["best_val_ppl"] for i in pair]
            assert ppl == pytest.approx([math.exp(i["best_val_loss"]) for i in pair])
            assert row["best_val_ppl_mean"] == pytest.approx(statistics.mean(ppl), **close)
            assert row["best_val_ppl_std"] == pytest.approx(statistics.stdev(ppl), **close)  # sample std, n - 1
            assert (row["best_val_ppl_min"], row["best_val_ppl_max"]) == pytest.approx((min(ppl), max(ppl)), **close)
            loss = [i["best_val_loss"] for i in pair]
            assert row["best_val_loss_mean"] == pytest.approx(statistics.mean(loss), abs=1e-6)  # 6 decimals in the events
            assert row["best_val_loss_std"] == pytest.approx(statistics.stdev(loss), abs=2e-6)
            tps = [i["tokens_seen"] / i["elapsed_s"] for i in pair]  # tokens/s of an ended run, from run.json
            assert row["tokens_per_s_mean"] == pytest.approx(statistics.mean(tps), rel=1e-6)
            assert row["tokens_per_s_std"] == pytest.approx(statistics.stdev(tps), rel=1e-6, abs=1e-6)
        md = cli(tmp_path, "export", "--sweep", sweep_id, "--group-seeds").stdout
        mean = rows[0]["best_val_ppl_mean"]
        assert f"{mean:,.2f} ± {rows[0]['best_val_ppl_std']:,.2f} (2)" in md
    finally:
        info = queue.runner_info(runs)
        if info:
            os.killpg(info["pid"], signal.SIGKILL)
        for p in runs.glob("*/*/run.json"):
            pid = json.loads(p.read_text()).get("pid")
            if json.loads(p.read_text()).get("status") == "running":
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, TypeError):
                    pass


async def test_w_in_the_app_queues_the_highlighted_experiments_sweep(tmp_path, monkeypatch, no_counts):
    """`w` on the main screen queues the same grid as `tui-lab sweep` (the runner's start is
    recorded, not run: this test trains nothing)."""
    from textual.widgets import DataTable

    from tui_lab.app.app import TuiLabApp
    from waits import wait_for

    started = []
    monkeypatch.setattr(queue, "start_runner", lambda runs_dir, *a, **k: started.append(Path(runs_dir)) or True)
    cfg = load_experiments(write_cfg(tmp_path))
    app = TuiLabApp(cfg, runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.query(DataTable), 30, "the main screen")
        await pilot.press("w")
        await wait_for(pilot, lambda: len(queue.read_queue(tmp_path / "runs")) == 4, 30, "four queued runs")
    entries = queue.read_queue(tmp_path / "runs")
    assert [e["sweep"]["overrides"] for e in entries] == [
        {"train.lr": lr, "train.seed": s} for lr in (1e-3, 2e-3) for s in (0, 1)]
    assert len({e["sweep"]["id"] for e in entries}) == 1 and started == [tmp_path / "runs"]

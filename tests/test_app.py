"""The Textual app, driven with Pilot: real detached runs, reattach, stop, resume; snapshots."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from tui_lab.app.app import TuiLabApp
from tui_lab.app.screens.main import MainScreen
from tui_lab.config import load_experiments
from tui_lab.runs import RunDir, pid_alive, write_json_atomic

from tiny import tiny_toml



def write_config(folder: Path, steps: int = 400, names=("tiny",)) -> Path:
    path = folder / "experiments.toml"
    path.write_text('[settings]\nruns_dir = "runs"\n\n' + "".join(
        tiny_toml(n, max_steps=steps, eval_every=20, sample_every=1, sample_prompts=["The "]) for n in names))
    return path


@pytest.fixture
def kill_runs():
    """Kill every training process a test left behind (they run in their own sessions)."""
    runs: list[Path] = []
    yield runs
    for runs_dir in runs:
        for info_path in Path(runs_dir).glob("*/*/run.json"):
            pid = json.loads(info_path.read_text()).get("pid")
            if pid and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


async def wait_for(pilot, predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def main_screen(app) -> MainScreen:
    return app.main


def stats_text(app) -> str:
    return str(main_screen(app).query_one("#stats", Static).render())


@pytest.mark.slow
async def test_launch_watch_quit_reattach_stop_resume(tmp_path, kill_runs):
    cfg_path = write_config(tmp_path, steps=5000)
    runs_dir = tmp_path / "runs"
    kill_runs.append(runs_dir)
    cfg = load_experiments(cfg_path)

    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await wait_for(pilot, lambda: main_screen(app).state is not None, what="a run to be selected")
        state = main_screen(app).state
        await wait_for(pilot, lambda: len(state.series("eval", "val_loss")[1]) >= 2, what="two evaluations")
        await wait_for(pilot, lambda: "val ppl" in stats_text(app) and "running" in stats_text(app), what="live stats")
        loss_plot = main_screen(app).query_one("#loss-plot")
        assert loss_plot._series and len(loss_plot._series[0][1]) >= 1  # the curve has data
        run = state.run
        await pilot.press("q")
    info = run.read_run()
    assert info["status"] == "running" and pid_alive(info["pid"], info.get("proc_start"))  # survived the app

    app2 = TuiLabApp(cfg)
    async with app2.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: main_screen(app2).state is not None, what="reattach")
        st = main_screen(app2).state
        assert st.run.path == run.path
        assert st.series("eval", "val_loss")[0][0] == 0  # full history from step 0
        await wait_for(pilot, lambda: "running" in stats_text(app2), what="running status")
        await pilot.press("s")
        await wait_for(pilot, lambda: run.read_run().get("status") == "stopped", what="graceful stop")
        await wait_for(pilot, lambda: "stopped" in stats_text(app2), what="stopped shown")
        stopped_step = run.read_run()["step"]
        await pilot.press("R")
        await wait_for(pilot, lambda: run.read_run().get("status") == "running", what="resume")
        await wait_for(pilot, lambda: (run.read_run().get("step") or 0) >= stopped_step + 20, what="progress after resume")
        await pilot.press("s")
        await wait_for(pilot, lambda: run.read_run().get("status") == "stopped", what="second stop")
    steps = [e["step"] for e in st.events if e.get("event") == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # the curve continues, no repeats
    assert steps[-1] > stopped_step and any(e.get("event") == "resume" for e in st.events)


@pytest.mark.slow
async def test_queue_runs_experiments_one_after_another(tmp_path, kill_runs):
    cfg_path = write_config(tmp_path, steps=40, names=("first", "second"))
    runs_dir = tmp_path / "runs"
    kill_runs.append(runs_dir)
    app = TuiLabApp(load_experiments(cfg_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")  # first
        await pilot.press("down", "a")  # second
        await wait_for(pilot, lambda: len(list(runs_dir.glob("*/*/run.json"))) == 2
                       and all(json.loads(p.read_text()).get("status") == "finished"
                               for p in runs_dir.glob("*/*/run.json")), timeout=400, what="both queued runs")
    infos = sorted((json.loads(p.read_text()) for p in runs_dir.glob("*/*/run.json")), key=lambda i: i["started_at"])
    assert [i["experiment"] for i in infos] == ["first", "second"]
    assert infos[0]["ended_at"] <= infos[1]["started_at"]  # one after the other, not at once


def test_app_start_does_not_import_torch(tmp_path):
    cfg_path = write_config(tmp_path)
    script = f"""
import asyncio, sys, time
t0 = time.perf_counter()
from tui_lab.config import load_experiments
from tui_lab.app.app import TuiLabApp
async def main():
    app = TuiLabApp(load_experiments({str(cfg_path)!r}))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        print("first-frame-s", round(time.perf_counter() - t0, 3))
        await pilot.press("down", "up", "tab")
asyncio.run(main())
print("torch-imported", "torch" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "torch-imported False" in r.stdout
    print(r.stdout)


# ---------------------------------------------------------------------------- snapshots
def synthetic_runs(root: Path) -> Path:
    """Two finished runs with fixed numbers and times, for deterministic screenshots."""
    cfg_path = write_config(root, steps=100, names=("tiny",))
    exp = load_experiments(cfg_path).get("tiny")
    for i, (run_id, scale) in enumerate((("20260101-000000-aaaa", 1.0), ("20260102-000000-bbbb", 0.9))):
        run = RunDir(root / "runs" / "tiny" / run_id)
        run.path.mkdir(parents=True)
        write_json_atomic(run.config_path, exp.model_dump(mode="json"))
        t = 1_767_225_600.0 + i * 86_400
        events = []
        for step in range(0, 101, 5):
            loss = 5.5 * scale * (0.985 ** step) + 1.0
            if step:
                events.append({"event": "train", "time": t + step, "step": step, "epoch": 0, "train_loss": loss,
                               "lr": 1e-3, "tokens_seen": step * 256, "tokens_per_s": 2000.0 + step,
                               "elapsed_s": step * 0.1})
            if step % 20 == 0:
                events.append({"event": "eval", "time": t + step, "step": step, "epoch": 0, "val_loss": loss + 0.1,
                               "val_ppl": math.exp(loss + 0.1), "val_acc": 0.3, "tokens_seen": step * 256,
                               "elapsed_s": step * 0.1, "is_best": True})
        events.append({"event": "sample", "time": t + 100, "step": 100, "prompt": "The ", "text": "return statement"})
        run.metrics_path.write_text("".join(json.dumps(e) + "\n" for e in events))
        best = min(e["val_loss"] for e in events if e["event"] == "eval")
        write_json_atomic(run.run_path, {"experiment": "tiny", "run_id": run_id, "status": "finished",
                                         "started_at": t, "ended_at": t + 10, "num_params": 31_264, "step": 100,
                                         "epoch": 0, "total_steps": 100, "device": "cpu", "best_val_loss": best,
                                         "best_val_ppl": math.exp(best), "elapsed_s": 10.0, "tokens_seen": 25_600,
                                         "message": "reached 100 steps"})
    return cfg_path


def test_snapshot_main_screen(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths only, so the pictures do not depend on tmp_path
    synthetic_runs(tmp_path)
    app = TuiLabApp(load_experiments("experiments.toml"))
    app.counts_enabled = False
    assert snap_compare(app, terminal_size=(120, 40))


def test_snapshot_main_screen_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths only, so the pictures do not depend on tmp_path
    synthetic_runs(tmp_path)
    app = TuiLabApp(load_experiments("experiments.toml"))
    app.counts_enabled = False
    assert snap_compare(app, terminal_size=(80, 24))


def test_snapshot_results_screen(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths only, so the pictures do not depend on tmp_path
    synthetic_runs(tmp_path)
    app = TuiLabApp(load_experiments("experiments.toml"))
    app.counts_enabled = False
    assert snap_compare(app, terminal_size=(120, 40), press=["r"])


async def test_results_screen_lists_runs_and_exports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = TuiLabApp(load_experiments(synthetic_runs(tmp_path)))
    app.counts_enabled = False
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        table = app.screen.query_one("#results", DataTable)
        assert table.row_count == 2
        await pilot.press("e")
        await pilot.pause()
        await pilot.click("#ok")
        await pilot.pause()
    text = (tmp_path / "results.md").read_text()
    assert "20260101-000000-aaaa" in text and "20260102-000000-bbbb" in text and text.startswith("| Experiment |")

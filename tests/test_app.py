"""The Textual app, driven with Pilot: real detached runs (launch, live panels, quit, reattach,
stop, resume, queue), the watcher on synthetic run folders, keys, start-up without torch,
and snapshots of the main screens."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual import events
from textual.widgets import DataTable

from tui_lab.app.app import TuiLabApp
from tui_lab.app.screens.main import MainScreen
from tui_lab.app.gpu import Gpu
from tui_lab.app.widgets import CurvePlot, LogTail, RunStats, SamplesView
from tui_lab.config import load_experiments
from tui_lab.atomic import atomic_write_json
from tui_lab.runs import MetricsWriter, RunDir, pid_alive
from tui_lab.runs.follow import RunFollower

from waits import wait_for
from tiny import tiny_toml

pytestmark = pytest.mark.usefixtures("no_counts")

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed times for the pictures


def write_config(folder: Path, steps: int = 400, names=("tiny",)) -> Path:
    path = folder / "experiments.toml"
    path.write_text('[settings]\nruns_dir = "runs"\n\n' + "".join(
        tiny_toml(n, max_steps=steps, eval_every=20, sample_every=1, sample_prompts=["The "]) for n in names))
    return path


def main_screen(app) -> MainScreen:
    return app.main


def stats_text(app) -> str:
    return main_screen(app).query_one("#stats", RunStats).plain()


def snap(app):
    return main_screen(app).snapshot


# ---------------------------------------------------------------------------- real runs
@pytest.mark.slow
async def test_launch_live_panels_quit_reattach_until_finished(tmp_path, kill_runs, plot_builds):
    """The issue's "done when": t → loss and perplexity panels update live → q → the process
    goes on → a new app shows the same run live, with its whole history, until "finished"."""
    cfg = load_experiments(write_config(tmp_path, steps=200))
    kill_runs.append(tmp_path / "runs")

    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "never run" in str(main_screen(app).query_one("#experiments", DataTable).get_row("tiny")[1])
        await pilot.press("t")
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).status == "running", what="running")
        await wait_for(pilot, lambda: len(snap(app).series("eval", "val_ppl")[1]) >= 2, what="two evaluations")
        loss_plot = main_screen(app).query_one("#loss-plot", CurvePlot)
        ppl_plot = main_screen(app).query_one("#ppl-plot", CurvePlot)
        draws = plot_builds.get("loss-plot", 0)
        n_train = len(snap(app).series("train", "train_loss")[0])
        await wait_for(pilot, lambda: len(snap(app).series("train", "train_loss")[0]) > n_train, what="more steps")
        await wait_for(pilot, lambda: plot_builds.get("loss-plot", 0) > draws, timeout=5,
                       what="the curve redrawn with the new points")
        assert len(ppl_plot.series[0][1]) >= 2 and len(loss_plot.series[0][1]) > n_train
        assert "running" in stats_text(app) and "val ppl" in stats_text(app)
        await pilot.press("3")
        await wait_for(pilot, lambda: "val_ppl" in main_screen(app).query_one("#log", LogTail).text,
                       what="the log tail")
        await pilot.press("1")
        run = snap(app).run
        await pilot.press("q")
    info = run.read_run()
    assert info["status"] == "running" and pid_alive(info["pid"], info.get("proc_start"))  # outlived the app

    app2 = TuiLabApp(cfg)
    async with app2.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: snap(app2) is not None, what="reattach")
        assert snap(app2).run.path == run.path
        assert snap(app2).series("eval", "val_loss")[0][0] == 0  # the whole history, from step 0
        await wait_for(pilot, lambda: snap(app2).status == "finished", timeout=120, what="finished")
        await wait_for(pilot, lambda: "finished" in stats_text(app2), timeout=5, what="finished in the panel")
        await wait_for(pilot, lambda: "finished" in str(
            main_screen(app2).query_one("#experiments", DataTable).get_row("tiny")[1]), timeout=10,
            what="the list's status (rescanned every 2 s)")
        steps, _ = snap(app2).series("train", "train_loss")
        assert steps[-1] == 200 and steps == sorted(steps)
        await pilot.press("4")
        await pilot.pause()
        assert main_screen(app2).query_one("#samples", SamplesView)._shown  # sample generations are shown


@pytest.mark.slow
async def test_stop_reattach_resume(tmp_path, kill_runs):
    cfg = load_experiments(write_config(tmp_path, steps=5000))
    kill_runs.append(tmp_path / "runs")

    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).status == "running", what="running")
        await wait_for(pilot, lambda: len(snap(app).series("eval", "val_loss")[1]) >= 2, what="two evaluations")
        run = snap(app).run
        await pilot.press("s")
        await wait_for(pilot, lambda: run.read_run().get("status") == "stopped", what="graceful stop")
        await wait_for(pilot, lambda: snap(app).status == "stopped", what="stopped shown")
        assert (run.checkpoint_dir / "last.state.pt").is_file()
    stopped_step = run.read_run()["step"]

    app2 = TuiLabApp(cfg)  # a fresh instance shows the stopped run and its history
    async with app2.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: snap(app2) is not None, what="reattach")
        assert snap(app2).run.path == run.path and snap(app2).status == "stopped"
        assert snap(app2).series("eval", "val_loss")[0][0] == 0
        assert "stopped" in str(main_screen(app2).query_one("#experiments", DataTable).get_row("tiny")[1])
        await pilot.press("R")
        await wait_for(pilot, lambda: run.read_run().get("status") == "running", what="resume")
        await wait_for(pilot, lambda: (run.read_run().get("step") or 0) >= stopped_step + 20,
                       what="progress after resume")
        await wait_for(pilot, lambda: snap(app2).progress()[0] >= stopped_step + 20, what="resumed steps shown")
        await pilot.press("s")
        await wait_for(pilot, lambda: run.read_run().get("status") == "stopped", what="second stop")
        await wait_for(pilot, lambda: snap(app2).status == "stopped", what="second stop shown")
        st = snap(app2)
    steps = st.series("train", "train_loss")[0]
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
        await wait_for(pilot, lambda: main_screen(app).query_one("#queue").display, what="queue line")
        await wait_for(pilot, lambda: len(list(runs_dir.glob("*/*/run.json"))) == 2
                       and all(json.loads(p.read_text()).get("status") == "finished"
                               for p in runs_dir.glob("*/*/run.json")), timeout=150, what="both queued runs")
    infos = sorted((json.loads(p.read_text()) for p in runs_dir.glob("*/*/run.json")), key=lambda i: i["started_at"])
    assert [i["experiment"] for i in infos] == ["first", "second"]
    assert infos[0]["ended_at"] <= infos[1]["started_at"]  # one after the other, not at once


# ---------------------------------------------------------------------------- synthetic runs
def synthetic_runs(root: Path) -> Path:
    """Two finished runs with fixed numbers and times, for deterministic screenshots."""
    cfg_path = write_config(root, steps=100, names=("tiny",))
    exp = load_experiments(cfg_path).get("tiny")
    for i, (run_id, scale) in enumerate((("20260101-000000-aaaa", 1.0), ("20260102-000000-bbbb", 0.9))):
        run = RunDir(root / "runs" / "tiny" / run_id)
        run.path.mkdir(parents=True)
        atomic_write_json(run.config_path, exp.model_dump(mode="json"))
        t = T0 + i * 86_400
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
        run.log_path.write_text("loading pydoc text\nstep 100 val_loss 2.1920 val_ppl 8.95\nfinished\n")
        best = min(e["val_loss"] for e in events if e["event"] == "eval")
        atomic_write_json(run.run_path, {"experiment": "tiny", "run_id": run_id, "status": "finished",
                                         "started_at": t, "ended_at": t + 10, "num_params": 31_264, "step": 100,
                                         "epoch": 0, "total_steps": 100, "device": "cpu", "best_val_loss": best,
                                         "best_val_ppl": math.exp(best), "elapsed_s": 10.0, "tokens_seen": 25_600,
                                         "train_tokens": 383_688, "message": "reached 100 steps"})
    return cfg_path


def live_run(runs_dir: Path, name: str = "tiny", status: str = "running", pid: int | None = None) -> RunDir:
    """A run folder that claims to be written by process ``pid`` (this one by default)."""
    run = RunDir(runs_dir / name / "20260103-000000-cccc")
    run.path.mkdir(parents=True)
    atomic_write_json(run.run_path, {"experiment": name, "run_id": run.run_id, "status": status,
                                     "pid": pid or os.getpid(), "host": socket.gethostname(), "started_at": T0 + 2e5,
                                     "total_steps": 1000, "device": "cpu", "num_params": 31_264})
    return run


async def wait_snapshot(pilot, app):
    await wait_for(pilot, lambda: snap(app) is not None, timeout=10, what="the selected run")
    await pilot.pause()


async def test_watcher_follows_appended_metrics_and_partial_lines(tmp_path):
    cfg = load_experiments(write_config(tmp_path))
    run = live_run(tmp_path / "runs")
    writer = MetricsWriter(run.metrics_path)
    writer.write("start", step=0, total_steps=1000, num_params=31_264, device="cpu")
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        assert snap(app).status == "running"
        for step in range(10, 60, 10):
            writer.write("train", step=step, epoch=0, train_loss=5.0 - step / 100, lr=1e-3, tokens_seen=step * 256,
                         tokens_per_s=2000.0, elapsed_s=step / 10)
        writer.write("eval", step=50, epoch=0, val_loss=4.6, val_ppl=99.5, val_acc=0.2, elapsed_s=5.0)
        with open(run.metrics_path, "a") as fh:  # a writer caught mid-line
            fh.write('{"event": "train", "step": 60, "train_lo')
        await wait_for(pilot, lambda: snap(app).series("eval", "val_ppl")[1] == [99.5], what="the eval event")
        assert snap(app).series("train", "train_loss")[0] == [10, 20, 30, 40, 50]
        assert snap(app).progress() == (50, 1000) and snap(app).eta_s() is not None
        with open(run.metrics_path, "a") as fh:
            fh.write('ss": 4.3, "time": 1.0}\n')
        await wait_for(pilot, lambda: snap(app).progress()[0] == 60, what="the completed line")
        await wait_for(pilot, lambda: "99.50" in stats_text(app) and "60/1,000" in stats_text(app), timeout=5,
                       what="the panel's figures")
        assert main_screen(app).query_one("#ppl-plot", CurvePlot).series[0][2] == [99.5]
        # a resume at step 30 supersedes what came after it
        writer.write("resume", step=30, epoch=0, tokens_seen=30 * 256)
        writer.write("train", step=35, epoch=0, train_loss=4.5, lr=1e-3, tokens_seen=35 * 256, tokens_per_s=1.0,
                     elapsed_s=3.5)
        await wait_for(pilot, lambda: snap(app).series("train", "train_loss")[0] == [10, 20, 30, 35],
                       what="collapsed resume")
        writer.close()


async def test_reattach_opens_on_the_run_that_is_training(tmp_path):
    """Started again while a run of the third experiment trains, the app shows that run."""
    cfg = load_experiments(write_config(tmp_path, names=("a", "b", "c")))
    live_run(tmp_path / "runs", "a", "finished")
    run = live_run(tmp_path / "runs", "c", "running")
    MetricsWriter(run.metrics_path).write("train", step=5, train_loss=4.0, elapsed_s=1.0)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).run.path == run.path, timeout=10,
                       what="the live run")
        assert main_screen(app).highlighted_experiment() == "c"
        assert snap(app).status == "running" and snap(app).series("train", "train_loss")[0] == [5]


def test_run_state_reads_only_new_bytes(tmp_path):
    run = live_run(tmp_path)
    writer = MetricsWriter(run.metrics_path)
    writer.write("train", step=5, train_loss=5.0)
    state = RunFollower(run)
    assert state.poll() and state.offset > 0
    offset = state.offset
    assert not state.poll() and state.offset == offset  # nothing new, nothing changed
    writer.write("train", step=10, train_loss=4.0)
    assert state.poll() and state.curves[("train", "train_loss")] == ([5, 10], [5.0, 4.0])
    writer.close()


async def test_statuses_of_experiments(tmp_path):
    cfg = load_experiments(write_config(tmp_path, names=("a", "b", "c", "d", "e", "f", "g")))
    runs = tmp_path / "runs"
    live_run(runs, "a", "running")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_run(runs, "b", "running", pid=dead.pid)  # its process is gone
    for name, status in (("c", "finished"), ("d", "stopped"), ("e", "failed"), ("f", "diverged")):
        live_run(runs, name, status)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = main_screen(app).query_one("#experiments", DataTable)
        shown = {name: str(table.get_row(name)[1]) for name in "abcdefg"}
    assert shown == {"a": "running", "b": "interrupted", "c": "finished", "d": "stopped", "e": "failed",
                     "f": "diverged", "g": "never run"}


async def test_history_selection_shows_that_runs_curves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = TuiLabApp(load_experiments(synthetic_runs(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        assert snap(app).run.run_id == "20260102-000000-bbbb"  # the latest run first
        runs = main_screen(app).query_one("#runs", DataTable)
        assert runs.row_count == 2
        runs.focus()
        await pilot.press("down")
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).run.run_id == "20260101-000000-aaaa",
                       what="the older run")
        first = snap(app).series("eval", "val_ppl")[1][-1]
        await pilot.press("up")
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).run.run_id == "20260102-000000-bbbb",
                       what="back to the newer run")
        assert snap(app).series("eval", "val_ppl")[1][-1] < first


async def test_keys_answer_while_a_run_streams(tmp_path):
    """Metrics arrive every 10 ms; every key press still takes effect while the stream goes on
    (the app never waits for the stream to pause). Latencies are printed, not asserted: this
    machine is shared, so a wall-clock bound would test the machine, not the app."""
    cfg = load_experiments(write_config(tmp_path, names=("tiny", "other")))
    run = live_run(tmp_path / "runs")
    writer = MetricsWriter(run.metrics_path)
    app = TuiLabApp(cfg)
    written = 0
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        stop = False

        async def stream():
            nonlocal written
            while not stop:
                written += 1
                writer.write("train", step=written, train_loss=5.0 / written, lr=1e-3, tokens_per_s=1e4,
                             elapsed_s=written)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(stream())
        await wait_for(pilot, lambda: snap(app).progress()[0] >= 20, timeout=30, what="the stream to show")
        latencies = []
        tabs = main_screen(app).query_one("#tabs")
        for key, tab in (("2", "tab-lr"), ("3", "tab-log"), ("1", "tab-curves"), ("2", "tab-lr"), ("1", "tab-curves")):
            t = time.perf_counter()
            app._driver.send_message(events.Key(key, key))  # as a terminal would: no waiting for idle
            await wait_for(pilot, lambda: tabs.active == tab, timeout=30, what=f"key {key} to open {tab}")
            latencies.append(time.perf_counter() - t)
            assert not task.done()  # the stream was never stopped for the key
        shown = snap(app).progress()[0]
        await wait_for(pilot, lambda: snap(app).progress()[0] > shown, timeout=30,
                       what="the panels to keep following the stream after the keys")
        stop = True
        await task
        writer.close()
    print(f"key latency while streaming: max {max(latencies) * 1000:.0f} ms over {written} streamed rows")


async def test_plot_redraws_coalesce_however_fast_data_arrives():
    """A burst of new series (a fast run, a big metrics file read at once) costs at most two
    redraws: one at once, one for the last data after REDRAW_MIN_INTERVAL_S. The figure shown
    is the last data given."""
    from textual.app import App

    class PlotApp(App):
        def compose(self):
            yield CurvePlot("train loss", id="loss")

    app = PlotApp()
    async with app.run_test(size=(80, 20)) as pilot:
        plot = app.query_one(CurvePlot)
        draws = []
        original = plot._draw
        plot._draw = lambda: (draws.append(1), original())[1]
        await pilot.pause(0.2)
        for n in range(1, 101):
            plot.set_series([("train loss", list(range(n)), [5.0 / (i + 1) for i in range(n)])], n)
        await wait_for(pilot, lambda: len(draws) >= 2, timeout=30, what="the pending redraw")
        await pilot.pause(0.3)
        assert len(draws) == 2
        assert plot.series[0][1] == list(range(100))
        assert "no data yet" not in "".join(s.text for s in plot.build_strips(80, 20))


async def test_footer_and_palette_list_the_keys(tmp_path):
    app = TuiLabApp(load_experiments(write_config(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = {b.binding.key: b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert {k: shown.get(k) for k in "tsRacrq"} == {"t": "Train", "s": "Stop", "R": "Resume", "a": "Queue",
                                                       "c": "Chat", "r": "Results", "q": "Quit"}
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Train", "Stop", "Resume", "Queue", "Chat", "Results"} <= titles


async def test_chat_without_checkpoint_or_chat_module_notifies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = TuiLabApp(load_experiments(synthetic_runs(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        await pilot.press("c")
        await pilot.pause()
        assert any("no checkpoint yet" in str(n.message) for n in app._notifications)
        ckpt = snap(app).run.checkpoint_dir
        ckpt.mkdir()
        (ckpt / "best.safetensors").write_bytes(b"")
        monkeypatch.setitem(sys.modules, "tui_lab.app.screens.chat", None)  # import fails
        await pilot.press("c")
        await pilot.pause()
        assert any("chat not available" in str(n.message) for n in app._notifications)
        assert isinstance(app.screen, MainScreen)


async def test_a_run_that_dies_before_starting_shows_failed(tmp_path, monkeypatch):
    import tui_lab.runs.launcher as launcher

    def fake_launch(experiment, *, config, runs_dir, **kw):
        run = RunDir(Path(runs_dir) / experiment / "20260104-000000-dddd")
        run.path.mkdir(parents=True)
        run.log_path.write_text("error: something is wrong with this experiment\n")
        return run, subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])

    monkeypatch.setattr(launcher, "launch_detached", fake_launch)
    app = TuiLabApp(load_experiments(write_config(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).status == "failed", timeout=10,
                       what="failed")
        assert "before it started" in stats_text(app)
        await pilot.press("3")  # the Log tab: drawn when opened
        await pilot.pause()
        assert "something is wrong" in main_screen(app).query_one("#log", LogTail).text


def test_gpu_panel_says_when_nvml_is_missing(monkeypatch):
    assert Gpu().line("cpu") is None
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert "NVML not installed" in Gpu().line("cuda:0")


def test_gpu_panel_reads_nvml_for_the_runs_device(monkeypatch):
    import types

    seen = []
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: seen.append(i) or i,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=3 * 2**30, total=80 * 2**30),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=87))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert Gpu().line("cuda:1") == "GPU 87% · 3.0/80.0 GiB" and seen == [3]  # CUDA's 1 is the machine's 3


def test_app_start_does_not_import_torch(tmp_path):
    cfg_path = write_config(tmp_path)
    script = f"""
import time
t0 = time.perf_counter()
import asyncio, sys
from tui_lab.config import load_experiments
from tui_lab.app.app import TuiLabApp
async def main():
    app = TuiLabApp(load_experiments({str(cfg_path)!r}))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        print("first-frame-s", round(time.perf_counter() - t0, 3))
        await pilot.press("down", "up", "2", "1")
        await pilot.pause(0.5)
asyncio.run(main())
print("torch-imported", "torch" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "torch-imported False" in r.stdout
    print(r.stdout)  # the first-frame time (measured, not asserted)


# ---------------------------------------------------------------------------- snapshots
async def _shown(pilot):
    """Wait until the watcher has delivered the selected run and the plots are drawn."""
    app = pilot.app
    await wait_for(pilot, lambda: snap(app) is not None, timeout=10, what="the selected run")
    await pilot.pause(0.3)  # the plots' redraw throttle (0.1 s) has passed: a settled picture


def _snapshot_app(tmp_path, monkeypatch) -> TuiLabApp:
    monkeypatch.chdir(tmp_path)  # relative paths only, so the pictures do not depend on tmp_path
    synthetic_runs(tmp_path)
    app = TuiLabApp(load_experiments("experiments.toml"))
    return app


def test_snapshot_main_screen(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(120, 40), run_before=_shown)


def test_snapshot_main_screen_80x24(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(80, 24), run_before=_shown)


def test_snapshot_config_tab(snap_compare, tmp_path, monkeypatch):
    async def config_tab(pilot):
        await _shown(pilot)
        await pilot.press("5")
        await pilot.pause(0.2)

    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(120, 40), run_before=config_tab)


def test_snapshot_results_screen(snap_compare, tmp_path, monkeypatch):
    async def results(pilot):
        await _shown(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: pilot.app.screen.query("#results")
                       and pilot.app.screen.query_one("#results", DataTable).row_count == 2, timeout=10,
                       what="the runs table")
        await pilot.pause(0.2)

    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(120, 40), run_before=results)


def test_snapshot_results_screen_80x24(snap_compare, tmp_path, monkeypatch):
    """At 80 columns the key column (best val ppl) is on screen."""
    async def results(pilot):
        await _shown(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: pilot.app.screen.query("#results")
                       and pilot.app.screen.query_one("#results", DataTable).row_count == 2, timeout=10,
                       what="the runs table")
        await pilot.pause(0.2)

    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(80, 24), run_before=results)


async def test_results_screen_lists_runs_and_exports(tmp_path, monkeypatch):
    """The table is loaded in a worker; the export dialog defaults to the runs folder and
    says where it wrote."""
    monkeypatch.chdir(tmp_path)
    app = TuiLabApp(load_experiments(synthetic_runs(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.query("#results") and app.screen.query_one("#results", DataTable)
                       .row_count == 2, timeout=10, what="the runs table")
        await pilot.press("e")
        await wait_for(pilot, lambda: bool(app.screen.query("#ok")), timeout=5, what="the export dialog")
        assert app.screen.query_one("#path").value == str(app.runs_dir / "results.md")
        await pilot.click("#ok")
        written = tmp_path / "runs" / "results.md"
        await wait_for(pilot, written.exists, timeout=5, what="the export")
        await wait_for(pilot, lambda: any(str(written) in str(n.message) for n in app._notifications), timeout=5,
                       what="a notification naming the file")
    assert not (tmp_path / "results.md").exists()  # never into the working folder
    text = written.read_text()
    assert "20260101-000000-aaaa" in text and "20260102-000000-bbbb" in text and text.startswith("| Experiment |")


# ---------------------------------------------------------------------------- resize, small terminals
RESIZES = [(120, 40), (80, 24), (60, 15), (200, 60), (75, 24), (100, 30), (120, 40), (40, 12), (220, 60),
           (100, 24), (90, 24), (80, 24), (75, 24), (120, 40), (80, 24), (120, 40), (80, 24)]
"""The issue's sequence (three rounds in tmux), the extremes, and width steps down at height 24."""


async def test_resizing_while_a_log_scale_curve_streams_never_kills_the_app(tmp_path):
    cfg = load_experiments(write_config(tmp_path))
    run = live_run(tmp_path / "runs")
    writer = MetricsWriter(run.metrics_path)
    writer.write("start", step=0, total_steps=1000)
    writer.write("eval", step=0, val_loss=16.2, val_ppl=math.exp(16.2), elapsed_s=0.0)  # one point first
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        step = 0
        for i, (w, h) in enumerate(RESIZES):
            step += 10
            writer.write("train", step=step, train_loss=5.0 / (1 + step / 100), lr=1e-3, tokens_seen=step * 256,
                         tokens_per_s=1e4, elapsed_s=step / 10)
            writer.write("eval", step=step, val_loss=5.0 / (1 + step / 100),
                         val_ppl=math.exp(5.0 / (1 + step / 100)), elapsed_s=step / 10, eval_s=0.1)
            await pilot.resize_terminal(w, h)
            for key in (str(1 + i % 5), "1"):  # a tab drawn at this size, then the curves (log scale)
                await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, MainScreen) and app.is_running
        await wait_for(pilot, lambda: snap(app).progress()[0] == step, timeout=10, what="the last step")
        await pilot.resize_terminal(120, 40)
        await pilot.press("1")
        await wait_for(pilot, lambda: len(main_screen(app).query_one("#ppl-plot", CurvePlot).series[0][1]) == len(RESIZES) + 1,
                       timeout=10, what="the streamed curve")
        for plot in main_screen(app).query(CurvePlot):
            assert plot.error is None, plot.error
        writer.close()
    assert app.return_code in (None, 0)


async def test_at_80x24_the_narrow_layout_and_at_60x15_a_sentence_instead_of_plots(tmp_path):
    cfg = load_experiments(write_config(tmp_path))
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = main_screen(app)
        assert screen.has_class("-wide")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: screen.has_class("-narrow") and not screen.has_class("-wide"), timeout=20,
                       what="the narrow layout")
        assert not screen.has_class("-too-small")
        await pilot.resize_terminal(60, 15)
        await wait_for(pilot, lambda: screen.has_class("-too-small"), timeout=20, what="too small")
        assert "too small for the plots" in str(screen.query_one(".too-small").render())
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: screen.has_class("-wide") and not screen.has_class("-too-small"), timeout=20,
                       what="the wide layout back")


async def test_keys_1_to_5_are_in_the_footer_and_the_palette(tmp_path):
    app = TuiLabApp(load_experiments(write_config(tmp_path)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = {b.binding.key_display or b.binding.key: b.binding.description
                 for b in app.screen.active_bindings.values() if b.binding.show}
        assert shown.get("1-5") == "Tabs"
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        for word in ("tab", "log", "curv", "config", "sample"):
            assert any(word in (t + " " + h).lower() for t, h in commands.items() if t.startswith("Tab ")), word
        next(c for c in app.get_system_commands(app.screen) if c.title.startswith("Tab 3")).callback()
        await wait_for(pilot, lambda: main_screen(app).query_one("#tabs").active == "tab-log", timeout=5,
                       what="the Log tab from the palette")


async def test_processes_the_app_launched_are_reaped(tmp_path, monkeypatch):
    """No `<defunct>` training process lingers under the app after it ends."""
    import psutil
    import tui_lab.runs.launcher as launcher

    procs = []

    def fake_launch(experiment, *, config, runs_dir, **kw):
        run = RunDir(Path(runs_dir) / experiment / f"20260104-00000{len(procs)}-dddd")
        run.path.mkdir(parents=True)
        procs.append(subprocess.Popen([sys.executable, "-c", "pass"]))
        return run, procs[-1]

    monkeypatch.setattr(launcher, "launch_detached", fake_launch)
    app = TuiLabApp(load_experiments(write_config(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.press("t")
        await wait_for(pilot, lambda: len(procs) == 2, timeout=5, what="two launches")

        def reaped() -> bool:
            for p in procs:
                try:
                    if psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE:
                        return False
                except psutil.NoSuchProcess:
                    continue
            return True

        await wait_for(pilot, reaped, timeout=15, what="the ended processes to be reaped (scans every 2 s)")
        assert all(p.returncode is not None for p in procs)


async def test_resume_shows_resuming_at_once(tmp_path, monkeypatch):
    import tui_lab.runs.launcher as launcher

    cfg = load_experiments(write_config(tmp_path))
    run = live_run(tmp_path / "runs", status="stopped")
    run.checkpoint_dir.mkdir()
    run.train_state_path.write_bytes(b"state")
    started = []

    def fake_launch(experiment, *, config, runs_dir, resume=None, **kw):
        # a process that takes its time to write run.json, as a real one importing torch does
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]))
        return resume, started[-1]

    monkeypatch.setattr(launcher, "launch_detached", fake_launch)
    app = TuiLabApp(cfg)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: snap(app) is not None and snap(app).status == "stopped", timeout=10,
                           what="the stopped run")
            await pilot.press("R")
            await pilot.pause()  # one frame: no waiting for the process
            assert snap(app).status == "resuming" and "resuming" in stats_text(app)
            runs = main_screen(app).query_one("#runs", DataTable)
            assert "resuming" in str(runs.get_row_at(0)[runs.get_column_index("status")])
            await pilot.press("R")
            assert any("resuming already" in str(n.message) for n in app._notifications)
            info = json.loads(run.run_path.read_text())
            atomic_write_json(run.run_path, {**info, "status": "running"})  # the process writes that it runs
            await wait_for(pilot, lambda: snap(app).status == "running", timeout=10, what="running")
    finally:
        for p in started:
            p.kill()
            p.wait()


async def test_live_panel_shows_evaluation_progress(tmp_path):
    cfg = load_experiments(write_config(tmp_path))
    run = live_run(tmp_path / "runs")
    writer = MetricsWriter(run.metrics_path)
    writer.write("start", step=0, total_steps=1000)
    writer.write("eval_start", step=0, tokens_total=258_000, elapsed_s=0.0)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_snapshot(pilot, app)
        await wait_for(pilot, lambda: "evaluating" in stats_text(app), timeout=10, what="the evaluating line")
        writer.write("eval_progress", step=0, tokens_done=129_000, tokens_total=258_000)
        await wait_for(pilot, lambda: "129,000/258,000" in stats_text(app), timeout=10, what="tokens done / total")
        assert "50%" in stats_text(app)
        writer.write("eval", step=0, val_loss=5.0, val_ppl=148.4, elapsed_s=0.0, eval_s=12.0)
        await wait_for(pilot, lambda: "evaluating" not in stats_text(app), timeout=10, what="the evaluation's end")
        writer.close()


# ---------------------------------------------------------------------------- the plot widget alone
async def test_plot_widget_survives_any_size_and_any_values():
    """Hypothesis draws sizes and series (one point, NaN, inf, huge, negative, equal values)
    for a log-scale and a linear plot; every build fills the panel and raises nothing."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from textual.app import App

    class PlotApp(App):
        def compose(self):
            yield CurvePlot("val perplexity", ylog=True, id="log")
            yield CurvePlot("loss", id="lin")

    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e308, 1e308),
                       st.sampled_from([0.0, -1.0, 1.0, 1e-300, 1e300, 11350021.6, 5.0]))
    steps = st.integers(0, 10**7)
    series = st.lists(st.tuples(steps, values), min_size=0, max_size=60).map(
        lambda pts: (sorted(p[0] for p in pts), [p[1] for p in pts]))
    equal = st.tuples(st.integers(1, 50), st.floats(-1e6, 1e6)).map(lambda t: (list(range(t[0])), [t[1]] * t[0]))
    sizes = st.tuples(st.integers(0, 240), st.integers(0, 70))

    app = PlotApp()
    async with app.run_test(size=(120, 40)):
        plots = list(app.query(CurvePlot))

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.one_of(series, equal), size=sizes, second=st.one_of(st.none(), series))
        def check(data, size, second):
            xs, ys = data
            for plot in plots:
                curves = [("a", xs, ys)] + ([("b", *second)] if second else [])
                plot.set_series(curves, object())
                for _ in range(2):  # a second build of the same figure (plotext's log-scale trap)
                    strips = plot.build_strips(*size)
                    w, h = size
                    assert len(strips) == (h if w > 0 and h > 0 else 0)
                    assert all(s.cell_length == w for s in strips)
                    assert plot.error is None, plot.error

        check()


# ---------------------------------------------------------------------------- one tokens/s
@pytest.mark.slow
async def test_tokens_per_s_agrees_in_app_exports_and_run_json(tmp_path):
    """One definition (runs.metrics.tokens_per_second: tokens seen ÷ training seconds): the
    app's live panel, `tui-lab export` and run.json's own figures give the same number."""
    from tui_lab.runs.metrics import tokens_per_second

    cfg_path = write_config(tmp_path, steps=30)
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg_path), "--quiet"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (run_json,) = (tmp_path / "runs").glob("tiny/*/run.json")
    info = json.loads(run_json.read_text())
    expected = info["tokens_seen"] / info["elapsed_s"]
    assert tokens_per_second(info["tokens_seen"], info["elapsed_s"]) == expected

    r = subprocess.run([sys.executable, "-m", "tui_lab", "export", "--runs-dir", str(tmp_path / "runs"), "--format",
                        "json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout) if isinstance(json.loads(r.stdout), list) else json.loads(r.stdout)["rows"]
    assert row["tokens_per_s"] == pytest.approx(expected, rel=1e-6)

    app = TuiLabApp(load_experiments(cfg_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).status == "finished", timeout=10,
                       what="the finished run")
        assert snap(app).tokens_per_s() == pytest.approx(expected, rel=1e-6)
        await wait_for(pilot, lambda: f"tokens/s {expected:,.0f}" in stats_text(app), timeout=5,
                       what="the panel's tokens/s")


async def test_plot_axes_one_point_and_integer_step_ticks():
    """One point: a window of one step after it (no x from -1.00 to 1.00) and a y range around
    it; steps are labelled with whole numbers (no 62.5)."""
    import re

    from textual.app import App

    from tui_lab.app.widgets.plots import int_ticks

    assert all(isinstance(t, int) for t in int_ticks(0, 250)) and int_ticks(0, 250)[-1] >= 250 - 50

    class PlotApp(App):
        def compose(self):
            yield CurvePlot("val perplexity", ylog=True, id="log")

    app = PlotApp()
    async with app.run_test(size=(60, 20)):
        plot = app.query_one(CurvePlot)
        plot.set_series([("val ppl", [0], [11350021.6])], 1)
        text = "\n".join(s.text for s in plot.build_strips(60, 20))
        x_labels = text.strip().split("\n")[-2].split()
        assert x_labels == ["0", "1"] and "-1" not in text and "1.00e+07" in text
        plot.set_series([("val ppl", [0, 125, 250], [1000.0, 300.0, 120.0])], 2)
        text = "\n".join(s.text for s in plot.build_strips(60, 20))
        x_labels = text.strip().split("\n")[-2].split()
        assert x_labels and all(re.fullmatch(r"[\d,]+", t) for t in x_labels), x_labels


async def test_a_long_series_is_thinned_before_plotting_keeping_its_ends():
    """100,000 steps reach plotext as at most MAX_POINTS evenly spaced points, first and last
    step kept, non-finite values and (on a log axis) values <= 0 dropped."""
    from textual.app import App

    from tui_lab.app.widgets.plots import MAX_POINTS

    class PlotApp(App):
        def compose(self):
            yield CurvePlot("train loss", id="lin")
            yield CurvePlot("val ppl", ylog=True, id="log")

    n = 100_000
    xs = list(range(n))
    ys = [float("nan") if i % 7 == 3 else (0.0 if i % 11 == 5 else 5.0 - i / n) for i in xs]
    app = PlotApp()
    async with app.run_test(size=(120, 40)):
        for plot in app.query(CurvePlot):
            plot.set_series([("s", xs, ys)], 1)
            ((_, px, py),) = plot._points()
            assert 100 <= len(px) <= MAX_POINTS and px[0] == 0 and px[-1] == n - 1
            assert px == sorted(px) and all(math.isfinite(y) for y in py)
            if plot.ylog:
                assert all(y == pytest.approx(math.log10(5.0 - x / n)) for x, y in zip(px, py))
            assert plot.error is None and len(plot.build_strips(60, 20)) == 20


async def test_a_new_best_in_the_run_panel_reaches_the_tables_without_waiting_for_a_scan(tmp_path, monkeypatch):
    """The panel reads run.json every 0.25 s, the tables at each store scan: when the selected
    run's best val ppl moves on, the app rescans at once, so the screen never shows two
    different "best" figures for long (the periodic scan is made 10 minutes here, so only that
    rescan can update the table within the wait)."""
    from tui_lab.app.screens import main as main_module
    from tui_lab.app.watch import StoreScanner

    class SlowScanner(StoreScanner):
        def __init__(self, runs_dir, on_scan, every_s=600.0):
            super().__init__(runs_dir, on_scan, every_s)

    monkeypatch.setattr(main_module, "StoreScanner", SlowScanner)
    cfg = load_experiments(write_config(tmp_path))
    run = live_run(tmp_path / "runs")
    atomic_write_json(run.run_path, {**run.read_run(), "best_val_ppl": 50.0})
    writer = MetricsWriter(run.metrics_path)
    writer.write("train", step=10, train_loss=4.0, lr=1e-3, tokens_per_s=1e4, elapsed_s=1.0)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        table = main_screen(app).query_one("#experiments", DataTable)
        assert "50.00" in str(table.get_row("tiny")[3])
        writer.write("eval", step=20, val_loss=3.6, val_ppl=36.6)
        atomic_write_json(run.run_path, {**run.read_run(), "best_val_ppl": 36.6, "step": 20})
        await wait_for(pilot, lambda: "36.60" in str(table.get_row("tiny")[3]), timeout=30,
                       what="the table's best ppl to follow the panel")
        assert "best 36.60" in stats_text(app)
    writer.close()


# ---------------------------------------------------------------------------- long histories
def _long_finished_run(runs_dir: Path, steps: int) -> list[dict]:
    run = live_run(runs_dir, status="finished")
    atomic_write_json(run.run_path, {**run.read_run(), "total_steps": steps, "step": steps, "best_val_ppl": 30.0})
    events = [{"event": "train", "time": T0 + s, "step": s, "epoch": 0, "train_loss": 9.0 - s / steps,
               "lr": 1e-3, "tokens_seen": s * 256, "tokens_per_s": 2000.0, "elapsed_s": float(s)}
              for s in range(1, steps + 1)]
    events += [{"event": "eval", "time": T0 + steps, "step": steps, "val_loss": 3.4, "val_ppl": 30.0,
                "elapsed_s": float(steps), "eval_s": 1.0}]
    run.metrics_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return events


@pytest.fixture
def small_preview(monkeypatch):
    """A history ≥ 40 kB is first read from its last 8 kB, then whole in 16 kB pieces."""
    import tui_lab.runs.follow as follow

    monkeypatch.setattr(follow, "PREVIEW_MIN_BYTES", 40_000)
    monkeypatch.setattr(follow, "PREVIEW_TAIL_BYTES", 8_000)
    monkeypatch.setattr(follow, "HISTORY_CHUNK_BYTES", 16_000)


async def test_a_long_history_shows_its_figures_first_and_its_curves_once_read_whole(tmp_path, small_preview,
                                                                                     monkeypatch):
    """The run panel shows the last step of a long finished run from its tail; meanwhile the
    plots say the history is being read (never a curve cut to its tail); then the whole curve."""
    import tui_lab.app.watch as watch

    monkeypatch.setattr(watch, "DISPLAY_WAIT_S", 60.0)  # only the app's "on screen" lets the watcher go on
    cfg = load_experiments(write_config(tmp_path))
    events = _long_finished_run(tmp_path / "runs", 3_000)
    drawn = []
    real_draw_tab = MainScreen.draw_tab

    def draw_tab(self, tab):
        real_draw_tab(self, tab)
        if tab == "tab-curves" and self.snapshot is not None and self.panels_ready:
            plot = self.query_one("#loss-plot", CurvePlot)
            drawn.append((self.snapshot.history_complete, self.query_one("#stats", RunStats).plain(),
                          plot.empty_message, [list(xs) for _, xs, _ in plot.series]))

    monkeypatch.setattr(MainScreen, "draw_tab", draw_tab)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: snap(app) is not None and snap(app).history_complete and drawn
                       and drawn[-1][0], timeout=20, what="the whole history")
        await pilot.pause()
        partial = [d for d in drawn if not d[0]]
        assert partial, "the tail was never shown on its own"
        for _, stats, message, xs in partial:
            assert "3,000/3,000" in stats and "30.00" in stats  # the last step and val ppl, from the tail
            assert message.startswith("reading the run's history") and all(not x for x in xs)
        steps = [e["step"] for e in events if e["event"] == "train"]
        assert drawn[-1][3][0] == steps  # then every step of the curve
        assert "3,000/3,000" in stats_text(app)


def test_the_watcher_reads_a_long_history_after_its_tail_is_on_screen(tmp_path, small_preview, monkeypatch):
    """With wait_for_display, the watcher posts the tail and reads no further until told that
    it is on screen (so reading 100,000 events never delays that frame); then the rest."""
    import threading

    import tui_lab.app.watch as watch

    monkeypatch.setattr(watch, "DISPLAY_WAIT_S", 60.0)
    _long_finished_run(tmp_path / "runs", 3_000)
    run = RunDir(tmp_path / "runs" / "tiny" / "20260103-000000-cccc")
    posted, whole = [], threading.Event()

    def on_update(r, s):
        posted.append(s)
        if s is not None and s.history_complete:
            whole.set()

    watcher = watch.RunWatcher(on_update, wait_for_display=True)
    watcher.follow(run)
    watcher.start()
    try:
        assert not whole.wait(1.0)  # the tail is posted, the rest waits for the display
        assert len(posted) == 1 and not posted[0].history_complete and posted[0].progress() == (3_000, 3_000)
        watcher.displayed()
        assert whole.wait(30)
        assert len(posted[-1].series("train", "train_loss")[0]) == 3_000
    finally:
        watcher.stop()


async def test_the_runs_list_shows_the_step_the_run_panel_shows(tmp_path):
    """run.json has the step of the last evaluation only; the runs list must not show step 0
    beside a panel at step 50 (one step figure on screen)."""
    from tui_lab.app.widgets import RunsTable

    cfg = load_experiments(write_config(tmp_path))
    run = live_run(tmp_path / "runs")
    atomic_write_json(run.run_path, {**run.read_run(), "step": 0})
    writer = MetricsWriter(run.metrics_path)
    writer.write("start", step=0, total_steps=1000)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_snapshot(pilot, app)
        table = main_screen(app).query_one("#runs", RunsTable)
        for step in (10, 50):
            writer.write("train", step=step, epoch=0, train_loss=4.0, lr=1e-3, tokens_seen=step * 256,
                         tokens_per_s=2000.0, elapsed_s=step / 10)
            await wait_for(pilot, lambda: f"{step}/1,000" in stats_text(app), what=f"the panel at step {step}")
            await wait_for(pilot, lambda: str(table.get_row(str(run.path))[2]).strip() == str(step),
                           what=f"the runs list at step {step}")
        writer.close()

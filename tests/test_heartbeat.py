"""Heartbeats: a run on another host reads as running while its heartbeat is fresh, as
interrupted once it is stale; a run on this host keeps the pid check."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


from tui_lab.runs import heartbeat
from tui_lab.runs.store import RunDir

OTHER_HOST = "gpu-node-17.cluster.example"


def remote_run(runs: Path, run_id: str, beat_age_s: float | None, host: str = OTHER_HOST) -> RunDir:
    path = runs / "tiny" / run_id
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"name": "tiny"}))
    (path / "run.json").write_text(json.dumps({
        "experiment": "tiny", "run_id": run_id, "status": "running", "host": host, "pid": 4242424,
        "proc_start": 1, "started_at": time.time() - 600, "step": 120, "total_steps": 1000}))
    if beat_age_s is not None:
        heartbeat.write_heartbeat(path, now=time.time() - beat_age_s)
    return RunDir(path)


def test_remote_run_with_a_fresh_heartbeat_reads_as_running(tmp_path):
    run = remote_run(tmp_path, "fresh", beat_age_s=2)
    assert run.read_run()["status"] == "running"


def test_remote_run_with_a_stale_heartbeat_reads_as_interrupted(tmp_path):
    run = remote_run(tmp_path, "stale", beat_age_s=heartbeat.stale_after_s() + 30)
    assert run.read_run()["status"] == "interrupted"


def test_remote_run_without_heartbeat_falls_back_to_run_json_age(tmp_path):
    run = remote_run(tmp_path, "old", beat_age_s=None)
    assert run.read_run()["status"] == "running"  # run.json was just written
    old = time.time() - heartbeat.stale_after_s() - 30
    os.utime(run.run_path, (old, old))
    assert run.read_run()["status"] == "interrupted"


def test_threshold_comes_from_the_environment(tmp_path, monkeypatch):
    run = remote_run(tmp_path, "r", beat_age_s=20)
    monkeypatch.setenv("TUI_LAB_HEARTBEAT_STALE_S", "10")
    assert run.read_run()["status"] == "interrupted"
    monkeypatch.setenv("TUI_LAB_HEARTBEAT_STALE_S", "30")
    assert run.read_run()["status"] == "running"


def test_this_host_keeps_the_pid_check_even_with_a_fresh_heartbeat(tmp_path):
    run = remote_run(tmp_path, "local", beat_age_s=0, host=socket.gethostname())  # pid 4242424 is not alive
    assert run.read_run()["status"] == "interrupted"


def test_heartbeat_thread_beats_until_stopped(tmp_path):
    beat = heartbeat.HeartbeatThread(tmp_path, interval=0.05).start()
    first = heartbeat.read_heartbeat(tmp_path)
    assert first is not None and abs(first - time.time()) < 5
    deadline = time.monotonic() + 10
    while heartbeat.read_heartbeat(tmp_path) == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert heartbeat.read_heartbeat(tmp_path) > first
    beat.stop()
    stopped = heartbeat.read_heartbeat(tmp_path)
    time.sleep(0.2)
    assert heartbeat.read_heartbeat(tmp_path) == stopped
    obj = json.loads((tmp_path / "heartbeat").read_text())
    assert obj["host"] == socket.gethostname() and obj["pid"] == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat"]  # no temp files left


async def test_app_shows_remote_runs_by_their_heartbeat_with_the_host(tmp_path):
    """The app's experiments table and run panel: a run on another host with a fresh heartbeat
    is running (host shown), one with a stale heartbeat is interrupted."""
    from textual.widgets import DataTable

    from tiny import tiny_toml
    from tui_lab.app.app import TuiLabApp
    from tui_lab.app.widgets import RunStats
    from tui_lab.config import load_experiments
    from waits import wait_for

    cfg = tmp_path / "experiments.toml"
    cfg.write_text('[settings]\nruns_dir = "runs"\n\n' + tiny_toml("fresh") + tiny_toml("stale"))
    remote_run(tmp_path / "runs" / "x", "r1", beat_age_s=1).path.rename(_mk(tmp_path / "runs" / "fresh") / "r1")
    remote_run(tmp_path / "runs" / "y", "r2", beat_age_s=heartbeat.stale_after_s() + 60).path.rename(
        _mk(tmp_path / "runs" / "stale") / "r2")
    for name, rid in (("fresh", "r1"), ("stale", "r2")):  # the experiment named in run.json
        path = tmp_path / "runs" / name / rid / "run.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "experiment": name, "nnodes": 2}))
    heartbeat.write_heartbeat(tmp_path / "runs" / "fresh" / "r1")  # fresh again after the edit
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.main.query_one("#experiments", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2 and str(table.get_row("fresh")[1]) == "running",
                       what="the fresh remote run as running")
        assert str(table.get_row("stale")[1]) == "interrupted"
        stats = app.main.query_one("#stats", RunStats)
        table.focus()
        table.move_cursor(row=table.get_row_index("fresh"))
        await wait_for(pilot, lambda: app.main.snapshot is not None and app.main.snapshot.run.run_id == "r1",
                       what="the fresh run selected")
        await wait_for(pilot, lambda: f"on {OTHER_HOST} +1 nodes" in stats.plain() and "running" in stats.plain(),
                       what="host and status in the run panel")
        table.move_cursor(row=table.get_row_index("stale"))
        await wait_for(pilot, lambda: app.main.snapshot is not None and app.main.snapshot.run.run_id == "r2",
                       what="the stale run selected")
        await wait_for(pilot, lambda: "interrupted" in stats.plain() and OTHER_HOST in stats.plain(),
                       what="the stale run as interrupted in the panel")


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

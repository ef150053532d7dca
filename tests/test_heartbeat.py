"""Heartbeats: a run on another host reads as running while its heartbeat is fresh, as
interrupted once it is stale; a run on this host keeps the pid check."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

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

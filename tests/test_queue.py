"""The run queue: its file under concurrent writers, one runner at a time, runs one after
another (also after a run someone else started), and `tui-lab queue`."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tui_lab.cli import app as cli
from tui_lab.atomic import atomic_write_json
from tui_lab.runs import RUN_FORMAT, RunDir, create_time, queue

from tiny import tiny_toml
from waits import wait_until


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text('[settings]\nruns_dir = "runs"\n\n' + tiny_toml("first") + tiny_toml("second"))
    return path


def test_add_pop_remove_clear_round_trip(tmp_path, cfg):
    runs = tmp_path / "runs"
    assert queue.read_queue(runs) == [] and queue.pop(runs) is None
    queue.add(runs, "first", cfg, ["train.lr=0.01"], "cpu")
    entries = queue.add(runs, "second", cfg)
    assert [e["experiment"] for e in entries] == ["first", "second"]
    assert entries[0]["overrides"] == ["train.lr=0.01"] and entries[0]["device"] == "cpu"
    assert entries[0]["config"] == str(cfg.resolve()) and entries[0]["id"] != entries[1]["id"]
    on_disk = json.loads((runs / "queue.json").read_text())  # plain JSON, readable by anyone
    assert [e["experiment"] for e in on_disk["entries"]] == ["first", "second"]
    assert queue.remove(runs, entries[1]["id"]) and not queue.remove(runs, entries[1]["id"])
    assert queue.pop(runs)["experiment"] == "first" and queue.read_queue(runs) == []
    queue.add(runs, "first", cfg)
    queue.add(runs, "first", cfg)
    assert queue.clear(runs) == 2 and queue.read_queue(runs) == []


def test_queue_file_has_a_format_and_files_without_one_still_read(tmp_path, cfg):
    runs = tmp_path / "runs"
    queue.add(runs, "first", cfg)
    assert json.loads((runs / "queue.json").read_text())["format"] == queue.QUEUE_FORMAT == 1
    (runs / "queue.json").write_text('{"entries": [{"id": "x", "experiment": "second", "config": "c"}]}')
    assert [e["experiment"] for e in queue.read_queue(runs)] == ["second"]  # a file from before the field
    queue.add(runs, "first", cfg)
    assert [e["experiment"] for e in queue.read_queue(runs)] == ["second", "first"]


def test_a_garbled_queue_file_reads_as_empty(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "queue.json").write_text("{not json")
    assert queue.read_queue(runs) == []
    (runs / "queue.json").write_text('{"entries": [{"experiment": "a"}, 3, {"no": "name"}]}')
    assert queue.read_queue(runs) == [{"experiment": "a"}]


def _add_many(runs: str, cfg: str, who: int, n: int) -> None:
    for i in range(n):
        queue.add(Path(runs), f"e{who}-{i}", Path(cfg))


def test_concurrent_writers_lose_no_entry(tmp_path, cfg):
    """Four processes add 25 entries each while this one pops: every entry is seen once."""
    runs = tmp_path / "runs"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(str(runs), str(cfg), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    popped = []
    while any(p.is_alive() for p in procs) or queue.read_queue(runs):
        e = queue.pop(runs)
        if e:
            popped.append(e["experiment"])
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert sorted(popped) == sorted(f"e{w}-{i}" for w in range(4) for i in range(25))


def _fake_runs(monkeypatch, log: list, seconds: float = 0.4, watch: tuple = ()):
    """launch_detached replaced by a process that plays a short run: run.json says running
    (with its pid) while it sleeps, then finished. Each launch logs (experiment, time, proc,
    whether every earlier run's process and every process in ``watch`` had ended by then)."""
    def fake_launch(experiment, *, config, runs_dir, cwd=None, **kw):
        ended = all(p.poll() is not None for p in [e[2] for e in log] + list(watch))
        run = RunDir(Path(runs_dir) / experiment / f"2026010{len(log)}-000000-{len(log):04x}")
        run.path.mkdir(parents=True)
        script = (f"import json, os, socket, time; p = {str(run.run_path)!r}\n"
                  "w = lambda s: open(p, 'w').write(json.dumps({'status': s, 'pid': os.getpid(), "
                  "'host': socket.gethostname(), 'started_at': time.time()}))\n"
                  f"w('running'); time.sleep({seconds}); w('finished')\n")
        proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
        log.append((experiment, time.monotonic(), proc, ended))
        return run, proc

    monkeypatch.setattr(queue, "launch_detached", fake_launch)


def test_runner_runs_entries_one_after_another_then_retires(tmp_path, cfg, monkeypatch):
    runs = tmp_path / "runs"
    log: list = []
    _fake_runs(monkeypatch, log)
    queue.add(runs, "first", cfg)
    queue.add(runs, "second", cfg)
    n = queue.run_queue(runs, poll_s=0.05)
    assert n == 2 and [e[0] for e in log] == ["first", "second"]
    assert log[1][3]  # the second started only after the first's process had ended
    assert queue.read_queue(runs) == [] and not queue.runner_alive(runs)
    assert not (runs / queue.RUNNER_FILE).exists()


def test_runner_picks_up_entries_added_while_it_runs(tmp_path, cfg, monkeypatch):
    runs = tmp_path / "runs"
    log: list = []
    _fake_runs(monkeypatch, log, seconds=0.5)
    queue.add(runs, "first", cfg)
    t = threading.Timer(0.2, lambda: queue.add(runs, "second", cfg))
    t.start()
    assert queue.run_queue(runs, poll_s=0.05) == 2
    assert [e[0] for e in log] == ["first", "second"]


def test_only_one_runner_at_a_time(tmp_path, cfg, monkeypatch):
    runs = tmp_path / "runs"
    log: list = []
    _fake_runs(monkeypatch, log, seconds=1.0)
    queue.add(runs, "first", cfg)
    queue.add(runs, "second", cfg)
    first = threading.Thread(target=queue.run_queue, args=(runs, 0.05))
    first.start()
    wait_until(lambda: queue.runner_alive(runs), timeout=5, what="the first runner")
    info = queue.runner_info(runs)
    assert info["pid"] == os.getpid() and info["format"] == RUN_FORMAT and info["proc_start"] == create_time()
    assert queue.run_queue(runs, poll_s=0.05) == 0  # the lock is taken: a second runner leaves at once
    first.join()
    assert [e[0] for e in log] == ["first", "second"]


def test_a_dead_runners_pid_file_does_not_count(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    atomic_write_json(runs / queue.RUNNER_FILE, {"pid": dead.pid, "current": None})
    assert queue.runner_info(runs) is None and not queue.runner_alive(runs)


def test_runner_waits_for_a_run_started_outside_the_queue(tmp_path, cfg, monkeypatch):
    """A run started with `t` (or `tui-lab train`) holds the device: the queue goes next."""
    runs = tmp_path / "runs"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    busy = RunDir(runs / "first" / "20251231-000000-0000")
    busy.path.mkdir(parents=True)
    atomic_write_json(busy.run_path, {"status": "running", "pid": other.pid, "host": socket.gethostname(),
                                      "started_at": time.time()})
    log: list = []
    _fake_runs(monkeypatch, log, seconds=0.1, watch=(other,))
    queue.add(runs, "second", cfg)
    seen = []
    done = threading.Event()

    def watch() -> None:  # what `queue list` and the app would read meanwhile
        while not done.is_set():
            seen.append(queue.runner_info(runs))
            done.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert queue.run_queue(runs, poll_s=0.05) == 1
    done.set()
    watcher.join()
    other.wait()
    assert log[0][3]  # started only once the other run's process had ended
    assert any(s and s.get("waiting_for") == str(busy.path) for s in seen)


def test_cli_add_list_clear(tmp_path, cfg, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(cli, ["queue", "add", "first", "second", "--no-start", "--set", "train.max_steps=7"])
    assert r.exit_code == 0, r.output
    assert "first, second" in r.output
    entries = queue.read_queue(tmp_path / "runs")
    assert [e["experiment"] for e in entries] == ["first", "second"]
    assert entries[0]["overrides"] == ["train.max_steps=7"]
    r = runner.invoke(cli, ["queue", "list"])
    assert r.exit_code == 0 and "runner: not running" in r.output
    assert "1. first --set train.max_steps=7" in r.output and "2. second" in r.output
    r = runner.invoke(cli, ["queue", "add", "nope", "--no-start"])
    assert r.exit_code == 2 and len(queue.read_queue(tmp_path / "runs")) == 2  # validated first
    r = runner.invoke(cli, ["queue", "clear"])
    assert r.exit_code == 0 and "2 entries dropped" in r.output
    r = runner.invoke(cli, ["queue", "list"])
    assert "queue is empty" in r.output


@pytest.mark.slow
def test_cli_queue_trains_for_real_and_outlives_its_starter(tmp_path, cfg):
    """`tui-lab queue add` starts a detached runner that trains both experiments in order."""
    (tmp_path / "experiments.toml").write_text(
        '[settings]\nruns_dir = "runs"\n\n' + tiny_toml("first", max_steps=20) + tiny_toml("second", max_steps=20))
    runs = tmp_path / "runs"
    try:
        r = subprocess.run([sys.executable, "-m", "tui_lab", "queue", "add", "first", "second"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "started the queue runner" in r.stdout
        def both_finished() -> bool:
            infos = [json.loads(p.read_text()) for p in runs.glob("*/*/run.json")]
            return len(infos) == 2 and all(i.get("status") == "finished" for i in infos)

        wait_until(both_finished, timeout=150, what="both queued runs", poll_s=0.5)
        infos = sorted((json.loads(p.read_text()) for p in runs.glob("*/*/run.json")), key=lambda i: i["started_at"])
        assert [(i["experiment"], i["status"]) for i in infos] == [("first", "finished"), ("second", "finished")]
        assert infos[0]["ended_at"] <= infos[1]["started_at"]
        wait_until(lambda: not queue.runner_alive(runs), timeout=10, what="the runner to retire")
        assert "queue empty after 2 run(s)" in (runs / "queue.log").read_text()
    finally:
        info = queue.runner_info(runs)
        if info:
            os.killpg(info["pid"], signal.SIGKILL)
        for p in runs.glob("*/*/run.json"):
            pid = json.loads(p.read_text()).get("pid")
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, TypeError):
                pass

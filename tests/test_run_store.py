"""The run store: atomic files, tolerant metrics reading, stale-pid detection (no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tui_lab.atomic import atomic_write, atomic_write_json
from tui_lab.runs import (
    MetricsWriter,
    RunDir,
    collapse_resumes,
    create_run,
    list_runs,
    pid_alive,
    read_jsonl,
)


def test_read_jsonl_ignores_a_partial_last_line_until_it_is_complete(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"event":"train","step":1}\n{"event":"train","st')
    events, offset = read_jsonl(path)
    assert [e["step"] for e in events] == [1]
    with open(path, "a") as fh:
        fh.write('ep":2}\n{"event":"eval","step":2}\n')
    more, offset2 = read_jsonl(path, offset)
    assert [e["step"] for e in more] == [2, 2]
    assert offset2 == path.stat().st_size


def test_read_jsonl_skips_garbled_lines_and_missing_file(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"step":1}\n\xff\xfe garbage\n[1,2]\n{"step":3}\n')
    events, _ = read_jsonl(path)
    assert [e["step"] for e in events] == [1, 3]
    assert read_jsonl(tmp_path / "absent.jsonl") == ([], 0)


def test_write_atomic_leaves_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "run.json"
    atomic_write_json(path, {"status": "running"})

    try:
        atomic_write(path, object())  # type: ignore[arg-type]  # not bytes: fails mid-write
    except (TypeError, AttributeError):
        pass
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left behind


def test_atomic_writes_get_the_umask_mode_and_keep_an_existing_files_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "new.json", "{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        (tmp_path / "kept.json").write_text("old")
        os.chmod(tmp_path / "kept.json", 0o640)
        atomic_write(tmp_path / "kept.json", "new")
        assert (tmp_path / "kept.json").stat().st_mode & 0o777 == 0o640
        assert (tmp_path / "kept.json").read_text() == "new"
    finally:
        os.umask(old)


def test_metrics_writer_appends_whole_lines(tmp_path):
    w = MetricsWriter(tmp_path / "metrics.jsonl")
    for i in range(100):
        w.write("train", step=i, train_loss=1.0 / (i + 1))
    w.close()
    events, _ = read_jsonl(tmp_path / "metrics.jsonl")
    assert [e["step"] for e in events] == list(range(100))
    assert all(e["event"] == "train" and "time" in e for e in events)


def test_collapse_resumes_drops_superseded_events():
    events = [
        {"event": "start", "step": 0},
        {"event": "train", "step": 10},
        {"event": "eval", "step": 20},
        {"event": "train", "step": 30},  # written after the step-20 checkpoint, then killed
        {"event": "resume", "step": 20},
        {"event": "train", "step": 30},
    ]
    steps = [(e["event"], e["step"]) for e in collapse_resumes(events)]
    assert steps == [("start", 0), ("train", 10), ("eval", 20), ("resume", 20), ("train", 30)]


def test_create_run_never_reuses_a_folder(tmp_path):
    runs = {create_run(tmp_path, "exp1").path for _ in range(20)}
    assert len(runs) == 20
    try:
        first = create_run(tmp_path, "exp1", "fixed")
        atomic_write_json(first.run_path, {"status": "running"})
        create_run(tmp_path, "exp1", "fixed")
    except FileExistsError:
        pass
    else:
        raise AssertionError("a second run with the same id must be refused")


def test_dead_process_reads_as_interrupted_and_live_one_as_running(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    import socket

    dead = RunDir(tmp_path / "e" / "dead")
    dead.path.mkdir(parents=True)
    atomic_write_json(dead.run_path, {"status": "running", "pid": proc.pid, "host": socket.gethostname()})
    live = RunDir(tmp_path / "e" / "live")
    live.path.mkdir(parents=True)
    atomic_write_json(live.run_path, {"status": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                      "started_at": 1})
    assert not pid_alive(proc.pid) or proc.pid == os.getpid()
    assert dead.read_run()["status"] == "interrupted"
    assert live.read_run()["status"] == "running"
    statuses = {s.run.run_id: s.status for s in list_runs(tmp_path)}
    assert statuses == {"dead": "interrupted", "live": "running"}


def test_zombie_child_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    # do not reap it yet: it is a zombie once it exits
    import time

    for _ in range(100):
        if not pid_alive(proc.pid):
            break
        time.sleep(0.05)
    assert not pid_alive(proc.pid)
    proc.wait()

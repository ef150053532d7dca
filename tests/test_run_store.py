"""The run store: atomic files, tolerant metrics reading, stale-pid detection (no torch)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from waits import wait_until

from tui_lab.atomic import atomic_write, atomic_write_json
from tui_lab.runs import (
    METRICS_FORMAT,
    RUN_FORMAT,
    STATUSES,
    MetricsWriter,
    RunDir,
    Status,
    collapse_resumes,
    create_run,
    create_time,
    file_format,
    git_commit,
    is_live,
    list_runs,
    pid_alive,
    read_json,
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


def test_read_jsonl_one_event_per_line_whatever_the_lines_hold(tmp_path):
    """The whole chunk is parsed at once when every line is a JSON value; a line holding two
    values, a blank line or a bare number never passes as events, and the order is kept."""
    path = tmp_path / "m.jsonl"
    path.write_text('{"step":1}\n{"step":2}, {"step":99}\n\n7\n{"step":3}\n')
    events, offset = read_jsonl(path)
    assert [e["step"] for e in events] == [1, 3] and offset == path.stat().st_size
    path.write_text("".join(f'{{"event":"train","step":{i}}}\n' for i in range(1000)))
    assert [e["step"] for e in read_jsonl(path)[0]] == list(range(1000))


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
    wait_until(lambda: not pid_alive(proc.pid), timeout=10, what="the child to exit (a zombie)")
    assert not pid_alive(proc.pid)
    proc.wait()


# ---------------------------------------------------------------------------- statuses, processes
def test_status_enum_names_every_status_and_which_are_live():
    assert set(STATUSES) == {"starting", "running", "finished", "stopped", "failed", "diverged", "interrupted",
                             "imported"}
    assert {s.value for s in Status if s.is_live} == {"starting", "running"}
    assert is_live("starting") and is_live("running") and not is_live("finished") and not is_live(None)
    assert not is_live("nonsense") and Status.of("nonsense") is None
    assert Status.STOPPED.is_resumable and not Status.FINISHED.is_resumable
    assert Status.RUNNING == "running"  # a str: compares with what run.json holds


def _run_json(tmp_path, name, **info):
    run = RunDir(tmp_path / "e" / name)
    run.path.mkdir(parents=True)
    atomic_write_json(run.run_path, {"status": "running", "host": socket.gethostname(), **info})
    return run


def test_a_reused_pid_reads_as_interrupted(tmp_path):
    """A run.json naming this process's pid but another creation time: the pid was reused."""
    me = create_time()
    assert me is not None and abs(me - psutil.Process().create_time()) < 1e-6
    same = _run_json(tmp_path, "same", format=RUN_FORMAT, pid=os.getpid(), proc_start=me)
    reused = _run_json(tmp_path, "reused", format=RUN_FORMAT, pid=os.getpid(), proc_start=me - 3600)
    assert same.read_run()["status"] == "running"
    assert reused.read_run()["status"] == "interrupted"


def test_run_json_without_format_is_read_as_version_1(tmp_path):
    """Files written before the format field: proc_start in Linux clock ticks since boot."""
    if not sys.platform.startswith("linux"):
        pytest.skip("format-1 files were written on Linux only (clock ticks from /proc)")
    ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    old_same = _run_json(tmp_path, "old-same", pid=os.getpid(), proc_start=ticks)
    old_reused = _run_json(tmp_path, "old-reused", pid=os.getpid(), proc_start=ticks - 100_000)
    assert file_format(read_json(old_same.run_path)) == 1
    assert old_same.read_run()["status"] == "running"
    assert old_reused.read_run()["status"] == "interrupted"


def test_writers_stamp_their_format(tmp_path):
    run = create_run(tmp_path, "e")
    info = run.update_run(status="running")
    assert info["format"] == RUN_FORMAT and read_json(run.run_path)["format"] == RUN_FORMAT
    w = MetricsWriter(run.metrics_path)
    w.write("start", step=0)
    w.write("train", step=1)
    w.close()
    events, _ = read_jsonl(run.metrics_path)
    assert events[0]["format"] == METRICS_FORMAT and "format" not in events[1]


def test_git_commit_reads_the_checkout_this_code_runs_from():
    """``git rev-parse`` (a worktree's ``.git`` is a file, which a hand-written reader missed)."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = Path(__file__).resolve().parents[1]
    expected = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if expected.returncode != 0:
        pytest.skip("the tests do not run from a git checkout")
    assert git_commit() == expected.stdout.strip()
    assert git_commit(Path("/")) is None or len(git_commit(Path("/"))) == 40


def test_launcher_reserves_its_folder_through_create_run(tmp_path, monkeypatch):
    """Run folders are made in one place (store.create_run), also for the app's launches."""
    import tui_lab.runs.launcher as launcher

    made = []
    real = launcher.create_run
    monkeypatch.setattr(launcher, "create_run", lambda *a, **k: made.append(a) or real(*a, **k))
    cfg = tmp_path / "experiments.toml"
    cfg.write_text("")
    run, proc = launcher.launch_detached("nothing", config=cfg, runs_dir=tmp_path / "runs")
    proc.wait()  # `train nothing` fails at once (no such experiment): only the folder matters here
    assert made and run.path.parent == tmp_path / "runs" / "nothing" and run.log_path.is_file()

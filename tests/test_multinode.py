"""Multi-node training on one machine: two `tui-lab train` invocations as two nodes (gloo, c10d).

Each "node" is its own ``tui-lab train --nnodes 2 --node-rank R --rdzv-endpoint 127.0.0.1:PORT``
process tree (its own torchrun agent and worker), exactly what two machines would run.
Timeouts are short here through the documented environment variables, so a failure is an
error within seconds, never a hang: ``TUI_LAB_DIST_TIMEOUT_S`` (process group),
``TUI_LAB_RDZV_TIMEOUT_S`` (torchrun's rendezvous join) and ``TUI_LAB_SHARED_FS_TIMEOUT_S``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_lab.runs import RunDir, load_history

from tiny import tiny_toml

SHORT_TIMEOUTS = {"TUI_LAB_DIST_TIMEOUT_S": "60", "TUI_LAB_RDZV_TIMEOUT_S": "120",
                  "TUI_LAB_SHARED_FS_TIMEOUT_S": "20", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(cfg: Path, runs: Path, port: int, rank: int, *extra: str, env: dict | None = None,
         wrap: list[str] | None = None) -> subprocess.Popen:
    cmd = [*(wrap or []), sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir", str(runs),
           "--device", "cpu", "--quiet", "--nnodes", "2", "--node-rank", str(rank),
           "--rdzv-endpoint", f"127.0.0.1:{port}", "--nproc-per-node", "1", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **SHORT_TIMEOUTS, **(env or {})}, start_new_session=True)


def single(cfg: Path, runs: Path, *extra: str) -> RunDir:
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir",
                        str(runs), "--device", "cpu", "--quiet", *extra], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (path,) = list((runs / "tiny").iterdir())
    return RunDir(path)


def losses(run: RunDir, event: str, key: str) -> dict[int, float]:
    return {e["step"]: e[key] for e in load_history(run) if e["event"] == event}


def assert_same_curve(a: RunDir, b: RunDir) -> None:
    la, lb = losses(a, "train", "train_loss"), losses(b, "train", "train_loss")
    assert sorted(la) == sorted(lb) and la, (la, lb)
    for step in la:  # stated tolerance: 1e-4 relative (float reduction order differs across ranks)
        assert lb[step] == pytest.approx(la[step], rel=1e-4), (step, la, lb)


def kill_tree(proc: subprocess.Popen) -> None:
    """kill -9 a node: its tui-lab process, torchrun agent and workers (workers run in their own
    sessions, so the process group alone would leave them behind)."""
    import psutil

    procs = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml(batch_size=8, max_steps=10, eval_every=10, log_every=5))
    return path


@pytest.mark.slow
def test_two_nodes_on_one_machine_match_one_process_with_the_same_global_batch(tmp_path, cfg):
    base = single(cfg, tmp_path / "single")
    runs, port = tmp_path / "multi", free_port()
    n0 = node(cfg, runs, port, 0, "--set", "train.batch_size=4")
    n1 = node(cfg, runs, port, 1, "--set", "train.batch_size=4")
    out0, err0 = n0.communicate(timeout=600)
    out1, err1 = n1.communicate(timeout=600)
    assert n0.returncode == 0, err0
    assert n1.returncode == 0, err1
    (path,) = list((runs / "tiny").iterdir())  # one run folder, written by node 0
    run = RunDir(path)
    info = json.loads(run.run_path.read_text())
    assert info["status"] == "finished" and info["world_size"] == 2
    assert info["nnodes"] == 2 and info["global_batch_size"] == 8
    assert str(run.path) in out0
    assert_same_curve(base, run)
    va, vb = losses(base, "eval", "val_loss"), losses(run, "eval", "val_loss")
    assert vb[10] == pytest.approx(va[10], rel=1e-4)
    steps = [e["step"] for e in load_history(run) if e["event"] == "train"]
    assert steps == sorted(set(steps))  # one writer: no duplicate events
    # --resume checks the world size across nodes: one process cannot continue a 2-node run
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--device", "cpu",
                        "--quiet", "--resume", str(run.path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "trained with 2 processes in all, this job has 1" in r.stderr and "--nnodes" in r.stderr


@pytest.mark.slow
def test_a_node_killed_mid_run_fails_the_run_naming_the_lost_node(tmp_path):
    cfg = tmp_path / "experiments.toml"
    cfg.write_text(tiny_toml(batch_size=4, max_steps=100000, eval_every=1000, log_every=1))
    runs, port = tmp_path / "runs", free_port()
    n0 = node(cfg, runs, port, 0)
    n1 = node(cfg, runs, port, 1)
    deadline = time.monotonic() + 300
    run = None
    while time.monotonic() < deadline:  # wait until training steps are logged
        folders = list((runs / "tiny").glob("*")) if (runs / "tiny").is_dir() else []
        if folders and any(e["event"] == "train" for e in load_history(RunDir(folders[0]))):
            run = RunDir(folders[0])
            break
        assert n0.poll() is None and n1.poll() is None, (n0.stderr.read() if n0.poll() is not None else "",
                                                          n1.stderr.read() if n1.poll() is not None else "")
        time.sleep(0.5)
    assert run is not None, "no training step within 300 s"
    kill_tree(n1)
    n1.wait(timeout=30)
    _, err0 = n0.communicate(timeout=240)  # not a hang: node 0 ends on its own
    assert n0.returncode != 0
    info = run.read_run()
    assert info["status"] in ("failed", "interrupted"), info
    assert "node 1" in (info.get("message") or ""), info
    assert "node 1" in err0


def can_unshare_mounts() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
def test_a_node_that_cannot_see_the_run_folder_fails_with_a_clear_error(tmp_path, cfg):
    """Node 1 runs in its own mount namespace with an empty tmpfs over the runs folder: a node
    without the shared filesystem (same path, different contents)."""
    if not can_unshare_mounts():
        pytest.skip("needs `unshare --mount` (root or CAP_SYS_ADMIN) to give node 1 its own view of the runs folder")
    runs, port = tmp_path / "runs", free_port()
    runs.mkdir()
    n0 = node(cfg, runs, port, 0)
    n1 = node(cfg, runs, port, 1, wrap=["unshare", "--mount", "sh", "-c",
                                        f'mount -t tmpfs none "{runs}" && exec "$@"', "sh"])
    _, err0 = n0.communicate(timeout=300)
    _, err1 = n1.communicate(timeout=300)
    assert n0.returncode != 0 and n1.returncode != 0, (err0, err1)
    for err in (err0, err1):  # every node stops with the same message naming the blind node
        assert "node 1" in err and "cannot see the run folder" in err and "shares" in err, err
        assert "Traceback" not in err
    (path,) = list((runs / "tiny").iterdir())
    info = RunDir(path).read_run()
    assert info["status"] == "failed" and "cannot see the run folder" in info["message"]


@pytest.mark.parametrize("settings, args, message", [
    ("[settings.distributed]\nnnodes = 2\n", [], "--nnodes 2: give --rdzv-endpoint HOST:PORT"),
    ("", ["--nnodes", "2", "--rdzv-endpoint", "node0"], "--rdzv-endpoint 'node0': expected HOST:PORT"),
    ("[settings.distributed]\nnnodes = 2\nrdzv_endpoint = \"127.0.0.1:1\"\n", ["--node-rank", "2"],
     "--node-rank 2: must be 0 to 1 (--nnodes 2)"),
    ("[settings.distributed]\nnodes = 2\n", [], "nodes"),
])
def test_multinode_options_and_settings_are_checked_before_anything_starts(tmp_path, settings, args, message):
    cfg = tmp_path / "experiments.toml"
    cfg.write_text(settings + "\n" + tiny_toml(max_steps=2))
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir",
                        str(tmp_path / "runs"), "--device", "cpu", "--quiet", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()

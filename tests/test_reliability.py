"""Faults injected for real: kill -9, SIGHUP, SIGINT/SIGTERM, NaN loss, write errors, two runs
at once, out of memory; every fault must lose nothing a user can resume from."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tui_lab.runs import RunDir, load_history, pid_alive, read_jsonl
from tui_lab.runs.launcher import launch_detached, stop_run, wait_for_status
from tui_lab.models.checkpoint import load_model
from tui_lab.train.state import load_train_state

from tiny import tiny_toml
from waits import wait_until

ROOT = Path(__file__).resolve().parents[1]
FAULT_ENTRY = str(Path(__file__).resolve().parent / "fault_entry.py")


def config(tmp_path: Path, steps: int = 100000, eval_every: int = 10) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml(max_steps=steps, eval_every=eval_every, eval_max_tokens=1024))
    return path


def train_proc(cfg: Path, runs: Path, run_id: str, *extra: str, env=None, preexec=None,
               nan_step: int | None = None) -> subprocess.Popen:
    """``tui-lab train tiny`` in its own session; ``nan_step``: through tests/fault_entry.py
    with a NaN loss injected at that step."""
    entry = [FAULT_ENTRY, "--nan-step", str(nan_step)] if nan_step else ["-m", "tui_lab"]
    return subprocess.Popen(
        [sys.executable, *entry, "train", "tiny", "--config", str(cfg), "--runs-dir", str(runs),
         "--run-id", run_id, "--quiet", "--device", "cpu", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **(env or {})}, preexec_fn=preexec)


def eval_steps(run: RunDir) -> list[int]:
    return [e["step"] for e in load_history(run) if e["event"] == "eval"]


@pytest.mark.slow
def test_kill_9_at_random_moments_never_corrupts_and_resumes(tmp_path):
    """20 trials: SIGKILL at a random moment (during start-up, training, evaluation or a
    checkpoint write); the run then reads 'interrupted', its files stay readable, every
    checkpoint loads, and --resume continues with the same step numbering."""
    cfg = config(tmp_path, steps=100000, eval_every=10)
    runs = tmp_path / "runs"
    rng = random.Random(1234)
    resumed = 0
    for trial in range(20):
        run = RunDir(runs / "tiny" / f"trial{trial:02d}")
        p = train_proc(cfg, runs, run.run_id)
        if trial % 4 == 0:  # some kills land before the first checkpoint, in start-up
            time.sleep(rng.uniform(0.2, 2.0))
        else:
            wait_until(lambda: (run.checkpoint_dir / "last.state.pt").exists(), 90, "a first checkpoint")
            time.sleep(rng.uniform(0.0, 1.5))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        info = run.read_run()
        assert info.get("status") in (None, "interrupted"), info  # never "running" once the process is gone
        events, _ = read_jsonl(run.metrics_path)  # a partial last line is ignored, never an error
        assert all(isinstance(e, dict) for e in events)
        for name in ("best.safetensors", "last.safetensors"):
            if (run.checkpoint_dir / name).exists():
                load_model(run.checkpoint_dir / name)  # raises if corrupt
        if (run.checkpoint_dir / "last.state.pt").exists():
            state = load_train_state(run.checkpoint_dir / "last.state.pt")
            ckpt_step = state["progress"]["step"]
            if trial % 5 == 1:
                resumed += 1
                r = subprocess.run([sys.executable, FAULT_ENTRY, "--nan-step", str(ckpt_step + 21), "train", "tiny",
                                    "--config", str(cfg), "--resume", str(run.path), "--quiet", "--device", "cpu"],
                                   capture_output=True, text=True, timeout=300)
                assert r.returncode == 1 and run.read_run()["status"] == "diverged", r.stderr  # ended by the NaN
                steps = [e["step"] for e in load_history(run) if e["event"] == "train"]
                assert steps == sorted(set(steps)), "step numbering must continue without repeats"
                resume = [e for e in load_history(run) if e["event"] == "resume"][-1]
                assert resume["step"] == ckpt_step
    assert resumed >= 3


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_gracefully_with_a_checkpoint(tmp_path, sig):
    cfg = config(tmp_path, eval_every=1000)  # no evaluation checkpoint before the stop
    runs = tmp_path / "runs"
    run = RunDir(runs / "tiny" / "r")
    p = train_proc(cfg, runs, "r")
    wait_until(lambda: any(e["event"] == "train" for e in read_jsonl(run.metrics_path)[0]), 90, "training")
    os.kill(p.pid, sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == (130 if sig == signal.SIGINT else 0), err  # Ctrl-C: 130, so scripts can tell
    info = run.read_run()
    assert info["status"] == "stopped" and "stopped by signal" in info["message"]
    state = load_train_state(run.checkpoint_dir / "last.state.pt")
    assert state["progress"]["step"] == info["step"] > 0
    load_model(run.checkpoint_dir / "last.safetensors")


@pytest.mark.slow
def test_sighup_to_the_app_leaves_training_running(tmp_path):
    """The app's process group gets SIGHUP (the SSH connection dropped); the training process it
    launched lives in its own session and goes on; a new app instance reattaches."""
    cfg = config(tmp_path, steps=100000)
    runs = tmp_path / "runs"
    app_like = subprocess.Popen(
        [sys.executable, "-c",
         # SIGHUP's default action, as a terminal app has it (a test run under nohup would inherit "ignore")
         "import signal, sys, time; signal.signal(signal.SIGHUP, signal.SIG_DFL)\n"
         "from pathlib import Path; from tui_lab.runs.launcher import launch_detached\n"
         f"run, p = launch_detached('tiny', config=Path({str(cfg)!r}), runs_dir=Path({str(runs)!r}), device='cpu')\n"
         "print(run.path, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    run = RunDir(Path(app_like.stdout.readline().strip()))
    assert wait_for_status(run, ("running",), 90) == "running"
    os.killpg(app_like.pid, signal.SIGHUP)
    app_like.wait(timeout=10)
    assert app_like.returncode == -signal.SIGHUP
    step = run.read_run().get("step") or 0
    wait_until(lambda: (run.read_run().get("step") or 0) > step, 60, "progress after the hang-up")
    info = run.read_run()
    assert info["status"] == "running" and pid_alive(info["pid"], info.get("proc_start"))
    assert stop_run(run)
    assert wait_for_status(run, ("stopped",), 60) == "stopped"


@pytest.mark.slow
def test_nan_loss_stops_the_run_as_diverged_keeping_the_last_good_checkpoint(tmp_path):
    cfg = config(tmp_path, steps=1000, eval_every=10)
    runs = tmp_path / "runs"
    p = train_proc(cfg, runs, "r", nan_step=23)
    out, err = p.communicate(timeout=300)
    run = RunDir(runs / "tiny" / "r")
    info = run.read_run()
    assert p.returncode == 1 and info["status"] == "diverged"
    assert "step 25" in info["message"] and "lr" in info["message"]  # found at the next log step
    model, meta = load_model(run.checkpoint_dir / "last.safetensors")  # finite weights, else this raises
    assert meta["step"] == 20
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.slow
def test_checkpoint_write_error_is_reported_and_previous_checkpoint_intact(tmp_path):
    cfg = config(tmp_path, steps=40, eval_every=10)
    runs = tmp_path / "runs"
    run = RunDir(runs / "tiny" / "r")
    p = train_proc(cfg, runs, "r")
    wait_until(lambda: run.read_run().get("step", 0) >= 10 and (run.checkpoint_dir / "last.state.pt").exists(),
               90, "a first checkpoint")
    os.kill(p.pid, signal.SIGTERM)
    p.communicate(timeout=60)
    before = {f.name: f.read_bytes() for f in run.checkpoint_dir.iterdir()}
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--resume",
                        str(run.path), "--quiet", "--device", "cpu"], capture_output=True, text=True, timeout=300,
                       preexec_fn=_limit_file_size(64 * 1024))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "checkpoint write failed" in r.stderr and "previous checkpoint is intact" in r.stderr
    assert "Traceback" not in r.stderr
    info = run.read_run()
    assert info["status"] == "failed" and "checkpoint write failed" in info["message"]
    after = {f.name: f.read_bytes() for f in run.checkpoint_dir.iterdir()}
    assert after == before  # no partial file, no temp file, old bytes untouched
    load_model(run.checkpoint_dir / "last.safetensors")


@pytest.mark.slow
def test_two_runs_at_once_write_separate_folders(tmp_path):
    cfg = config(tmp_path, steps=40, eval_every=10)
    runs = tmp_path / "runs"
    launched = [launch_detached("tiny", config=cfg, runs_dir=runs, device="cpu") for _ in range(2)]
    for run, proc in launched:
        proc.wait(timeout=300)
    a, b = (run for run, _ in launched)
    assert a.path != b.path
    for run in (a, b):
        assert run.read_run()["status"] == "finished"
        steps = [e["step"] for e in load_history(run) if e["event"] == "train"]
        assert steps == [5, 10, 15, 20, 25, 30, 35, 40]  # one run's events only, none interleaved
        assert eval_steps(run) == [0, 10, 20, 30, 40]


def test_cuda_out_of_memory_fails_the_run_with_a_message_naming_the_batch_size(tmp_path, monkeypatch):
    """A real torch.cuda.OutOfMemoryError raised from the forward pass (no GPU here)."""
    from tui_lab.config import load_experiments
    from tui_lab.train.errors import RunFailed
    from tui_lab.train.loop import Trainer
    from tui_lab.train.setup import start_run

    exp = load_experiments(config(tmp_path, steps=50)).get("tiny")
    run = start_run(exp, tmp_path / "runs")
    import tui_lab.models as models

    original = models.build_model

    def build_oom(cfg):
        model = original(cfg)
        calls = {"n": 0}
        forward = model.forward

        def oom_forward(idx, kv_cache=None, targets=None):
            calls["n"] += 1
            if model.training and calls["n"] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(idx, kv_cache, targets)

        model.forward = oom_forward
        return model

    monkeypatch.setattr(models, "build_model", build_oom)
    t = Trainer(exp, run, torch.device("cpu"))
    with pytest.raises(RunFailed, match="batch_size 4"):
        t.train()
    info = run.read_run()
    assert info["status"] == "failed" and "lower train.batch_size" in info["message"]


@contextlib.contextmanager
def small_tmpfs(path: Path, size_bytes: int):
    """A real, small file system (tmpfs of ``size_bytes``) mounted at ``path``; skips with the
    reason where this test may not mount (not root, no CAP_SYS_ADMIN); always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root to mount a small tmpfs (mount -t tmpfs)")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip() or r.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def folder_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` take, each rounded up to 4 KiB pages (as tmpfs counts)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def assert_failed_for_a_full_disk(run: RunDir, r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "the disk is full" in r.stderr and "Traceback" not in r.stderr, r.stderr
    info = json.loads(run.run_path.read_text())  # still valid JSON
    assert info["status"] == "failed" and "the disk is full" in info["message"], info
    assert run.read_run()["status"] == "failed"
    return info


@pytest.mark.slow
def test_a_disk_that_fills_up_during_checkpointing_fails_the_run_and_keeps_the_last_checkpoint(tmp_path):
    cfg = config(tmp_path, steps=1000, eval_every=10)
    # measure what a run folder holds after its first checkpoint (step 10) ...
    sizing = tmp_path / "sizing"
    r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir",
                        str(sizing), "--run-id", "r", "--quiet", "--device", "cpu", "--set", "train.max_steps=10"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first = folder_bytes(sizing / "tiny" / "r")
    weights = (sizing / "tiny" / "r" / "checkpoints" / "last.safetensors").stat().st_size
    # ... and give the next run that, the space reserve and less than one more weights file
    with small_tmpfs(tmp_path / "disk", first + 64 * 1024 + weights // 2) as disk:
        run = RunDir(disk / "runs" / "tiny" / "r")
        r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(cfg), "--runs-dir",
                            str(disk / "runs"), "--run-id", "r", "--quiet", "--device", "cpu"],
                           capture_output=True, text=True, timeout=300)
        info = assert_failed_for_a_full_disk(run, r)
        assert info["step"] >= 10
        model, meta = load_model(run.checkpoint_dir / "last.safetensors")  # the previous checkpoint loads
        assert meta["step"] == load_train_state(run.train_state_path)["progress"]["step"] >= 10
        assert not [p.name for p in run.checkpoint_dir.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.slow
def test_a_disk_that_fills_up_during_metrics_appends_fails_the_run(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml(max_steps=100000, eval_every=0, log_every=1, eval_max_tokens=256))
    with small_tmpfs(tmp_path / "disk", 128 * 1024) as disk:  # the reserve (64 KiB) + a few pages
        run = RunDir(disk / "runs" / "tiny" / "r")
        r = subprocess.run([sys.executable, "-m", "tui_lab", "train", "tiny", "--config", str(path), "--runs-dir",
                            str(disk / "runs"), "--run-id", "r", "--quiet", "--device", "cpu"],
                           capture_output=True, text=True, timeout=300)
        info = assert_failed_for_a_full_disk(run, r)
        assert "metrics.jsonl write failed" in info["message"]
        events, _ = read_jsonl(run.metrics_path)  # whole lines up to the fault, readable
        assert events[0]["event"] == "start" and any(e["event"] == "train" for e in events)

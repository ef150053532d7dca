"""Start and stop detached training processes (no torch here: the app calls this).

A run launched here is ``python -m tui_lab train NAME --run-id ID ...`` in its own OS
session (``start_new_session=True``): it survives the app quitting and the SSH
connection dropping (no SIGHUP reaches it). Its stdout and stderr go to the run's
``train.log``. The app only watches the run folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .store import LOG_FILE, RunDir, Status, create_run, process_alive


def train_command(experiment: str, *, config: Path, runs_dir: Path, run_id: str | None = None,
                  overrides: list[str] | None = None, device: str = "auto", resume: Path | None = None,
                  nproc_per_node: int = 1, sweep: dict | None = None) -> list[str]:
    """The argv of a ``tui-lab train`` process for these choices (``sweep``: the run's sweep
    record, saved in its ``config.json``)."""
    cmd = [sys.executable, "-m", "tui_lab", "train", experiment, "--config", str(config),
           "--runs-dir", str(runs_dir), "--device", device, "--quiet"]
    if run_id:
        cmd += ["--run-id", run_id]
    if resume:
        cmd += ["--resume", str(resume)]
    if nproc_per_node > 1:
        cmd += ["--nproc-per-node", str(nproc_per_node)]
    for item in overrides or []:
        cmd += ["--set", item]
    if sweep is not None:
        cmd += ["--sweep-record", json.dumps(sweep, separators=(",", ":"))]
    return cmd


def torchrun_command(experiment: str, run: RunDir | None, *, nproc_per_node: int, device: str = "auto",
                     resume: bool = False, config: Path | None = None, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, rdzv_id: str = "tui-lab",
                     rdzv_timeout_s: int = 600) -> list[str]:
    """The argv that starts ``nproc_per_node`` DDP workers with torchrun on this node, each a
    ``tui-lab train`` that trains into the prepared folder ``run`` (``--attach``) or resumes it.
    The one place this command line is spelled (``tui-lab train --nproc-per-node N`` runs it).

    With ``nnodes > 1``: torchrun's c10d rendezvous at ``rdzv_endpoint`` (hosted by node 0:
    ``is_host``), ``join_timeout`` ``rdzv_timeout_s``, no restarts; on nodes other than 0
    ``run`` is None and the workers ``--join`` the run folder node 0's writer broadcasts
    (see :mod:`tui_lab.train.multinode`). The caller sets ``TUI_LAB_NODE_RANK`` in the workers'
    environment. ``tui_lab.train.torchrun`` is torchrun with a one-line ending on failure."""
    cmd = [sys.executable, "-m", "tui_lab.train.torchrun"]
    if nnodes > 1:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
                f"--rdzv-id={rdzv_id}", "--max-restarts=0",
                f"--rdzv-conf=is_host={1 if node_rank == 0 else 0},join_timeout={rdzv_timeout_s}"]
    else:
        cmd += ["--standalone"]
    cmd += [f"--nproc-per-node={nproc_per_node}", "-m", "tui_lab", "train", experiment, "--device", device, "--quiet"]
    if run is None:
        cmd += ["--join"]
    else:
        cmd += ["--resume", str(run.path)] if resume else ["--attach", str(run.path)]
    if config is not None:
        cmd += ["--config", str(config)]
    return cmd


def launch_detached(experiment: str, *, config: Path, runs_dir: Path, overrides: list[str] | None = None,
                    device: str = "auto", resume: RunDir | None = None, nproc_per_node: int = 1,
                    cwd: Path | None = None, sweep: dict | None = None) -> tuple[RunDir, subprocess.Popen]:
    """Start training in a new OS session; returns the run folder it writes and the process.

    A new run's folder is reserved here (it holds only ``train.log`` until the trainer
    writes ``run.json``); a resumed run appends to its own ``train.log``.
    """
    if resume is not None:
        run = resume
    else:
        run = create_run(runs_dir, experiment)
    log = open(run.path / LOG_FILE, "ab")
    cmd = train_command(experiment, config=Path(config).resolve(), runs_dir=Path(runs_dir).resolve(),
                        run_id=None if resume else run.run_id, overrides=overrides, device=device,
                        resume=run.path.resolve() if resume else None, nproc_per_node=nproc_per_node,
                        sweep=sweep)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=cwd, env=env)
    log.close()
    return run, proc


def stop_run(run: RunDir, sig: int = signal.SIGTERM) -> bool:
    """Ask a running run to stop gracefully (it saves a checkpoint and ends as ``stopped``).

    Returns False when no live process belongs to the run.
    """
    info = run.read_run()
    pid = info.get("pid")
    if info.get("status") != Status.RUNNING or not process_alive(info):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_for_status(run: RunDir, statuses: tuple[str, ...], timeout_s: float) -> str | None:
    """Poll ``run.json`` until its status is one of ``statuses``; the status, or None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = run.read_run().get("status")
        if status in statuses:
            return status
        time.sleep(0.1)
    return None

"""A queue of experiments that run one after another on this machine (no torch here).

Files in the runs folder:

- ``queue.json``: ``{"format": 1, "entries": [...]}``, the waiting entries, first to run first; each
  ``{id, experiment, config, overrides, device, added_at}``, and ``sweep`` (the run's sweep
  record ``{id, overrides, set}``, saved in its ``config.json``) for an entry of a sweep. Every change is a
  read-modify-write under an exclusive ``flock`` on ``queue.lock`` and lands with an atomic
  replace (:func:`~tui_lab.atomic.atomic_write_json`), so the app, the CLI and the
  runner can all add or take entries at the same time without losing one.
- ``queue.runner.lock``: held (``flock``) by the one runner process for as long as it
  lives; the kernel drops it when the process dies, however it dies, so a second runner
  can never start beside a live one and a dead one never blocks the queue.
- ``queue.runner.json``: the runner's pid (with its start time, against pid reuse) and the
  run it is training now; the app and ``tui-lab queue list`` read it to tell whether a
  runner is alive, without touching the lock.
- ``queue.log``: the runner's own output (each run writes its ``train.log``).

The runner (``tui-lab queue run``, started detached in its own OS session by
:func:`start_runner`) waits until no run of the runs folder is training on this machine
(whoever started it: the app's ``t``, ``tui-lab train``, a runner that died), takes the
first entry, starts it with :func:`~tui_lab.runs.launcher.launch_detached`, waits for that
process to end, and goes on until the queue is empty; entries added meanwhile are picked
up. Quitting the app changes nothing: the queue and its runner live on disk and in their
own session.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .alerts import check_stall
from .launcher import launch_detached
from ..atomic import atomic_write_json
from .find import list_runs
from .process import create_time
from .store import RUN_FORMAT, RunDir, process_alive, read_json

QUEUE_FILE = "queue.json"
LOCK_FILE = "queue.lock"
RUNNER_LOCK = "queue.runner.lock"
RUNNER_FILE = "queue.runner.json"
LOG_FILE = "queue.log"
QUEUE_FORMAT = 1
"""The version of ``queue.json`` this code writes; a file without ``format`` is version 1.
``queue.runner.json`` carries ``run.json``'s format (:data:`~tui_lab.runs.store.RUN_FORMAT`):
its ``proc_start`` is read in that format's unit."""


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only fd drops the lock


def read_queue(runs_dir: Path) -> list[dict[str, Any]]:
    """The waiting entries, first to run first."""
    data = read_json(Path(runs_dir) / QUEUE_FILE) or {}  # every format so far: {"entries": [...]}
    entries = data.get("entries")
    return [e for e in entries if isinstance(e, dict) and e.get("experiment")] if isinstance(entries, list) else []


def _write(runs_dir: Path, entries: list[dict[str, Any]]) -> None:
    atomic_write_json(Path(runs_dir) / QUEUE_FILE, {"format": QUEUE_FORMAT, "entries": entries})


def add(runs_dir: Path, experiment: str, config: Path, overrides: list[str] | None = None,
        device: str = "auto", sweep: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Append an entry (``sweep``: its sweep record, see :mod:`tui_lab.config.sweep`); returns
    the queue after it."""
    runs_dir = Path(runs_dir)
    import secrets  # here: it imports hashlib and hmac (≈ 3 ms of the app's start)

    entry = {"id": secrets.token_hex(4), "experiment": experiment, "config": str(Path(config).resolve()),
             "overrides": list(overrides or []), "device": device, "added_at": time.time()}
    if sweep is not None:
        entry["sweep"] = sweep
    with _flock(runs_dir / LOCK_FILE):
        entries = read_queue(runs_dir) + [entry]
        _write(runs_dir, entries)
    return entries


def remove(runs_dir: Path, entry_id: str) -> bool:
    """Drop one waiting entry by its id; False when it is not (or no longer) waiting."""
    runs_dir = Path(runs_dir)
    with _flock(runs_dir / LOCK_FILE):
        entries = read_queue(runs_dir)
        rest = [e for e in entries if e.get("id") != entry_id]
        if len(rest) == len(entries):
            return False
        _write(runs_dir, rest)
    return True


def clear(runs_dir: Path) -> int:
    """Drop every waiting entry (a run already started goes on); returns how many."""
    runs_dir = Path(runs_dir)
    with _flock(runs_dir / LOCK_FILE):
        n = len(read_queue(runs_dir))
        _write(runs_dir, [])
    return n


def pop(runs_dir: Path) -> dict[str, Any] | None:
    """Take the first entry off the queue."""
    runs_dir = Path(runs_dir)
    with _flock(runs_dir / LOCK_FILE):
        entries = read_queue(runs_dir)
        if not entries:
            return None
        _write(runs_dir, entries[1:])
    return entries[0]


def runner_info(runs_dir: Path) -> dict[str, Any] | None:
    """``{pid, started_at, current, waiting_for, ...}`` of the live runner (``current``: the
    run folder it is training now; ``waiting_for``: a run it waits for before the next entry),
    or None when no runner is alive. Read from the runner's pid
    file (checked against the process table), never by touching its lock."""
    info = read_json(Path(runs_dir) / RUNNER_FILE)
    if not info or not process_alive(info):
        return None
    return info


def runner_alive(runs_dir: Path) -> bool:
    """Whether a runner process is alive for this runs folder."""
    return runner_info(runs_dir) is not None


def start_runner(runs_dir: Path) -> bool:
    """Start the detached runner unless one is alive; True when one was started. (Two
    callers racing may both start one: the second finds the lock taken and exits.)"""
    runs_dir = Path(runs_dir)
    if runner_alive(runs_dir):
        return False
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / LOG_FILE, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "tui_lab", "queue", "run", "--runs-dir", str(runs_dir.resolve())],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return True


def active_runs(runs_dir: Path) -> list[RunDir]:
    """Runs in ``runs_dir`` training on this machine now (their process is alive)."""
    host = socket.gethostname()
    return [s.run for s in list_runs(runs_dir)
            if s.is_live and s.info.get("host", host) == host]


def _wait_until_idle(runs_dir: Path, poll_s: float, on_wait) -> None:
    """Wait while any run of this runs folder trains on this machine: a queued run starts
    only when the device is free, whoever started the run before it."""
    while busy := active_runs(runs_dir):
        on_wait(busy[0])
        time.sleep(poll_s)


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} queue: {message}", flush=True)


def _take_lock(path: Path, tries: int = 20, wait_s: float = 0.05) -> int | None:
    """An fd holding an exclusive ``flock`` on ``path``, or None when another process keeps
    it for ``tries`` attempts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(wait_s)
    os.close(fd)
    return None


def _wait_watching_stall(run: RunDir, proc: subprocess.Popen, poll_s: float) -> int:
    """Wait for the training process; meanwhile, and once after it ends without an end event,
    raise the run's "stalled" alert (:func:`~tui_lab.runs.alerts.check_stall`, once per stall)."""
    stalled = False
    while True:
        try:
            code = proc.wait(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            message = check_stall(run)
            if message is not None and not stalled:
                _log(f"{run.path} stalled: {message}")
            stalled = message is not None
    if (message := check_stall(run)) is not None:  # the process is gone, run.json still says running
        _log(f"{run.path} stalled: {message}")
    return code


def run_queue(runs_dir: Path, poll_s: float = 1.0) -> int:
    """The runner's body: run entries one after another until the queue is empty.
    Returns how many it started (0 at once when another runner holds the lock)."""
    runs_dir = Path(runs_dir)
    runner_file = runs_dir / RUNNER_FILE
    lock_fd = _take_lock(runs_dir / RUNNER_LOCK)
    if lock_fd is None:
        _log("another runner is alive; exiting")
        return 0

    def retire() -> None:
        nonlocal lock_fd
        if lock_fd is None:
            return
        try:
            runner_file.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        lock_fd = None

    n = 0
    try:
        me = {"format": RUN_FORMAT, "pid": os.getpid(), "proc_start": create_time(), "started_at": time.time(),
              "current": None, "waiting_for": None}
        atomic_write_json(runner_file, me)
        waited: list[str] = []

        def on_wait(run: RunDir) -> None:
            if not waited or waited[-1] != str(run.path):
                waited.append(str(run.path))
                _log(f"waiting for {run.path} to end")
                atomic_write_json(runner_file, {**me, "waiting_for": str(run.path)})

        while True:
            if read_queue(runs_dir):
                _wait_until_idle(runs_dir, poll_s, on_wait)
            if waited:
                atomic_write_json(runner_file, me)
                waited.clear()
            # take the next entry, or retire, under the queue lock: an entry added meanwhile
            # either is seen here or finds no runner and starts a new one
            with _flock(runs_dir / LOCK_FILE):
                entries = read_queue(runs_dir)
                if not entries:
                    retire()
                    break
                _write(runs_dir, entries[1:])
            entry = entries[0]
            config = Path(entry["config"])
            try:
                run, proc = launch_detached(entry["experiment"], config=config, runs_dir=runs_dir,
                                            overrides=entry.get("overrides") or None,
                                            device=entry.get("device") or "auto", cwd=config.parent,
                                            sweep=entry.get("sweep") if isinstance(entry.get("sweep"), dict) else None)
            except OSError as exc:
                _log(f"cannot start {entry['experiment']}: {exc}")
                continue
            n += 1
            atomic_write_json(runner_file, {**me, "current": str(run.path), "entry": entry})
            _log(f"started {entry['experiment']} in {run.path} (pid {proc.pid})")
            code = _wait_watching_stall(run, proc, poll_s)
            status = run.read_run().get("status", "failed")
            _log(f"{entry['experiment']} ended: {status} (exit code {code})")
            atomic_write_json(runner_file, me)
    finally:
        retire()
    _log(f"queue empty after {n} run(s)")
    return n

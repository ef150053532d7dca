"""A queue of experiments that run one after another on this machine (no torch here).

The queue is ``<runs_dir>/queue.json`` (a list of entries, written atomically); one
detached runner process (``tui-lab queue run``, its pid in ``<runs_dir>/queue.pid.json``)
takes the first entry, trains it to the end in a child process, and goes on until the
queue is empty. Entries added while it runs are picked up; the queue outlives the app.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .launcher import train_command
from .store import RunDir, _proc_start_ticks, new_run_id, pid_alive, read_json, write_json_atomic

QUEUE_FILE = "queue.json"
PID_FILE = "queue.pid.json"


def _queue_path(runs_dir: Path) -> Path:
    return Path(runs_dir) / QUEUE_FILE


def read_queue(runs_dir: Path) -> list[dict[str, Any]]:
    """The waiting entries, first to run first: ``{experiment, config, overrides, device, added_at}``."""
    data = read_json(_queue_path(runs_dir)) or {}
    entries = data.get("entries")
    return entries if isinstance(entries, list) else []


def _write(runs_dir: Path, entries: list[dict[str, Any]]) -> None:
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(_queue_path(runs_dir), {"entries": entries})


def add(runs_dir: Path, experiment: str, config: Path, overrides: list[str] | None = None,
        device: str = "auto") -> list[dict[str, Any]]:
    """Append an entry; returns the queue."""
    entries = read_queue(runs_dir)
    entries.append({"experiment": experiment, "config": str(Path(config).resolve()), "overrides": overrides or [],
                    "device": device, "added_at": time.time()})
    _write(runs_dir, entries)
    return entries


def clear(runs_dir: Path) -> None:
    _write(runs_dir, [])


def pop(runs_dir: Path) -> dict[str, Any] | None:
    entries = read_queue(runs_dir)
    if not entries:
        return None
    first, rest = entries[0], entries[1:]
    _write(runs_dir, rest)
    return first


def runner_alive(runs_dir: Path) -> bool:
    info = read_json(Path(runs_dir) / PID_FILE) or {}
    return pid_alive(info.get("pid"), info.get("proc_start"))


def start_runner(runs_dir: Path) -> bool:
    """Start the detached runner unless one is alive; True when one was started."""
    if runner_alive(runs_dir):
        return False
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    log = open(Path(runs_dir) / "queue.log", "ab")
    subprocess.Popen([sys.executable, "-m", "tui_lab", "queue", "run", "--runs-dir", str(Path(runs_dir).resolve())],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return True


def run_queue(runs_dir: Path) -> int:
    """Run entries until the queue is empty (the runner's body); returns how many ran."""
    runs_dir = Path(runs_dir)
    if runner_alive(runs_dir):
        return 0
    write_json_atomic(runs_dir / PID_FILE, {"pid": os.getpid(), "proc_start": _proc_start_ticks(os.getpid())})
    n = 0
    try:
        while (entry := pop(runs_dir)) is not None:
            run = RunDir(runs_dir / entry["experiment"] / new_run_id())
            run.path.mkdir(parents=True)
            cmd = train_command(entry["experiment"], config=Path(entry["config"]), runs_dir=runs_dir,
                                run_id=run.run_id, overrides=entry.get("overrides"),
                                device=entry.get("device", "auto"))
            print(f"queue: {' '.join(cmd)}", flush=True)
            with open(run.log_path, "ab") as log:
                subprocess.call(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=Path(entry["config"]).parent)
            n += 1
    finally:
        try:
            (runs_dir / PID_FILE).unlink()
        except FileNotFoundError:
            pass
    return n

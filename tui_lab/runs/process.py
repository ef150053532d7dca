"""Processes behind runs: liveness (psutil, with a pid-reuse check) and the git commit.

psutil works on Linux, macOS and Windows alike (no ``/proc`` parsing), so the check that
a pid was not reused by another process — comparing the process creation time with the
one recorded when the run started — works everywhere the README promises. psutil is imported
on first use (not at the app's start-up: a store with no live run never needs it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CREATE_TIME_TOLERANCE_S = 0.05
"""psutil derives creation times from clock ticks (10 ms on Linux): a recorded time within
this many seconds is the same process."""


def create_time(pid: int | None = None) -> float | None:
    """The creation time of process ``pid`` (this process by default) in Unix seconds, or
    None when there is no such process or it cannot be read."""
    import psutil

    try:
        return psutil.Process(os.getpid() if pid is None else pid).create_time()
    except (psutil.Error, OSError, ValueError):
        return None


def _ticks_since_boot(created: float) -> int:
    """A creation time as Linux clock ticks since boot (how ``run.json`` format 1 stored it)."""
    import psutil

    return round((created - psutil.boot_time()) * os.sysconf("SC_CLK_TCK"))


def pid_alive(pid: int | None, proc_start: float | int | None = None, *, ticks: bool = False) -> bool:
    """Whether process ``pid`` still runs here and is the one that was recorded.

    Args:
        pid: the process id; None or ≤ 0 is never alive.
        proc_start: its recorded creation time (Unix seconds), or None to skip the pid-reuse
            check; with ``ticks=True``, clock ticks since boot (``run.json`` format 1, Linux).

    A zombie (ended, not yet reaped by its parent) is not alive.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        return True  # someone else's process: it exists
    if not isinstance(proc_start, (int, float)) or isinstance(proc_start, bool):
        return True
    if ticks:
        try:
            return abs(_ticks_since_boot(created) - int(proc_start)) <= 1
        except (ValueError, OSError, AttributeError):  # no sysconf (not POSIX): skip the check
            return True
    return abs(created - float(proc_start)) <= CREATE_TIME_TOLERANCE_S


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out in ``cwd`` (by default the tui-lab source folder), from
    ``git rev-parse HEAD``; None when it is not a git checkout or git is not installed."""
    folder = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    out = r.stdout.strip()
    return out if r.returncode == 0 and len(out) == 40 else None

"""Heartbeats: whether a run is alive, judged from any node that sees its run folder.

A pid check only works on the host that runs the training process. A run on another node
(a cluster job, a run folder on a network filesystem) proves it is alive with a
**heartbeat**: the run folder's writer rewrites the small file ``heartbeat`` every
:func:`interval_s` seconds (default 10, env ``TUI_LAB_HEARTBEAT_S``) from a background
thread, so a long evaluation or a slow step does not delay it. Its content is JSON
``{"time": Unix seconds, "host": hostname, "pid": pid}``.

Readers (:func:`run_alive`) judge a run whose ``run.json`` says ``running`` / ``starting``:

- on this host (``run.json`` ``host`` equals ``socket.gethostname()``): alive while its pid
  is (the pid check, as before; the heartbeat is not needed);
- on another host: alive while its last sign of life — the heartbeat's ``time``, or
  ``run.json``'s modification time for a run folder without a heartbeat file — is at most
  :func:`stale_after_s` seconds old (default 60, env ``TUI_LAB_HEARTBEAT_STALE_S``).
  Otherwise the reader reports ``interrupted``. The nodes' clocks must agree to well
  within that threshold (NTP does).

No torch here: the app, the results tables and alerts read liveness through this module.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write

HEARTBEAT_FILE = "heartbeat"
ACTIVE_STATUSES = ("running", "starting")


def interval_s() -> float:
    """Seconds between two heartbeats (env ``TUI_LAB_HEARTBEAT_S``, default 10)."""
    return float(os.environ.get("TUI_LAB_HEARTBEAT_S") or 10.0)


def stale_after_s() -> float:
    """Age in seconds past which a remote run's heartbeat counts as lost (env
    ``TUI_LAB_HEARTBEAT_STALE_S``, default 60: six missed heartbeats at the default interval)."""
    return float(os.environ.get("TUI_LAB_HEARTBEAT_STALE_S") or 60.0)


def write_heartbeat(run_path: Path | str, now: float | None = None) -> None:
    """Rewrite ``run_path/heartbeat`` atomically with this process's time, host and pid.

    Raises:
        OSError: the run folder is not writable (gone, disk full).
    """
    payload = {"time": round(time.time() if now is None else now, 3), "host": socket.gethostname(),
               "pid": os.getpid()}
    atomic_write(Path(run_path) / HEARTBEAT_FILE, json.dumps(payload))


def read_heartbeat(run_path: Path | str) -> float | None:
    """The time (Unix s) of the run's last heartbeat, or None without a readable heartbeat file."""
    try:
        obj = json.loads((Path(run_path) / HEARTBEAT_FILE).read_text("utf-8"))
        return float(obj["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_sign_of_life(run_path: Path | str) -> float | None:
    """The heartbeat's time, else ``run.json``'s modification time, else None (Unix s)."""
    beat = read_heartbeat(run_path)
    if beat is not None:
        return beat
    try:
        return (Path(run_path) / "run.json").stat().st_mtime
    except OSError:
        return None


def is_this_host(host: str | None) -> bool:
    """Whether ``host`` (``run.json``'s ``host``) names the machine this code runs on."""
    return host == socket.gethostname()


def run_alive(info: dict[str, Any], run_path: Path | str, local_alive: Callable[[dict[str, Any]], bool],
              now: float | None = None) -> bool:
    """Whether the run described by ``info`` (its ``run.json``) still has a live writer.

    Only meaningful for ``running`` / ``starting`` runs.
    ``local_alive(info)`` is the run store's pid check; it is used when ``info["host"]`` is
    this host, the heartbeat age otherwise (see the module docstring).
    """
    if is_this_host(info.get("host")):
        return local_alive(info)
    last = last_sign_of_life(run_path)
    if last is None:
        return False
    return (time.time() if now is None else now) - last <= stale_after_s()


class HeartbeatThread:
    """Writes the heartbeat now and then every ``interval`` seconds until :meth:`stop`.

    A daemon thread: it dies with the process, which is exactly what readers detect. A
    failed write (the run folder's filesystem hiccuped) is retried at the next beat.
    """

    def __init__(self, run_path: Path | str, interval: float | None = None):
        self.run_path = Path(run_path)
        self.interval = interval_s() if interval is None else interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HeartbeatThread":
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="tui-lab-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            write_heartbeat(self.run_path)
        except OSError:
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def stop(self) -> None:
        """Stop beating (the run ended: its final ``run.json`` status speaks from now on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "HeartbeatThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

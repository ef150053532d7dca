"""Watching the run store without blocking the UI: two plain threads with callbacks.

- :class:`RunWatcher` follows the selected run with a
  :class:`~tui_lab.runs.follow.RunFollower`: every :data:`POLL_S` seconds (a run that is
  not live: every :data:`IDLE_POLL_S`, one ``stat`` per file) it reads what is new and, when
  something changed, calls ``on_update(run, snapshot)``. Switching runs reads the new
  run's whole history in that thread, never in the UI's. GPU figures (:mod:`.gpu`) are
  sampled there too, for CUDA runs.
- :class:`StoreScanner` rescans every run's ``run.json`` every :data:`SCAN_S` seconds (or at
  once when poked) and calls ``on_scan(scan)`` when anything differs from the last scan (an
  idle store costs the UI nothing).

The threads know nothing of Textual (as in Toolong, the Textual side passes callbacks that
post messages: :mod:`.messages`), so a slow disk or a long history cannot freeze a key press.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from ..runs.follow import RunFollower, RunSnapshot, StoreScan, scan_store
from ..runs.store import RunDir, is_live
from .gpu import Gpu

POLL_S = 0.25
"""Seconds between two reads of a live run's files."""
IDLE_POLL_S = 1.0
"""Seconds between two ``stat`` s of a run that is not live (finished, stopped...)."""
SCAN_S = 2.0
"""Seconds between two scans of every run's ``run.json``."""
TICK_S = 1.0
"""A live run is re-posted at least this often, so elapsed time and GPU figures tick."""
DISPLAY_WAIT_S = 1.0
"""The longest a watcher made with ``wait_for_display`` waits for a long history's tail to be
on screen before it reads the rest (see :meth:`RunWatcher.displayed`)."""


class _Loop(threading.Thread):
    """A daemon thread whose loop sleeps on an event: :meth:`poke` wakes it early,
    :meth:`stop` ends it (both callable from any thread)."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._wake = threading.Event()
        self._stop = threading.Event()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()


class RunWatcher(_Loop):
    """Follows one run at a time; calls ``on_update(run, snapshot)`` from its thread
    (``(None, None)`` when no run is selected)."""

    def __init__(self, on_update: Callable[[RunDir | None, RunSnapshot | None], None], poll_s: float = POLL_S,
                 idle_poll_s: float = IDLE_POLL_S, wait_for_display: bool = False):
        """``wait_for_display``: after posting the tail of a long history, read the rest only
        once :meth:`displayed` is called (or after :data:`DISPLAY_WAIT_S`): the UI thread shares
        the interpreter lock, and reading 100,000 events beside it would hold back the very
        frame that shows the tail's figures."""
        super().__init__("run watcher")
        self._on_update = on_update
        self.poll_s = poll_s
        self.idle_poll_s = idle_poll_s
        self._want: tuple[RunDir | None, subprocess.Popen | None] = (None, None)
        self._want_seq = 0
        self.gpu = Gpu()
        self.wait_for_display = wait_for_display
        self._displayed = threading.Event()

    def displayed(self) -> None:
        """The UI has put the posted tail of a long history on screen (any thread)."""
        self._displayed.set()

    def stop(self) -> None:
        super().stop()
        self._displayed.set()

    def follow(self, run: RunDir | None, proc: subprocess.Popen | None = None) -> None:
        """Watch ``run`` from now on (called from the UI thread; returns at once)."""
        self._want = (run, proc)
        self._want_seq += 1
        self._wake.set()
        self._displayed.set()  # no waiting for a run no longer wanted

    def run(self) -> None:
        follower: RunFollower | None = None
        seen_seq = -1
        last_post = 0.0
        gpu_line: str | None = None
        last_gpu = 0.0
        preview_posted = False
        while not self._stop.is_set():
            if self._want_seq != seen_seq:
                seen_seq = self._want_seq
                run, proc = self._want
                if run is None:
                    follower = None
                    self._on_update(None, None)
                else:
                    follower = RunFollower(run, proc)
                    gpu_line, last_gpu = None, 0.0
                    last_post = 0.0
                    preview_posted = False
            live = False
            if follower is not None:
                try:
                    changed = follower.poll()
                except Exception as exc:  # an unreadable folder must not end the watcher (or the app)
                    changed = follower.fail(f"cannot read {follower.run.path}: {exc}")
                now = time.monotonic()
                live = is_live(follower.info.get("status")) or (follower.proc is not None
                                                                 and follower.proc.poll() is None)
                if live and now - last_gpu >= TICK_S:
                    last_gpu = now
                    new_gpu = self.gpu.line(str(follower.info.get("device") or ""))
                    changed |= new_gpu != gpu_line
                    gpu_line = new_gpu
                elif not live:
                    gpu_line = None
                if changed or last_post == 0.0 or (live and now - last_post >= TICK_S):
                    last_post = now
                    snap = follower.snapshot(gpu_line)
                    first_preview = not snap.history_complete and not preview_posted
                    if first_preview:
                        preview_posted = True
                        self._displayed.clear()
                    self._on_update(follower.run, snap)
                    if first_preview and self.wait_for_display:
                        self._displayed.wait(DISPLAY_WAIT_S)
            if follower is not None and follower.catching_up:
                # a long history is being read behind its tail: the next piece almost at once (the
                # pause lets a key press through between two pieces)
                self._sleep(0.001)
                continue
            self._sleep(self.poll_s if live else self.idle_poll_s)


class StoreScanner(_Loop):
    """Rescans the run store every ``every_s`` seconds or when poked; calls ``on_scan(scan)``
    from its thread."""

    def __init__(self, runs_dir: Path, on_scan: Callable[[StoreScan], None], every_s: float = SCAN_S):
        super().__init__("store scanner")
        self.runs_dir = runs_dir
        self._on_scan = on_scan
        self.every_s = every_s

    def run(self) -> None:
        last: tuple | None = None
        while not self._stop.is_set():
            poked = self._wake.wait(self.every_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                scan = scan_store(self.runs_dir)
            except Exception:  # e.g. a folder without permission: keep the last scan
                continue
            same = (scan.runs, scan.queue, scan.runner)
            if poked or same != last:  # a poke always answers (the UI may wait for it)
                last = same
                self._on_scan(scan)

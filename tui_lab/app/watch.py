"""Watching the run store without blocking the UI.

Two thread workers, both plain file reading (no torch), each posting messages to the
main screen:

- :class:`RunWatcher` follows the selected run: every :data:`POLL_S` seconds it reads the
  new lines of ``metrics.jsonl`` from the byte offset where it stopped (a partial last
  line is left for the next poll), ``run.json`` and the tail of ``train.log``, and, when
  something changed, posts :class:`RunUpdated` with an immutable :class:`RunSnapshot`.
  Switching runs reads the new run's whole history in that thread, never in the UI's.
  GPU memory and utilisation (NVML, imported lazily) are sampled there too, for CUDA runs.
- :class:`StoreScanner` rescans every run's ``run.json`` every :data:`SCAN_S` seconds (or
  at once when poked) and posts :class:`StoreScanned`: the status of each experiment's
  latest run, its runs, the queue.

The screens never read files themselves, so a slow disk or a long history cannot freeze
a key press.
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual.message import Message

from ..runs import queue
from ..runs.store import RunDir, RunSummary, collapse_resumes, list_runs, read_jsonl

POLL_S = 0.25
"""Seconds between two reads of the selected run's files."""
SCAN_S = 2.0
"""Seconds between two scans of every run's ``run.json``."""
TICK_S = 1.0
"""A running run is re-posted at least this often, so elapsed time and GPU figures tick."""
LOG_TAIL_BYTES = 6144
MAX_SAMPLES = 8

SERIES: tuple[tuple[str, str], ...] = (
    ("train", "train_loss"), ("eval", "val_loss"), ("eval", "val_ppl"), ("train", "lr"), ("train", "tokens_per_s"),
)
"""The (event, key) curves kept incrementally for the plots."""

ACTIVE = ("running", "starting")


# ------------------------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class RunSnapshot:
    """What the panels show for one run at one moment. Built in the watcher thread, read in
    the UI thread; never changed after it is posted."""

    run: RunDir
    info: dict[str, Any]
    version: int
    events: tuple[dict[str, Any], ...]
    curves: dict[tuple[str, str], tuple[list[float], list[float]]]
    log_tail: str = ""
    gpu: str | None = None
    lasts: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent_samples: tuple[dict[str, Any], ...] = ()
    taken_at: float = field(default_factory=time.time)

    @property
    def status(self) -> str:
        return str(self.info.get("status") or "starting")

    def series(self, event: str, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of ``key`` in ``event`` events (None values skipped)."""
        if (event, key) in self.curves:
            return self.curves[(event, key)]
        return _series(self.events, event, key)

    def last(self, event: str) -> dict[str, Any] | None:
        """The latest event of a kind."""
        return self.lasts.get(event)

    def samples(self, n: int = 4) -> list[dict[str, Any]]:
        """The latest ``n`` sample generations, oldest first."""
        return list(self.recent_samples[-n:]) if n > 0 else []

    def progress(self) -> tuple[int, int | None]:
        """(step, total steps or None)."""
        last = self.last("train")
        step = max(int(self.info.get("step") or 0), int(last.get("step", 0)) if last else 0)
        total = self.info.get("total_steps")
        return step, total if isinstance(total, int) and total > 0 else None

    def eta_s(self) -> float | None:
        """Seconds left at the recent pace (steps per second over the last train events)."""
        if self.status != "running":
            return None
        step, total = self.progress()
        trains = []
        for e in reversed(self.events):
            if e.get("event") == "train":
                trains.append(e)
                if len(trains) == 6:
                    break
        if not total or len(trains) < 2:
            return None
        ds = trains[0].get("step", 0) - trains[-1].get("step", 0)
        clock = "elapsed_s" if all(e.get("elapsed_s") is not None for e in (trains[0], trains[-1])) else "time"
        dt = trains[0].get(clock, 0) - trains[-1].get(clock, 0)
        if ds <= 0 or dt <= 0:
            return None
        return max(0.0, (total - step) * dt / ds)

    def elapsed_s(self, now: float | None = None) -> float | None:
        """Training seconds so far (resumes included), ticking while the run is running."""
        last = None
        for e in reversed(self.events):
            if e.get("elapsed_s") is not None:
                last = e
                break
        if last is None:
            return self.info.get("elapsed_s")
        if self.status == "running":
            now = time.time() if now is None else now
            return last["elapsed_s"] + max(0.0, now - last.get("time", now))
        return max(last["elapsed_s"], self.info.get("elapsed_s") or 0.0)


def _append_points(events, event: str, key: str, xs: list[float], ys: list[float]) -> None:
    """Append (step, value) of every ``event`` with a finite number under ``key``."""
    for e in events:
        if e.get("event") == event:
            v = e.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                xs.append(e.get("step", 0))
                ys.append(v)


def _series(events, event: str, key: str) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    _append_points(events, event, key, xs, ys)
    return xs, ys


class RunUpdated(Message):
    """New data for the followed run (``snapshot`` None: no run selected)."""

    def __init__(self, run: RunDir | None, snapshot: RunSnapshot | None) -> None:
        super().__init__()
        self.run = run
        self.snapshot = snapshot


# ------------------------------------------------------------------------------- one run
class RunState:
    """Incremental reader of one run folder. Only the watcher thread touches it."""

    def __init__(self, run: RunDir, proc: subprocess.Popen | None = None):
        self.run = run
        self.proc = proc  # the process this app launched, to tell a run that died before starting
        self.info: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.curves: dict[tuple[str, str], tuple[list[float], list[float]]] = {k: ([], []) for k in SERIES}
        self.offset = 0
        self.lasts: dict[str, dict[str, Any]] = {}  # the latest event of each kind
        self.recent_samples: list[dict[str, Any]] = []
        self.log_tail = ""
        self._log_sig: tuple[float, int] | None = None
        self.version = 0

    def poll(self) -> bool:
        """Read what is new; True when anything changed."""
        changed = False
        new, self.offset = read_jsonl(self.run.metrics_path, self.offset)
        if new:
            if any(e.get("event") == "resume" for e in new):
                self.events = collapse_resumes(self.events + new)
                self.curves = {k: ([], []) for k in SERIES}
                self.lasts, self.recent_samples = {}, []
                self._index(self.events)
            else:
                self.events.extend(new)
                self._index(new)
            changed = True
        info = self.run.read_run()
        if not info and self.proc is not None and self.proc.poll() is not None:
            info = {"status": "failed", "message": f"the training process exited (code {self.proc.returncode}) "
                                                   "before it started: see the Log tab"}
        if info != self.info:
            self.info = info
            changed = True
        try:
            st = self.run.log_path.stat()
            sig = (st.st_mtime, st.st_size)
        except OSError:
            sig = None
        if sig != self._log_sig:
            self._log_sig = sig
            self.log_tail = tail(self.run.log_path)
            changed = True
        if changed:
            self.version += 1
        return changed

    def fail(self, message: str) -> bool:
        """Show ``message`` instead of the run's status; True when that is new."""
        info = {**self.info, "status": "unreadable", "message": message}
        if info == self.info:
            return False
        self.info = info
        self.version += 1
        return True

    def _index(self, events: list[dict[str, Any]]) -> None:
        """Extend the curves, the latest event of each kind and the recent samples."""
        for e in events:
            kind = e.get("event")
            self.lasts[kind] = e
            if kind == "sample":
                self.recent_samples = (self.recent_samples + [e])[-MAX_SAMPLES:]
        for (event, key), (xs, ys) in self.curves.items():
            _append_points(events, event, key, xs, ys)

    def snapshot(self, gpu: str | None = None) -> RunSnapshot:
        return RunSnapshot(run=self.run, info=dict(self.info), version=self.version, events=tuple(self.events),
                           curves={k: (list(xs), list(ys)) for k, (xs, ys) in self.curves.items()},
                           log_tail=self.log_tail, gpu=gpu, lasts=dict(self.lasts),
                           recent_samples=tuple(self.recent_samples))


def tail(path: Path, n_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``n_bytes`` of a text file, from a line start."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if size > n_bytes and "\n" in text:
        text = text.split("\n", 1)[1]
    # a progress bar redrawn with \r: keep what the line shows last
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


# ------------------------------------------------------------------------------- GPU
class Gpu:
    """GPU utilisation and memory through NVIDIA's management library (package
    nvidia-ml-py, module ``pynvml``), imported on first use, in the watcher thread."""

    def __init__(self) -> None:
        self._nv: Any = None
        self._error: str | None = None

    def line(self, device: str) -> str | None:
        """``GPU 87% · 12.3/79.6 GiB`` for a CUDA device; None for other devices."""
        if not device.startswith("cuda"):
            return None
        if self._error:
            return self._error
        try:
            if self._nv is None:
                import pynvml

                pynvml.nvmlInit()
                self._nv = pynvml
        except ImportError:
            self._error = "GPU stats: NVML not installed (pip install nvidia-ml-py)"
            return self._error
        except Exception as exc:  # no driver, no permission
            self._error = f"GPU stats unavailable (NVML: {exc})"
            return self._error
        try:
            nv = self._nv
            handle = _nvml_handle(nv, int(device.split(":")[1]) if ":" in device else 0)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            return f"GPU {util.gpu}% · {mem.used / 2**30:.1f}/{mem.total / 2**30:.1f} GiB"
        except Exception as exc:
            return f"GPU stats unavailable (NVML: {exc})"


def _nvml_handle(nv: Any, index: int) -> Any:
    """NVML numbers every GPU of the machine; CUDA numbers those in ``CUDA_VISIBLE_DEVICES``
    (which the training process inherits from the app)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible):
        entry = visible[index]
        if entry.isdigit():
            return nv.nvmlDeviceGetHandleByIndex(int(entry))
        return nv.nvmlDeviceGetHandleByUUID(entry)
    return nv.nvmlDeviceGetHandleByIndex(index)


# ------------------------------------------------------------------------------- workers
class _Worker:
    """A loop run by a thread worker that sleeps on an event: :meth:`poke` wakes it early,
    :meth:`stop` ends it (both callable from the UI thread)."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


class RunWatcher(_Worker):
    """Follows one run at a time; :meth:`loop` is the body of a thread worker."""

    def __init__(self, post: Callable[[Message], Any], poll_s: float = POLL_S):
        super().__init__()
        self._post = post
        self.poll_s = poll_s
        self._want: tuple[RunDir | None, subprocess.Popen | None] = (None, None)
        self._want_seq = 0
        self.gpu = Gpu()

    def follow(self, run: RunDir | None, proc: subprocess.Popen | None = None) -> None:
        """Watch ``run`` from now on (called from the UI thread; returns at once)."""
        self._want = (run, proc)
        self._want_seq += 1
        self._wake.set()

    def loop(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        state: RunState | None = None
        seen_seq = -1
        last_post = 0.0
        gpu_line: str | None = None
        last_gpu = 0.0
        while not self._stop.is_set() and not cancelled():
            if self._want_seq != seen_seq:
                seen_seq = self._want_seq
                run, proc = self._want
                if run is None:
                    state = None
                    self._post(RunUpdated(None, None))
                else:
                    state = RunState(run, proc)
                    gpu_line, last_gpu = None, 0.0
                    last_post = 0.0
            if state is not None:
                try:
                    changed = state.poll()
                except Exception as exc:  # an unreadable folder must not end the watcher (or the app)
                    changed = state.fail(f"cannot read {state.run.path}: {exc}")
                now = time.monotonic()
                running = state.info.get("status") in ACTIVE
                if running and now - last_gpu >= TICK_S:
                    last_gpu = now
                    new_gpu = self.gpu.line(str(state.info.get("device") or ""))
                    changed |= new_gpu != gpu_line
                    gpu_line = new_gpu
                elif not running:
                    gpu_line = None
                if changed or last_post == 0.0 or (running and now - last_post >= TICK_S):
                    last_post = now
                    self._post(RunUpdated(state.run, state.snapshot(gpu_line)))
            self._wake.wait(self.poll_s)
            self._wake.clear()


@dataclass(frozen=True)
class StoreScan:
    """Every run under the runs folder, grouped by experiment, and the queue."""

    runs: dict[str, list[RunSummary]]
    queue: list[dict[str, Any]]
    runner: dict[str, Any] | None
    taken_at: float = field(default_factory=time.time)

    def latest(self, name: str) -> RunSummary | None:
        runs = self.runs.get(name)
        return runs[-1] if runs else None

    def best_ppl(self, name: str) -> float | None:
        vals = [r.info.get("best_val_ppl") for r in self.runs.get(name, [])]
        vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
        return min(vals) if vals else None


def scan_store(runs_dir: Path) -> StoreScan:
    """Read every ``run.json`` (status corrected for dead processes) and the queue."""
    grouped: dict[str, list[RunSummary]] = {}
    for s in list_runs(runs_dir):
        grouped.setdefault(s.run.experiment, []).append(s)
    return StoreScan(grouped, queue.read_queue(runs_dir), queue.runner_info(runs_dir))


class StoreScanned(Message):
    def __init__(self, scan: StoreScan) -> None:
        super().__init__()
        self.scan = scan


class StoreScanner(_Worker):
    """Rescans the run store every :data:`SCAN_S` seconds or when poked; :meth:`loop` is the
    body of a thread worker."""

    def __init__(self, runs_dir: Path, post: Callable[[Message], Any], every_s: float = SCAN_S):
        super().__init__()
        self.runs_dir = runs_dir
        self._post = post
        self.every_s = every_s

    def loop(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        while not self._stop.is_set() and not cancelled():
            self._wake.wait(self.every_s)
            self._wake.clear()
            if self._stop.is_set() or cancelled():
                break
            try:
                scan = scan_store(self.runs_dir)
            except Exception:  # e.g. a folder without permission: keep the last scan
                continue
            self._post(StoreScanned(scan))

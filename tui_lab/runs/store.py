"""The run store: one folder per training run, written by the trainer, read by the app.

Layout of ``runs/<experiment>/<run-id>/``::

    config.json      the resolved experiment (after --set overrides)
    run.json         status, pid, host, device, times, parameter / token counts, git commit
    metrics.jsonl    append-only, one JSON object per event (train / eval / sample / end ...)
    train.log        stdout + stderr of the training process
    heartbeat        the writer's last sign of life, rewritten every ~10 s (see .heartbeat)
    checkpoints/     best.safetensors, last.safetensors (+ last.state.pt for resume)

``metrics.jsonl`` events (every object has ``event`` and ``time``, Unix seconds):

- ``start``: format (:data:`METRICS_FORMAT`), step 0, total_steps, num_params, device,
  train_tokens, val_tokens
- ``resume``: step, epoch, tokens_seen — events with a larger step written before it
  belong to the interrupted attempt and are superseded (see :func:`collapse_resumes`)
- ``train``: step, epoch, train_loss (mean over the steps since the last one, nats),
  lr, tokens_seen, tokens_per_s, elapsed_s, mem_mb
- ``eval_start``: step, tokens_total (validation tokens this evaluation will read), elapsed_s
- ``eval_progress``: step, tokens_done, tokens_total (at most every ~2 s)
- ``eval``: step, epoch, val_loss (nats/token), val_ppl, val_acc, val_tokens,
  val_word_ppl (WikiText word-level perplexity, or null), is_best, best_val_loss,
  tokens_seen, elapsed_s, eval_s (seconds the evaluation took), val_ppl_seed_style (the seed
  scripts' mean of per-batch mean losses, exp'd, for comparison with their logs; see
  ``train.evaluate.EvalResult``)
- ``epoch_end``: step, epoch (the epoch now starting)
- ``sample``: step, prompt, text
- ``end``: status, step, message, best_val_loss

``run.json`` keys: format (:data:`RUN_FORMAT`), experiment, run_id, status, pid,
proc_start, host, device, device_name, started_at (the first start) / resumed_at (the latest
resume, or null) / ended_at (Unix s), attempts, message, num_params, train_tokens,
val_tokens, val_words, total_steps, steps_per_epoch, tokens_per_step, batch_size (per process),
global_batch_size, git_commit,
world_size, nnodes (nodes of a multi-node job; 1 otherwise), step, epoch, tokens_seen, best_val_loss, best_val_ppl, best_step, best_epoch,
elapsed_s, wall_time_s.

Format versions (a file without ``format`` is version 1, and every reader accepts it):

- ``run.json`` 1: ``proc_start`` is the process start in Linux clock ticks since boot;
  2: ``proc_start`` is the process creation time in Unix seconds (psutil, every OS).
- ``metrics.jsonl`` 1 and 2 hold the same events (2 adds ``eval_start`` / ``eval_progress``
  and ``eval_s``, which version-1 readers ignore).

Units and meanings that are easy to misread:

- ``epoch`` counts *finished* passes over the training tokens, so evaluations in the
  middle of an epoch repeat it; the fractional epoch is ``step / steps_per_epoch``.
- ``tokens_per_step`` is per process (batch_size × seq_len × grad_accum_steps); ``batch_size`` is
  sequences per process per micro-step, ``global_batch_size`` sequences per optimizer step over
  every process (batch_size × grad_accum_steps × world_size);
  ``tokens_seen`` and ``tokens_per_s`` count every process (× world_size under DDP).
- ``elapsed_s`` is the training clock carried in the checkpoint: a resumed run goes on
  from the checkpoint's value, so time an interrupted attempt spent after its last
  checkpoint is not in it. ``wall_time_s`` is the wall time of every attempt added up
  (start-up and evaluations included, a killed attempt up to its last ``run.json``
  update); cost is computed from it.

Every whole-file write is atomic (temp file in the same folder, fsync, ``os.replace``),
so a reader never sees half a file; ``metrics.jsonl`` is only appended to, one
``write`` per line, and readers ignore a partial last line. This module never imports
torch: the app reads runs with it at start-up.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from .heartbeat import run_alive
from .process import pid_alive

RUN_FORMAT = 2
"""The version of ``run.json`` this code writes (see the module docstring)."""
METRICS_FORMAT = 2
"""The version of ``metrics.jsonl`` this code writes (in its ``start`` event)."""


class Status(StrEnum):
    """A run's status. ``starting`` is written by the trainer before its first step (and
    shown for a run the app launched that has no ``run.json`` yet); ``interrupted`` is
    never written: it is what a reader reports for a run whose ``run.json`` says live while
    its process is gone (killed, machine rebooted)."""

    STARTING = "starting"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    IMPORTED = "imported"  # made by `tui-lab import` from a foreign checkpoint: no training happened here

    @property
    def is_live(self) -> bool:
        """A process is (or should be) training this run now."""
        return self in (Status.STARTING, Status.RUNNING)

    @property
    def is_resumable(self) -> bool:
        """``--resume`` may continue it (when it has a checkpoint)."""
        return self in (Status.STOPPED, Status.INTERRUPTED, Status.FAILED, Status.DIVERGED)

    @classmethod
    def of(cls, value: Any) -> "Status | None":
        """The status named ``value`` (a string from ``run.json``), or None when unknown."""
        try:
            return cls(value)
        except ValueError:
            return None


def is_live(status: Any) -> bool:
    """Whether the status string ``status`` is ``starting`` or ``running``."""
    s = Status.of(status)
    return s is not None and s.is_live


STATUSES = tuple(s.value for s in Status)
IMPORTED = Status.IMPORTED

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.safetensors"
LAST_WEIGHTS = "last.safetensors"
TRAIN_STATE = "last.state.pt"


def file_format(obj: dict[str, Any] | None) -> int:
    """The ``format`` version of a run file's object (1 when absent: files from before it)."""
    v = (obj or {}).get("format")
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else 1


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing or unreadable."""
    try:
        obj = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _parse_jsonl(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of ``body``'s lines (no trailing newline); garbled lines skipped."""
    try:  # every line whole: one parse of them all as a JSON array (~3x faster than line by line)
        objs = json.loads(b"[" + body.replace(b"\n", b",") + b"]")
        if len(objs) != body.count(b"\n") + 1:  # a line holding two values ("1, 2") is not two events
            raise ValueError("not one value per line")
    except ValueError:  # a blank or garbled line somewhere: line by line, skipping those
        objs = []
        for line in body.splitlines():
            try:
                objs.append(json.loads(line))
            except ValueError:
                continue
    return [o for o in objs if isinstance(o, dict)]


def read_jsonl(path: Path, offset: int = 0, max_bytes: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines of ``path`` from byte ``offset``; returns (objects, new offset).

    A partial last line (a writer mid-append, or killed) is not consumed: the new offset
    stops before it, so the next call picks it up once complete. Garbled complete lines
    are skipped. ``max_bytes``: read at most this many bytes (the lines that end inside
    them; a line longer than that is read whole), so a long file can be read in pieces.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read() if max_bytes is None else fh.read(max_bytes)
            end = chunk.rfind(b"\n")
            if end < 0 and max_bytes is not None and len(chunk) == max_bytes:  # one line longer than max_bytes
                chunk += fh.readline()
                end = chunk.rfind(b"\n")
    except FileNotFoundError:
        return [], offset
    if end < 0:
        return [], offset
    return _parse_jsonl(chunk[:end]), offset + end + 1


def read_jsonl_tail(path: Path, n_bytes: int) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines in the last ``n_bytes`` of ``path`` (from the first line that
    starts inside them; a window holding no whole line is widened until it does); returns
    (objects, offset after the last complete line), as :func:`read_jsonl` would from there.
    A missing file gives ``([], 0)``."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            while True:
                start = max(0, size - n_bytes)
                fh.seek(start)
                chunk = fh.read()
                first = chunk.find(b"\n") if start > 0 else -1  # the line the window starts inside
                last = chunk.rfind(b"\n")
                if start == 0 or last > first:
                    break
                n_bytes *= 2
    except FileNotFoundError:
        return [], 0
    if last < 0:
        return [], 0
    return _parse_jsonl(chunk[first + 1:last]), start + last + 1


def collapse_resumes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the events a resumed run superseded: at each ``resume`` event at step S, the
    earlier events with a step > S (written after the checkpoint it resumed from) go, so
    curves continue without duplicates."""
    out: list[dict[str, Any]] = []
    for e in events:
        if e.get("event") == "resume":
            s = e.get("step", 0)
            out = [x for x in out if (x.get("step") or 0) <= s or x.get("event") in ("start",)]
        out.append(e)
    return out


def load_history(run: "RunDir") -> list[dict[str, Any]]:
    """All events of a run, resumes collapsed (see :func:`collapse_resumes`)."""
    events, _ = read_jsonl(run.metrics_path)
    return collapse_resumes(events)


def process_alive(info: dict[str, Any]) -> bool:
    """Whether the process a run file (``run.json``, the queue runner's file) names by
    ``pid`` / ``proc_start`` is still alive on this machine; ``proc_start`` is read in the
    unit of the file's format (clock ticks in version 1, Unix seconds from version 2)."""
    return pid_alive(info.get("pid"), info.get("proc_start"), ticks=file_format(info) < 2)


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxx``: sortable by start time, unique across concurrent starts."""
    import secrets  # here: the app imports this module before its first frame

    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class RunDir:
    """A run folder and its files (the paths; reading them is on the methods)."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def experiment(self) -> str:
        return self.path.parent.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def run_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def best_weights_path(self) -> Path:
        """``checkpoints/best.safetensors``: the weights with the lowest validation loss."""
        return self.checkpoint_dir / BEST_WEIGHTS

    @property
    def last_weights_path(self) -> Path:
        """``checkpoints/last.safetensors``: the weights at the latest evaluation or stop."""
        return self.checkpoint_dir / LAST_WEIGHTS

    @property
    def train_state_path(self) -> Path:
        """``checkpoints/last.state.pt``: optimizer, data position and RNG for ``--resume``."""
        return self.checkpoint_dir / TRAIN_STATE

    def can_resume(self) -> bool:
        """True when the folder holds the training state that ``--resume`` needs."""
        return self.train_state_path.is_file()

    def exists(self) -> bool:
        return self.run_path.is_file() or self.config_path.is_file()

    def read_config(self) -> dict[str, Any] | None:
        return read_json(self.config_path)

    def read_run(self) -> dict[str, Any]:
        """``run.json`` with the status corrected for a dead writer (``interrupted``): the pid
        check on this host, the heartbeat's age for a run on another host (:mod:`.heartbeat`)."""
        info = read_json(self.run_path) or {}
        if is_live(info.get("status")) and not run_alive(info, self.path, process_alive):
            info["status"] = Status.INTERRUPTED.value
        return info

    def summary(self) -> "RunSummary":
        """This run with its ``run.json`` (see :meth:`read_run`)."""
        return RunSummary(self, self.read_run())

    def update_run(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``run.json`` (atomic), stamped with :data:`RUN_FORMAT`. Only
        the run's writer calls this."""
        info = read_json(self.run_path) or {}
        info.update(fields)
        info["format"] = RUN_FORMAT
        atomic_write_json(self.run_path, info)
        return info

    def read_metrics(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        return read_jsonl(self.metrics_path, offset)

    def chat_checkpoint(self) -> Path | None:
        """The weights to chat with: ``best.safetensors``, else ``last.safetensors`` (a run
        stopped before its first improvement), else None."""
        for p in (self.best_weights_path, self.last_weights_path):
            if p.is_file():
                return p
        return None


@dataclass(frozen=True)
class RunSummary:
    """A run and its ``run.json`` at one moment (status corrected for a dead process): what
    the lists show. :class:`~tui_lab.runs.follow.RunSnapshot` adds the run's history."""

    run: RunDir
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.info.get("status") or Status.STARTING.value)

    @property
    def is_live(self) -> bool:
        return is_live(self.status)


class MetricsWriter:
    """Appends events to ``metrics.jsonl``: one ``os.write`` per line on an O_APPEND fd,
    so concurrent readers see whole lines (a crash can leave only a partial last line).
    The ``start`` event is stamped with :data:`METRICS_FORMAT`."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        obj = {"event": event, "time": round(time.time(), 3), **fields}
        if event == "start":
            obj.setdefault("format", METRICS_FORMAT)
        os.write(self._fd, (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8"))
        return obj

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def create_run(runs_dir: Path | str, experiment: str, run_id: str | None = None) -> RunDir:
    """Make a new, empty run folder ``runs_dir/experiment/run_id`` (never reuses one). The
    one place run folders are created (the trainer's, the app's launcher's, the queue's).

    Raises:
        FileExistsError: ``run_id`` was given and that folder holds a run already.
    """
    parent = Path(runs_dir) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    if run_id is not None:
        # a folder reserved by the app's launcher (empty but for train.log) may be taken
        path = parent / run_id
        path.mkdir(exist_ok=True)
        run = RunDir(path)
        if run.exists():
            raise FileExistsError(path)
        return run
    while True:
        path = parent / new_run_id()
        try:
            path.mkdir()
            return RunDir(path)
        except FileExistsError:
            continue

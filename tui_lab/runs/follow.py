"""Following runs as they are written: incremental readers and the figures derived from them.

Plain file reading and arithmetic (no Textual, no torch), so the app's watcher threads, the
CLI and tests share it:

- :class:`RunFollower` reads one run folder incrementally: new ``metrics.jsonl`` lines from
  the byte offset where it stopped (a partial last line is left for the next read),
  ``run.json`` and the tail of ``train.log``. A run that is not live is checked with one
  ``stat`` per file (nothing is read unless a file changed), so an idle app showing a
  finished run costs nothing measurable.
- :class:`RunSnapshot` is what the panels show for a run at one moment: immutable, with the
  definitions of the live figures (progress, elapsed time, ETA, evaluation progress,
  tokens/s).
- :class:`StoreScan` / :func:`scan_store`: every run's ``run.json`` grouped by experiment,
  and the queue.
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import queue
from .find import list_runs
from .metrics import tokens_per_second
from .store import RunDir, RunSummary, Status, collapse_resumes, is_live, read_json, read_jsonl, read_jsonl_tail

LOG_TAIL_BYTES = 6144
PREVIEW_MIN_BYTES = 4 << 20
"""A ``metrics.jsonl`` at least this big (≈ 25,000 events) is first shown from its tail: the
panels' figures at once, the curves once the whole history is read (see :class:`RunFollower`)."""
PREVIEW_TAIL_BYTES = 256 << 10
"""The tail read for that first view (≈ 1,500 events: every figure the panels show)."""
HISTORY_CHUNK_BYTES = 2 << 20
"""The whole history is read this many bytes per poll (≈ 12,000 events, ≈ 50 ms of parsing and
indexing on a 2-core machine), so a key press waits at most that long for the interpreter
lock; smaller pieces made the whole read take longer (512 kB: 1.6–1.7 s instead of ≈ 1 s to
the curves of 100,000 events, benchmarks/app_scale.py)."""
MAX_SAMPLES = 8
MAX_EVAL_TIMES = 5
"""The ETA uses the mean duration of the latest this-many evaluations."""

SERIES: tuple[tuple[str, str], ...] = (
    ("train", "train_loss"), ("eval", "val_loss"), ("eval", "val_ppl"), ("train", "lr"), ("train", "tokens_per_s"),
)
"""The (event, key) curves kept incrementally for the plots."""

Curves = dict[tuple[str, str], tuple[list[float], list[float]]]


_NUMBER = frozenset((int, float))
"""The classes JSON numbers decode to (not bool, whose class is bool)."""


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def append_points(events, event: str, key: str, xs: list[float], ys: list[float]) -> None:
    """Append (step, value) of every ``event`` with a finite number under ``key``."""
    for e in events:
        if e.get("event") == event:
            v = e.get(key)
            if _finite(v):
                xs.append(e.get("step", 0))
                ys.append(v)


def series_of(events, event: str, key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` in ``event`` events (missing or non-finite values skipped)."""
    xs: list[float] = []
    ys: list[float] = []
    append_points(events, event, key, xs, ys)
    return xs, ys


@dataclass(frozen=True)
class Evaluation:
    """An evaluation in progress: started at ``step``, ``tokens_done`` of ``tokens_total``
    validation tokens read so far (from ``eval_start`` / ``eval_progress`` events)."""

    step: int
    tokens_done: int
    tokens_total: int | None
    started_at: float | None = None  # Unix s (the eval_start event's time)
    elapsed_s: float | None = None  # the training clock when it started
    updated_at: float | None = None  # Unix s of the latest progress event

    @property
    def fraction(self) -> float | None:
        if not self.tokens_total:
            return None
        return min(1.0, max(0.0, self.tokens_done / self.tokens_total))


@dataclass(frozen=True)
class RunSnapshot(RunSummary):
    """What the panels show for one run at one moment (a :class:`RunSummary` plus the run's
    history). Built in a reader thread, read in the UI thread; never changed after."""

    version: int = 0
    events: tuple[dict[str, Any], ...] = ()
    curves: Curves = field(default_factory=dict)
    log_tail: str = ""
    gpu: str | None = None
    lasts: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent_samples: tuple[dict[str, Any], ...] = ()
    evaluation: Evaluation | None = None
    eval_every: int | None = None
    eval_times: tuple[float, ...] = ()  # seconds the latest evaluations took (eval_s)
    elapsed_floor_s: float = 0.0  # elapsed shown before this snapshot: it never goes back
    history_complete: bool = True  # False: events and curves hold only the tail of a long history
    history_total_bytes: int = 0  # the size of that history (metrics.jsonl bytes) when not complete
    taken_at: float = field(default_factory=time.time)

    def series(self, event: str, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of ``key`` in ``event`` events (None values skipped)."""
        if (event, key) in self.curves:
            return self.curves[(event, key)]
        return series_of(self.events, event, key)

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

    @property
    def evaluating(self) -> Evaluation | None:
        """The evaluation running now (None when the run is not live or not evaluating)."""
        return self.evaluation if self.is_live else None

    def tokens_per_s(self) -> float | None:
        """Tokens seen ÷ training seconds at the latest ``train`` event (else ``run.json``):
        :func:`~tui_lab.runs.metrics.tokens_per_second`, as in the results table."""
        last = self.last("train")
        if last and _finite(last.get("tokens_seen")) and _finite(last.get("elapsed_s")):
            tps = tokens_per_second(last["tokens_seen"], last["elapsed_s"])
            if not self.is_live and _finite(self.info.get("tokens_seen")) and _finite(self.info.get("elapsed_s")):
                return tokens_per_second(self.info["tokens_seen"], self.info["elapsed_s"]) or tps
            return tps
        return tokens_per_second(self.info.get("tokens_seen"), self.info.get("elapsed_s"))

    def _clock_anchor(self) -> tuple[float, float | None] | None:
        """(training clock in s, Unix time it was read) from the latest event that says both:
        ``train`` and ``eval_start`` at their time; ``eval`` at its end (elapsed_s at its
        start + eval_s; without eval_s it is not an anchor: its time is its end)."""
        for e in reversed(self.events):
            kind = e.get("event")
            if not _finite(e.get("elapsed_s")):
                continue
            if kind == "eval":
                if _finite(e.get("eval_s")):
                    return e["elapsed_s"] + e["eval_s"], e.get("time")
                continue
            return e["elapsed_s"], e.get("time")
        return None

    def elapsed_s(self, now: float | None = None) -> float | None:
        """Training seconds so far (resumes included), ticking while the run is live; never
        less than what an earlier snapshot of this run showed."""
        anchor = self._clock_anchor()
        if anchor is None:
            value = self.info.get("elapsed_s")
            if not _finite(value):
                return self.elapsed_floor_s or None
            return max(float(value), self.elapsed_floor_s)
        clock, at = anchor
        if self.is_live:
            now = time.time() if now is None else now
            value = clock + max(0.0, now - at) if _finite(at) else clock
        else:
            value = max(clock, self.info.get("elapsed_s") or 0.0)
        return max(value, self.elapsed_floor_s)

    def eval_seconds(self, now: float | None = None) -> float | None:
        """The expected duration of one evaluation: the mean measured ``eval_s`` of the latest
        evaluations, else the pace of the one running now, else None."""
        if self.eval_times:
            return sum(self.eval_times) / len(self.eval_times)
        ev = self.evaluating
        if ev is not None and ev.fraction and _finite(ev.started_at):
            now = time.time() if now is None else now
            return max(0.0, (ev.updated_at or now) - ev.started_at) / ev.fraction
        return None

    def evaluations_left(self) -> int:
        """Evaluations still to come after the current step: at every multiple of
        ``eval_every``, at each epoch end and at the last step (the trainer's rule)."""
        step, total = self.progress()
        if not total or step >= total:
            return 0
        every = self.eval_every or 0
        per_epoch = self.info.get("steps_per_epoch")
        per_epoch = per_epoch if isinstance(per_epoch, int) and per_epoch > 0 else 0

        def multiples(k: int) -> int:
            return total // k - step // k if k > 0 else 0

        both = multiples(math.lcm(every, per_epoch)) if every and per_epoch else 0
        n = multiples(every) + multiples(per_epoch) - both
        last_counted = (every and total % every == 0) or (per_epoch and total % per_epoch == 0)
        return n + (0 if last_counted else 1)

    def train_seconds_per_step(self) -> float | None:
        """Training seconds per step over the latest ``train`` events, evaluation time taken
        out (the ``eval_s`` of evaluations between them: an evaluation at step s runs after
        the ``train`` event of step s)."""
        trains = []
        for e in reversed(self.events):
            if e.get("event") == "train":
                trains.append(e)
                if len(trains) == 6:
                    break
        if len(trains) < 2:
            return None
        new, old = trains[0], trains[-1]
        ds = (new.get("step") or 0) - (old.get("step") or 0)
        clock = "elapsed_s" if _finite(new.get("elapsed_s")) and _finite(old.get("elapsed_s")) else "time"
        if not (_finite(new.get(clock)) and _finite(old.get(clock))):
            return None
        dt = new[clock] - old[clock]
        for e in self.events[-200:]:
            if (e.get("event") == "eval" and _finite(e.get("eval_s"))
                    and (old.get("step") or 0) <= (e.get("step") or 0) < (new.get("step") or 0)):
                dt -= e["eval_s"]
        if ds <= 0 or dt <= 0:
            return None
        return dt / ds

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left: the steps left at the recent training pace, plus the evaluations
        still to come × the measured evaluation time, plus what is left of the evaluation
        running now. None when the run is not live or the pace is not known yet."""
        if not self.is_live:
            return None
        step, total = self.progress()
        if not total:
            return None
        per_step = self.train_seconds_per_step()
        if per_step is None and step < total:
            return None
        eval_s = self.eval_seconds(now)
        left = (total - step) * (per_step or 0.0)
        if eval_s is not None:
            left += self.evaluations_left() * eval_s
            ev = self.evaluating
            if ev is not None:
                left += eval_s * (1.0 - (ev.fraction or 0.0))
        return max(0.0, left)


class RunFollower:
    """Incremental reader of one run folder, making :class:`RunSnapshot` s. One thread at a
    time uses it (the app's watcher).

    A long history (``metrics.jsonl`` ≥ :data:`PREVIEW_MIN_BYTES`) is read in two passes: the
    first :meth:`poll` reads only its last :data:`PREVIEW_TAIL_BYTES` — what the panels show
    (latest step, losses, tokens/s, elapsed, samples) is all in there, so a 100,000-step run
    is shown as fast as a 1,000-step one — and makes snapshots with ``history_complete=False``;
    the following polls read the whole file from the start, :data:`HISTORY_CHUNK_BYTES` at a
    time (:attr:`catching_up` is True meanwhile: poll again at once), and swap it in when it
    reaches the tail. Lines appended meanwhile are read after the swap, as usual.
    """

    def __init__(self, run: RunDir, proc: subprocess.Popen | None = None):
        self.run = run
        self.proc = proc  # the process this app launched, to tell a run that died before starting
        self.info: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.curves: Curves = {k: ([], []) for k in SERIES}
        self.offset = 0
        self.lasts: dict[str, dict[str, Any]] = {}  # the latest event of each kind
        self.recent_samples: list[dict[str, Any]] = []
        self.evaluation: Evaluation | None = None
        self.eval_times: list[float] = []
        self.eval_every: int | None = None
        self.log_tail = ""
        self.version = 0
        self.elapsed_floor_s = 0.0
        self._sigs: dict[str, tuple[float, int] | None] = {}
        self._config_read = False
        self._history: RunFollower | None = None  # the whole history, being read behind a tail preview
        self._history_collapse = False  # it holds a resume event: collapse at the swap
        self._history_total = 0  # bytes of metrics.jsonl the preview ended at
        self._first_read = True

    @property
    def catching_up(self) -> bool:
        """True while the whole history is being read behind a tail preview."""
        return self._history is not None

    @property
    def live(self) -> bool:
        return is_live(self.info.get("status")) or not self.info

    def _changed(self, name: str, path: Path) -> bool:
        """Whether ``path``'s (mtime, size) differs from the last call's (one ``stat``)."""
        try:
            st = path.stat()
            sig: tuple[float, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        if name in self._sigs and self._sigs[name] == sig:
            return False
        self._sigs[name] = sig
        return True

    def poll(self) -> bool:
        """Read what is new; True when anything changed. A run that is not live is read only
        when a ``stat`` says one of its files changed."""
        live = self.live or (self.proc is not None and self.proc.poll() is None)
        changed = False
        if not self._config_read:
            self._config_read = True
            train = (read_json(self.run.config_path) or {}).get("train")
            every = train.get("eval_every") if isinstance(train, dict) else None
            self.eval_every = every if isinstance(every, int) and every > 0 else None
        if self._history is not None:
            changed |= self._read_history()
        elif self._changed("metrics", self.run.metrics_path) or live:
            if self._first_read and self._preview():
                changed = True
            else:
                new, self.offset = read_jsonl(self.run.metrics_path, self.offset)
                changed |= self._add(new)
            self._first_read = False
        if self._changed("run", self.run.run_path) or live:
            info = self.run.read_run()
            if not info and self.proc is not None and self.proc.poll() is not None:
                info = {"status": Status.FAILED.value,
                        "message": f"the training process exited (code {self.proc.returncode}) "
                                   "before it started: see the Log tab"}
            if info != self.info:
                self.info = info
                changed = True
        if self._changed("log", self.run.log_path):
            self.log_tail = tail(self.run.log_path)
            changed = True
        if changed:
            self.version += 1
        return changed

    def _add(self, new: list[dict[str, Any]]) -> bool:
        """Index events read after the ones held; True when there were any."""
        if not new:
            return False
        if any(e.get("event") == "resume" for e in new):
            self.events = collapse_resumes(self.events + new)
            self._reindex()
        else:
            self.events.extend(new)
            self._index(new)
        return True

    def _preview(self) -> bool:
        """First read of a long history: its tail only, and start reading the whole of it."""
        path = self.run.metrics_path
        try:
            size = path.stat().st_size
        except OSError:
            return False
        if size < PREVIEW_MIN_BYTES:
            return False
        new, self.offset = read_jsonl_tail(path, PREVIEW_TAIL_BYTES)
        self._add(new)
        self._history = RunFollower(self.run)
        self._history_total = self.offset
        return True

    def _read_history(self) -> bool:
        """One chunk of the whole history; at its end, swap it in. True when swapped."""
        h = self._history
        assert h is not None
        before = h.offset
        new, h.offset = read_jsonl(self.run.metrics_path, h.offset, min(HISTORY_CHUNK_BYTES,
                                                                         max(1, self._history_total - h.offset)))
        if any(e.get("event") == "resume" for e in new):
            self._history_collapse = True
        h.events.extend(new)
        h._index(new)
        if before < h.offset < self._history_total:
            return False  # more to read (no progress: the file changed under us; take what is read)
        self._history = None
        self.offset = h.offset
        if self._history_collapse:  # resumed runs: index the surviving events afresh
            self.events = collapse_resumes(h.events)
            self._reindex()
        else:  # the history's own index, built piece by piece
            self.events, self.curves, self.lasts = h.events, h.curves, h.lasts
            self.recent_samples, self.evaluation, self.eval_times = h.recent_samples, h.evaluation, h.eval_times
        return True

    def fail(self, message: str) -> bool:
        """Show ``message`` instead of the run's status; True when that is new."""
        info = {**self.info, "status": "unreadable", "message": message}
        if info == self.info:
            return False
        self.info = info
        self.version += 1
        return True

    def _reindex(self) -> None:
        self.curves = {k: ([], []) for k in SERIES}
        self.lasts, self.recent_samples, self.evaluation, self.eval_times = {}, [], None, []
        self._index(self.events)

    def _index(self, events: list[dict[str, Any]]) -> None:
        """Extend the curves, the latest event of each kind, the recent samples, the
        evaluation in progress and the measured evaluation times (one pass over ``events``)."""
        curves: dict[str, list[tuple[str, list[float], list[float]]]] = {}
        for (event, key), (xs, ys) in self.curves.items():
            curves.setdefault(event, []).append((key, xs, ys))
        lasts, curves_of, isfinite, number = self.lasts, curves.get, math.isfinite, _NUMBER  # locals: 100,000s of events
        for e in events:
            kind = e.get("event")
            lasts[kind] = e
            for key, xs, ys in curves_of(kind, ()):  # what append_points does, per event
                v = e.get(key)
                if v.__class__ in number and isfinite(v):  # _finite, inlined
                    xs.append(e.get("step", 0))
                    ys.append(v)
            if kind == "train":  # the common case first
                self.evaluation = None
            elif kind == "sample":
                self.recent_samples = (self.recent_samples + [e])[-MAX_SAMPLES:]
            elif kind == "eval_start":
                total = e.get("tokens_total")
                self.evaluation = Evaluation(int(e.get("step") or 0), 0, total if isinstance(total, int) else None,
                                             e.get("time"), e.get("elapsed_s"), e.get("time"))
            elif kind == "eval_progress":
                total = e.get("tokens_total")
                prev = self.evaluation
                self.evaluation = Evaluation(
                    int(e.get("step") or 0), int(e.get("tokens_done") or 0),
                    total if isinstance(total, int) else (prev.tokens_total if prev else None),
                    prev.started_at if prev else None, prev.elapsed_s if prev else None, e.get("time"))
            elif kind in ("eval", "end", "resume", "start"):
                self.evaluation = None
                if kind == "eval" and _finite(e.get("eval_s")):
                    self.eval_times = (self.eval_times + [float(e["eval_s"])])[-MAX_EVAL_TIMES:]

    def snapshot(self, gpu: str | None = None) -> RunSnapshot:
        snap = RunSnapshot(run=self.run, info=dict(self.info), version=self.version, events=tuple(self.events),
                           curves={k: (list(xs), list(ys)) for k, (xs, ys) in self.curves.items()},
                           log_tail=self.log_tail, gpu=gpu, lasts=dict(self.lasts),
                           recent_samples=tuple(self.recent_samples), evaluation=self.evaluation,
                           eval_every=self.eval_every, eval_times=tuple(self.eval_times),
                           elapsed_floor_s=self.elapsed_floor_s, history_complete=self._history is None,
                           history_total_bytes=self._history_total if self._history else 0)
        self.elapsed_floor_s = snap.elapsed_s() or self.elapsed_floor_s
        return snap


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
        vals = [v for v in vals if _finite(v)]
        return min(vals) if vals else None


def scan_store(runs_dir: Path) -> StoreScan:
    """Read every ``run.json`` (status corrected for dead processes) and the queue."""
    grouped: dict[str, list[RunSummary]] = {}
    for s in list_runs(runs_dir):
        grouped.setdefault(s.run.experiment, []).append(s)
    return StoreScan(grouped, queue.read_queue(runs_dir), queue.runner_info(runs_dir))

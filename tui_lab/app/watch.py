"""Follow one run folder: new ``metrics.jsonl`` lines from a byte offset, ``run.json``,
and the tail of ``train.log``. Pure file reading, no Textual, no torch: the app's worker
thread calls :meth:`RunState.poll` a few times a second."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs.store import RunDir, collapse_resumes, read_jsonl

LOG_TAIL_BYTES = 4096


@dataclass
class RunState:
    """What the panels show for one run, updated incrementally by :meth:`poll`."""

    run: RunDir
    info: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    log_tail: str = ""
    _log_mtime: float = 0.0
    version: int = 0  # bumped whenever anything changed, so widgets redraw only then

    def poll(self) -> bool:
        """Read what is new; True when something changed."""
        changed = False
        new, self.offset = read_jsonl(self.run.metrics_path, self.offset)
        if new:
            resumed = any(e.get("event") == "resume" for e in new)
            self.events.extend(new)
            if resumed:
                self.events = collapse_resumes(self.events)
            changed = True
        info = self.run.read_run()
        if info != self.info:
            self.info = info
            changed = True
        try:
            mtime = self.run.log_path.stat().st_mtime
        except OSError:
            mtime = 0.0
        if mtime != self._log_mtime:
            self._log_mtime = mtime
            self.log_tail = _tail(self.run.log_path)
            changed = True
        if changed:
            self.version += 1
        return changed

    # ----------------------------------------------------------- derived views
    def series(self, event: str, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of ``key`` in events of kind ``event`` (None values skipped)."""
        xs, ys = [], []
        for e in self.events:
            if e.get("event") == event and e.get(key) is not None:
                xs.append(e.get("step", 0))
                ys.append(e[key])
        return xs, ys

    def last(self, event: str) -> dict[str, Any] | None:
        for e in reversed(self.events):
            if e.get("event") == event:
                return e
        return None

    def samples(self, n: int = 4) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "sample"][-n:]

    def progress(self) -> tuple[int, int | None]:
        total = self.info.get("total_steps")
        last = self.last("train")
        step = max(self.info.get("step") or 0, last.get("step", 0) if last else 0)
        return step, total

    def eta_s(self) -> float | None:
        """Seconds left at the recent pace (steps per second between the last train events)."""
        step, total = self.progress()
        trains = [e for e in self.events if e.get("event") == "train"][-6:]
        if not total or len(trains) < 2 or self.info.get("status") != "running":
            return None
        ds = trains[-1]["step"] - trains[0]["step"]
        dt = trains[-1]["time"] - trains[0]["time"]
        if ds <= 0 or dt <= 0:
            return None
        return (total - step) * dt / ds

    def elapsed_s(self) -> float | None:
        """Training seconds so far (resumes included), ticking while the run is running."""
        last = None
        for e in reversed(self.events):
            if e.get("elapsed_s") is not None:
                last = e
                break
        if last is None:
            return self.info.get("elapsed_s")
        if self.info.get("status") == "running":
            return last["elapsed_s"] + max(0.0, time.time() - last.get("time", time.time()))
        return max(last["elapsed_s"], self.info.get("elapsed_s") or 0.0)


def _tail(path: Path, n_bytes: int = LOG_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > n_bytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text

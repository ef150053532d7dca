"""Finding runs: every run of a runs folder, a run named on a command line, run order.

Moved here from ``results/tables.py`` so that every layer above the run store (the CLI, the
app, the results) finds runs the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from .store import RunDir, RunSummary


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v


def list_runs(runs_dir: Path | str, experiment: str | None = None) -> list[RunSummary]:
    """Every run under ``runs_dir`` (of one experiment if given) with its ``run.json``,
    ordered by ``run.json``'s ``started_at``, then run id."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    parents: Iterable[Path] = [root / experiment] if experiment else sorted(p for p in root.iterdir() if p.is_dir())
    out = []
    for parent in parents:
        if not parent.is_dir():
            continue
        for path in sorted(parent.iterdir()):
            run = RunDir(path)
            if path.is_dir() and run.exists():
                out.append(run.summary())
    out.sort(key=lambda s: (s.info.get("started_at") or 0, s.run.run_id))
    return out


def resolve_run(spec: str, runs_dir: Path | str) -> RunDir:
    """A run from a folder path, ``experiment/run_id`` or a bare run id under ``runs_dir``.

    A path to an existing run folder wins; then ``runs_dir/spec``; then a run id that is
    unique across the experiments under ``runs_dir``.

    Raises:
        LookupError: no such run, or a bare run id found under several experiments (the
            message names what was looked for and where).
    """
    spec = str(spec)
    if not spec.strip():
        raise LookupError("an empty run name: give a run folder, experiment/run_id or a run id")
    path = RunDir(Path(spec))
    if path.path.is_dir() and path.exists():
        return path
    root = Path(runs_dir)
    nested = RunDir(root / spec)
    if nested.path.is_dir() and nested.exists():
        return nested
    matches: list[RunDir] = []
    if "/" not in spec and root.is_dir():
        for parent in sorted(p for p in root.iterdir() if p.is_dir()):
            candidate = RunDir(parent / spec)
            if candidate.path.is_dir() and candidate.exists():
                matches.append(candidate)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(f"{m.experiment}/{m.run_id}" for m in matches)
        raise LookupError(f"run {spec!r} is ambiguous under {root} ({names}): give experiment/run_id")
    if path.path.is_dir():
        raise LookupError(f"run {spec!r}: {spec} is a folder but not a run folder (no run.json or config.json)")
    raise LookupError(f"run {spec!r}: no run folder with that path, and no run with that id under {root}")


def first_start(run: RunDir, info: dict[str, Any] | None = None) -> float | None:
    """When ``run`` first started (Unix s): its ``start`` event, the first line of
    ``metrics.jsonl``; else ``run.json``'s ``started_at`` (kept across resumes)."""
    try:
        with open(run.metrics_path, "rb") as fh:
            first = json.loads(fh.readline() or b"null")
        if isinstance(first, dict) and first.get("event") == "start" and _num(first.get("time")) is not None:
            return first["time"]
    except (OSError, ValueError):
        pass
    return _num((run.read_run() if info is None else info).get("started_at"))


def order_runs(runs: list[RunDir]) -> list[RunDir]:
    """``runs`` by first start time (:func:`first_start`; unknown first), then run id."""
    return sorted(runs, key=lambda r: (first_start(r) or 0.0, r.run_id, r.experiment))


def all_runs(runs_dir: Path | str) -> list[RunDir]:
    """Every run folder under ``runs_dir`` (see :func:`list_runs`), in :func:`order_runs` order."""
    return order_runs([s.run for s in list_runs(runs_dir)])

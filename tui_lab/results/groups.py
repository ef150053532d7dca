"""Seed groups: runs that differ only in ``train.seed``, summarised as mean ± std (n).

A **seed group** is every run of one experiment whose saved config (``config.json``) is the
same once ``train.seed`` and the run's sweep record are set aside: the runs of one sweep
point that differ only in their seed (and runs trained by hand the same way). For each
headline figure of :func:`~tui_lab.results.tables.run_record` a group gives a :class:`Stat`:

- ``n``: the runs that have the figure (a run with no evaluation yet has no best val ppl);
- ``mean``: the arithmetic mean over those n runs;
- ``std``: the **sample** standard deviation, ``sqrt(sum((x - mean)^2) / (n - 1))``
  (Bessel's correction, as numpy ``std(ddof=1)`` and pandas ``.std()``); None when n < 2;
- ``min``, ``max``: the smallest and largest of the n values.

Each figure keeps its own definition from the runs table: ``best_val_ppl`` is a run's
lowest validation perplexity, ``tokens_per_s`` its mean training throughput, etc. The
group's mean of best perplexities is therefore not the perplexity of any one model.

No torch here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.sweep import point_label
from ..runs.store import RunDir
from .compare import flatten_config as flatten  # one dotted-key flattener for the diff and the groups
from .tables import RUN_COLUMNS, Column, Table, all_runs, run_record

SEED_KEY = "train.seed"

HEADLINE = ("best_val_ppl", "best_val_loss", "best_val_word_ppl", "tokens_per_s", "final_train_loss",
            "tokens_seen", "wall_time_s", "cost_usd")
"""The figures a seed group summarises (keys of :func:`~tui_lab.results.tables.run_record`)."""


@dataclass(frozen=True)
class Stat:
    """One figure over a group's runs: n, mean, sample std (n - 1; None when n < 2), min, max."""

    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[Any]) -> "Stat":
        """The statistics of the finite numbers among ``values`` (others are left out)."""
        xs = [float(v) for v in values
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        n = len(xs)
        if not n:
            return cls(0, None, None, None, None)
        mean = math.fsum(xs) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
        return cls(n, mean, std, min(xs), max(xs))

    def text(self, decimals: int = 2) -> str:
        """``mean ± std (n)`` as people read it: ``123.45 ± 1.20 (3)``; ``123.45 (1)`` for one
        run; ``-`` for none."""
        if self.mean is None:
            return "-"
        body = f"{self.mean:,.{decimals}f}"
        if self.std is not None:
            body += f" ± {self.std:,.{decimals}f}"
        return f"{body} ({self.n})"


@dataclass
class SeedGroup:
    """Runs of one experiment that differ only in ``train.seed``.

    Attributes:
        experiment: the experiment's name.
        label: what sets the group apart, as ``section.key=value`` words: the sweep point's
            overrides without the seed (``train.lr=0.001``), ``-`` when there are none.
        sweep: the sweep id when every run belongs to the same sweep, else None.
        runs: the runs, in the order given.
        seeds: each run's ``train.seed`` (None where the config has none).
        stats: :class:`Stat` per figure of :data:`HEADLINE`.
        records: each run's :func:`~tui_lab.results.tables.run_record`.
    """

    experiment: str
    label: str
    sweep: str | None
    runs: list[RunDir] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)
    stats: dict[str, Stat] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n(self) -> int:
        """How many runs the group holds."""
        return len(self.runs)


def sweep_record(run: RunDir) -> dict[str, Any] | None:
    """The run's sweep record from ``config.json`` (``{id, overrides, set}``), or None when the
    run is not part of a sweep."""
    rec = (run.read_config() or {}).get("sweep")
    return rec if isinstance(rec, dict) and isinstance(rec.get("id"), str) else None


def sweep_runs(runs_dir: Path | str, sweep_id: str) -> list[RunDir]:
    """The runs of sweep ``sweep_id`` under ``runs_dir``, by first start."""
    return [r for r in all_runs(runs_dir) if (sweep_record(r) or {}).get("id") == sweep_id]


def sweep_ids(runs_dir: Path | str) -> list[str]:
    """Every sweep id found under ``runs_dir``, in order of first appearance."""
    seen: dict[str, None] = {}
    for r in all_runs(runs_dir):
        rec = sweep_record(r)
        if rec:
            seen.setdefault(rec["id"], None)
    return list(seen)


def _group_key(run: RunDir) -> tuple[str, str]:
    config = {k: v for k, v in (run.read_config() or {}).items() if k not in ("sweep", "name")}
    flat = flatten(config)
    flat.pop(SEED_KEY, None)
    return run.experiment, json.dumps(flat, sort_keys=True, default=str)


def _label(run: RunDir) -> str:
    rec = sweep_record(run)
    point = {k: v for k, v in ((rec or {}).get("overrides") or {}).items() if k != SEED_KEY}
    return point_label(point)


def seed_groups(runs: list[RunDir], price_per_gpu_hour: float = 0.0,
                metrics: tuple[str, ...] = HEADLINE) -> list[SeedGroup]:
    """Group ``runs`` into :class:`SeedGroup` s (runs whose configs differ only in
    ``train.seed``), groups in order of their first run, runs in the order given; each group
    with n, mean, std (sample, n - 1), min and max of every figure in ``metrics``."""
    groups: dict[tuple[str, str], SeedGroup] = {}
    for run in runs:
        key = _group_key(run)
        rec = sweep_record(run)
        group = groups.get(key)
        if group is None:
            group = groups[key] = SeedGroup(run.experiment, _label(run), rec["id"] if rec else None)
        elif group.sweep != (rec["id"] if rec else None):
            group.sweep = None
        seed = flatten(run.read_config() or {}).get(SEED_KEY)
        group.runs.append(run)
        group.seeds.append(seed if isinstance(seed, int) else None)
        group.records.append(run_record(run, price_per_gpu_hour))
    for group in groups.values():
        group.stats = {m: Stat.of([r.get(m) for r in group.records]) for m in metrics}
    return list(groups.values())


def _run_column(key: str) -> Column:
    for c in RUN_COLUMNS:
        if c.key == key:
            return c
    raise KeyError(key)


def group_table(groups: list[SeedGroup], human: bool = True, title: str = "Seed groups",
                metrics: tuple[str, ...] = HEADLINE) -> Table:
    """One row per seed group.

    ``human=True`` (Markdown, LaTeX, the app): per figure one text column ``mean ± std (n)``
    (:meth:`Stat.text`, the figure's decimals). ``human=False`` (CSV, JSON): per figure the
    numbers ``<key>_mean``, ``<key>_std``, ``<key>_min``, ``<key>_max`` and ``<key>_n``. Both
    start with experiment, sweep, the group's label (its overrides without the seed), n and the
    seeds.
    """
    cols = [Column("experiment", "Experiment"), Column("sweep", "Sweep"), Column("group", "Overrides"),
            Column("n", "n", "int", unit="runs"), Column("seeds", "Seeds")]
    for key in metrics:
        base = _run_column(key)
        if human:
            cols.append(Column(key, f"{base.name} (mean ± std, n)"))
        else:
            kind = "float"
            cols += [Column(f"{key}_mean", f"{base.name} mean", kind, base.decimals, base.unit),
                     Column(f"{key}_std", f"{base.name} std", kind, base.decimals, base.unit),
                     Column(f"{key}_min", f"{base.name} min", kind, base.decimals, base.unit),
                     Column(f"{key}_max", f"{base.name} max", kind, base.decimals, base.unit),
                     Column(f"{key}_n", f"{base.name} n", "int", unit="runs")]
    rows = []
    for g in groups:
        row: dict[str, Any] = {"experiment": g.experiment, "sweep": g.sweep, "group": g.label, "n": g.n,
                               "seeds": ", ".join("-" if s is None else str(s) for s in g.seeds)}
        for key in metrics:
            st = g.stats.get(key) or Stat.of([])
            if human:
                col = _run_column(key)
                row[key] = st.text(col.decimals if col.kind == "float" else 0)
            else:
                row.update({f"{key}_mean": st.mean, f"{key}_std": st.std, f"{key}_min": st.min,
                            f"{key}_max": st.max, f"{key}_n": st.n})
        rows.append(row)
    return Table(title, cols, rows)


SWEEP_COLUMNS = [Column("sweep", "Sweep"), Column("overrides", "Overrides"), Column("seed", "Seed", "int")]
"""The columns :func:`sweep_table` puts before the runs table's."""


def sweep_table(runs: list[RunDir], price_per_gpu_hour: float = 0.0, title: str = "Sweep") -> Table:
    """The runs table (:data:`~tui_lab.results.tables.RUN_COLUMNS`) of ``runs`` with each run's
    sweep id, its own overrides (the grid point) and ``train.seed`` in front, in the order given."""
    rows = []
    for run in runs:
        rec = sweep_record(run) or {}
        seed = flatten(run.read_config() or {}).get(SEED_KEY)
        rows.append({**run_record(run, price_per_gpu_hour), "sweep": rec.get("id"),
                     "overrides": point_label(rec.get("overrides") or {}), "seed": seed})
    return Table(title, SWEEP_COLUMNS + list(RUN_COLUMNS), rows)


CURVE_FIELDS = {"val_ppl": "eval", "val_loss": "eval", "train_loss": "train", "tokens_per_s": "train"}
"""The metrics.jsonl fields :func:`group_curve` can aggregate, and the event holding each."""


def group_curve(runs: list[RunDir], field: str = "val_ppl", x: str = "step") -> list[tuple[float, float, float, float, int]]:
    """A seed group's curve: for each x (``step`` or ``tokens_seen``) at which any run logged
    ``field``, ``(x, mean, min, max, n)`` over the runs that have a value there, x ascending
    (the compare view draws the mean with a shaded min–max band). History through
    :func:`~tui_lab.runs.store.load_history` (events a resume superseded are dropped).

    Raises:
        ValueError: unknown ``field`` (see :data:`CURVE_FIELDS`) or ``x``.
    """
    from ..runs.store import load_history

    if field not in CURVE_FIELDS:
        raise ValueError(f"field {field!r}: choose one of {', '.join(CURVE_FIELDS)}")
    if x not in ("step", "tokens_seen"):
        raise ValueError(f"x {x!r}: choose step or tokens_seen")
    at: dict[float, list[float]] = {}
    for run in runs:
        seen: dict[float, float] = {}
        for e in load_history(run):
            xv, yv = e.get(x), e.get(field)
            if e.get("event") == CURVE_FIELDS[field] and isinstance(xv, (int, float)) \
                    and isinstance(yv, (int, float)) and math.isfinite(yv):
                seen[float(xv)] = float(yv)  # the last value at an x
        for xv, yv in seen.items():
            at.setdefault(xv, []).append(yv)
    return [(xv, math.fsum(ys) / len(ys), min(ys), max(ys), len(ys)) for xv, ys in sorted(at.items())]

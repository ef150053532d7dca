"""Sweeps from ``experiments.toml``: a grid of ``--set`` overrides, one run per grid point.

::

    [experiments.demo.sweep]
    "train.lr" = [1e-3, 2e-3]
    "train.seed" = [0, 1]

is four runs: the Cartesian product of the lists, first key outermost (``train.lr=0.001
train.seed=0``, ``train.lr=0.001 train.seed=1``, ``train.lr=0.002 train.seed=0`` ...). Each
key is a ``section.key`` that ``--set`` takes; each value is checked like a ``--set`` value
(:func:`check_sweep`, when the file is loaded: an unknown key or a value of the wrong type is a
:class:`~tui_lab.config.ConfigError` naming the file, experiment and key, and ``tui-lab check``
exits 2). :func:`plan_sweep` resolves every run (with common ``--set`` overrides) before
anything is queued; :func:`enqueue_sweep` appends them to the runs folder's queue
(:mod:`tui_lab.runs.queue`), each entry carrying its sweep record, which the trainer saves in
the run's ``config.json`` under ``sweep``: ``{"id", "overrides": {key: value}, "set": [...]}``
(``overrides``: this run's own grid values; ``set``: the ``--set`` overrides common to the sweep).
No torch here.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .load import REPLACES, ConfigError, ExperimentsConfig, apply_overrides, parse_override, validate_experiment
from .schema import DataConfig, ModelConfig, TrainConfig

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
"""The tables a sweep key may name, and their schema."""

MAX_RUNS = 1024
"""The largest grid a sweep may hold (a typo like a 1,000-value list is refused, not queued)."""


def toml_literal(value: Any) -> str:
    """``value`` as a TOML value, the text a ``--set key=VALUE`` takes back unchanged.

    >>> toml_literal(0.001), toml_literal(True), toml_literal("a b"), toml_literal([1, 2])
    ('0.001', 'true', '"a b"', '[1, 2]')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_literal(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"sweep value {value!r}: not a TOML value")


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid's points: the Cartesian product of the value lists, first key outermost."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_overrides(point: dict[str, Any]) -> list[str]:
    """A point as ``--set`` overrides: ``["train.lr=0.001", "train.seed=0"]``."""
    return [f"{key}={toml_literal(value)}" for key, value in point.items()]


def point_label(point: dict[str, Any]) -> str:
    """A point as people read it: ``train.lr=0.001 train.seed=0`` (``-`` for the empty point)."""
    return " ".join(point_overrides(point)) or "-"


def _base_table(raw_exp: dict[str, Any]) -> dict[str, Any]:
    """An experiment's raw table without its sweep grid (a point is one run, not a sweep)."""
    return {k: v for k, v in raw_exp.items() if k != "sweep"}


def _check_key(key: str, name: str, source: str) -> None:
    where = f"{source}: experiment '{name}': sweep key '{key}'"
    section, dot, leaf = key.partition(".")
    if not dot or not leaf or "." in leaf:
        raise ConfigError(f"{where}: a sweep key is section.key, e.g. \"train.lr\" (sections: {', '.join(SECTIONS)})")
    if section not in SECTIONS:
        raise ConfigError(f"{where}: unknown section '{section}' (sections: {', '.join(SECTIONS)})")
    if leaf not in SECTIONS[section].model_fields:
        raise ConfigError(f"{where}: unknown key (the {section} table has: "
                          f"{', '.join(SECTIONS[section].model_fields)})")


def check_sweep(raw_exp: dict[str, Any], name: str, source: str = "<config>") -> list[dict[str, Any]]:
    """Check an experiment's ``sweep`` grid the way ``--set`` overrides are checked; its points.

    Each key must be a known ``section.key``; each value must make a valid experiment on its
    own (so the error names the key and value), and each point as a whole (keys that depend on
    each other, like ``model.d_model`` and ``model.num_heads``).

    Raises:
        ConfigError: an unknown key, a value of the wrong type or range, an invalid point, or
            more than :data:`MAX_RUNS` points; the message names the file, experiment and key.
    """
    grid = raw_exp.get("sweep")
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{source}: experiment '{name}': the sweep table needs at least one \"section.key\" = [values]")
    base = _base_table(raw_exp)
    for key, values in grid.items():
        _check_key(key, name, source)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: experiment '{name}': sweep key '{key}': give a non-empty list of values")
        for value in values:
            text = f"{key}={toml_literal(value)}"
            validate_experiment(apply_overrides(base, [text]), name, source=f"{source} (sweep key {key} = {toml_literal(value)})")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_RUNS:
        raise ConfigError(f"{source}: experiment '{name}': the sweep has {n:,} runs; at most {MAX_RUNS:,}")
    points = grid_points(grid)
    for point in points:
        sets = point_overrides(point)
        validate_experiment(apply_overrides(base, sets), name, source=f"{source} (sweep point {point_label(point)})")
    return points


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its grid point and every ``--set`` override it trains with."""

    experiment: str
    point: dict[str, Any]
    overrides: list[str]  # the sweep's common --set overrides, then the point's

    @property
    def label(self) -> str:
        """The point as people read it (``train.lr=0.001 train.seed=0``)."""
        return point_label(self.point)


@dataclass(frozen=True)
class SweepPlan:
    """A sweep resolved and validated, ready to queue: ``id``, the experiment, the common
    ``--set`` overrides and one :class:`SweepRun` per grid point."""

    id: str
    experiment: str
    sets: list[str]
    runs: list[SweepRun] = field(default_factory=list)

    def record(self, run: SweepRun) -> dict[str, Any]:
        """What a run's ``config.json`` keeps under ``sweep``: ``{id, overrides, set}``."""
        return {"id": self.id, "overrides": dict(run.point), "set": list(self.sets)}


def new_sweep_id(experiment: str) -> str:
    """A new sweep id, ``NAME-YYYYmmdd-HHMMSS-xxxx`` (local time, 4 random hex digits)."""
    return f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def plan_sweep(cfg: ExperimentsConfig, name: str, sets: list[str] | None = None,
               sweep_id: str | None = None) -> SweepPlan:
    """Resolve experiment ``name``'s sweep with the common ``--set`` overrides ``sets``.

    Every run is validated (:meth:`ExperimentsConfig.get`) before the plan is returned, so a
    caller queues all of it or nothing.

    Raises:
        ConfigError: no such experiment, no sweep table, a ``--set`` of a key the grid sweeps
            (or of one it replaces, like ``train.batch_size`` / ``train.global_batch_size``),
            or a run that is invalid with these overrides.
    """
    exp = cfg.get(name)
    if not exp.sweep:
        raise ConfigError(f"{cfg.path}: experiment '{name}' has no [experiments.{name}.sweep] table "
                          "(e.g. \"train.lr\" = [1e-3, 2e-3])")
    sets = list(sets or [])
    grid_keys = set(exp.sweep)
    for text in sets:
        key = parse_override(text)[0]
        if key in grid_keys or REPLACES.get(key) in grid_keys:
            raise ConfigError(f"--set {text!r}: the sweep of '{name}' varies {key if key in grid_keys else REPLACES[key]}; "
                              "remove it from the --set or from the sweep table")
    runs = []
    for point in grid_points(exp.sweep):
        overrides = sets + point_overrides(point)
        cfg.get(name, overrides)
        runs.append(SweepRun(name, point, overrides))
    return SweepPlan(sweep_id or new_sweep_id(name), name, sets, runs)


def enqueue_sweep(plan: SweepPlan, runs_dir: Path | str, config: Path | str, device: str = "auto",
                  start: bool = True) -> list[dict[str, Any]]:
    """Append every run of ``plan`` to the queue of ``runs_dir`` (in grid order), each entry with
    its sweep record, and start the queue runner unless ``start`` is false or one is alive.
    Returns the queue entries added. (The app's ``w`` key and ``tui-lab sweep`` call this.)

    Raises:
        OSError: the queue file cannot be written.
    """
    from ..runs import queue

    added = []
    for run in plan.runs:
        entries = queue.add(Path(runs_dir), plan.experiment, Path(config), run.overrides, device,
                            sweep=plan.record(run))
        added.append(entries[-1])
    if start and added:
        queue.start_runner(Path(runs_dir))
    return added

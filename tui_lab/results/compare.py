"""Comparing runs side by side: the arithmetic behind the app's compare view (``v``).

Plain data and arithmetic (no torch, no Textual), so the app only shows what is computed here:

- :func:`flatten_config` / :func:`config_diff`: a run's ``config.json`` as ``section.key``
  → value (``{"train": {"lr": 1e-3}}`` → ``{"train.lr": 1e-3}``) and the keys whose values
  differ between runs;
- :func:`delta`: the change of a figure from a pinned baseline, absolute and in % of the
  baseline;
- :func:`compare_table`: every compared run against the baseline (best validation perplexity,
  Δ, Δ %, tokens/s, tokens seen, D/N, wall time, cost), each figure as defined by
  :func:`~tui_lab.results.tables.run_record`;
- :func:`curve`: a metric against the step, the tokens seen or the training time;
- :func:`ema`: exponential moving average smoothing of a curve, with TensorBoard's
  de-biasing;
- :func:`perplexity_key`: token-level perplexity when the runs share a tokenizer, else
  word-level perplexity (perplexities per token of different vocabularies are not
  comparable; per word they are).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from .tables import Column, Table

IGNORED_KEYS = frozenset({"name", "description", "sweep"})
"""Top-level ``config.json`` keys that name or describe a run rather than configure it (the
experiment's name and description, a sweep run's record): left out of the config diff."""


class _Missing:
    """A key a run's config does not have (shown as ``-``)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __str__(self) -> str:
        return "-"


MISSING: Any = _Missing()
"""The value :func:`config_diff` gives a key that a run's config lacks."""


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"train": {"lr": 1e-3}}`` → ``{"train.lr": 1e-3}``.
    Lists stay values (``train.betas`` → ``[0.9, 0.95]``); an empty table has no keys."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_config(value, name + "."))
        else:
            out[name] = value
    return out


def _same(values: list[Any]) -> bool:
    first = values[0]
    for v in values[1:]:
        if (v is MISSING) != (first is MISSING):
            return False
        if v is not MISSING and json.dumps(v, sort_keys=True, default=str) != json.dumps(first, sort_keys=True,
                                                                                          default=str):
            return False
    return True


def config_diff(configs: list[dict[str, Any] | None]) -> list[tuple[str, list[Any]]]:
    """The flattened keys whose values differ between ``configs`` (one per run; None: a run
    without ``config.json``, every key :data:`MISSING`), sorted by key, each with its value
    in every run (:data:`MISSING` where a run lacks the key). Keys under
    :data:`IGNORED_KEYS` are left out. Values compare by their JSON text, so ``1`` and
    ``1.0`` differ (as they do in the file)."""
    flats = [{k: v for k, v in flatten_config(c or {}).items() if k.split(".", 1)[0] not in IGNORED_KEYS}
             for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    out = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flats]
        if not _same(values):
            out.append((key, values))
    return out


def format_value(value: Any) -> str:
    """A config value as the diff shows it: ``-`` for :data:`MISSING`, JSON for lists and
    booleans (``true``), ``g`` format for floats (``0.001``, ``3e-05``)."""
    if value is MISSING:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def delta(value: Any, base: Any) -> tuple[float | None, float | None]:
    """(``value - base``, that change in % of ``|base|``). Either is None when a number is
    missing or not finite; the % is None when the baseline is 0. For perplexity a negative Δ
    is an improvement."""
    v, b = _num(value), _num(base)
    if v is None or b is None:
        return None, None
    d = v - b
    return d, (d / abs(b) * 100.0 if b else None)


PPL_KEYS = {"val_ppl": ("best_val_ppl", "Best val ppl"), "val_word_ppl": ("best_val_word_ppl", "Best word ppl")}
"""The eval-event perplexity key → (its :func:`run_record` key, the table header)."""


def compare_table(records: list[dict[str, Any]], labels: list[str], baseline: int | None,
                  ppl: str = "val_ppl") -> Table:
    """Every run against the baseline ``records[baseline]`` (records from
    :func:`~tui_lab.results.tables.run_record`; ``baseline`` None: no Δ yet).

    Columns: ``run`` (``labels``), the best validation perplexity (``ppl`` = ``val_ppl``:
    per token; ``val_word_ppl``: per word, at the best evaluation), ``delta`` and
    ``delta_pct`` (:func:`delta` of it from the baseline's; the baseline's own are 0),
    ``tokens_per_s``, ``tokens_seen``, ``chinchilla_ratio`` (D/N: tokens seen per parameter),
    ``wall_time_s`` and ``cost_usd``.

    Raises:
        ValueError: ``labels`` and ``records`` differ in length, ``baseline`` out of range,
            or an unknown ``ppl``.
    """
    if len(labels) != len(records):
        raise ValueError(f"{len(labels)} labels for {len(records)} runs")
    if baseline is not None and not 0 <= baseline < len(records):
        raise ValueError(f"baseline {baseline} is not one of the {len(records)} runs")
    if ppl not in PPL_KEYS:
        raise ValueError(f"ppl {ppl!r}: choose one of {', '.join(PPL_KEYS)}")
    key, header = PPL_KEYS[ppl]
    cols = [Column("run", "Run"), Column("best_ppl", header, "float", 2),
            Column("delta", "Δ", "float", 2), Column("delta_pct", "Δ %", "float", 1, "%"),
            Column("tokens_per_s", "Tokens/s", "float", 0, "tokens/s"),
            Column("tokens_seen", "Tokens seen", "int", unit="tokens"),
            Column("chinchilla_ratio", "D/N", "float", 2, "tokens/parameter"),
            Column("wall_time_s", "Wall time (s)", "float", 0, "s"),
            Column("cost_usd", "Cost ($)", "float", 2, "USD")]
    base = records[baseline].get(key) if baseline is not None else None
    rows = []
    for label, rec in zip(labels, records):
        d, pct = delta(rec.get(key), base) if baseline is not None else (None, None)
        rows.append({"run": label, "best_ppl": _num(rec.get(key)), "delta": d, "delta_pct": pct,
                     **{c.key: rec.get(c.key) for c in cols[4:]}})
    return Table("Compared with the baseline", cols, rows)


X_AXES: dict[str, tuple[str, str]] = {
    "step": ("step", "step"),
    "tokens": ("tokens_seen", "tokens seen"),
    "time": ("elapsed_s", "training time (s)"),
}
"""The compare view's x axes (``x`` cycles them in this order): name → (the event key, the
axis label). ``elapsed_s`` is the training clock (evaluations included, start-up excluded;
a resumed run carries it over), so time axes of resumed runs stay continuous."""


def curve(events: Iterable[dict[str, Any]], event: str, key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(x values, values) of ``key`` in the ``event`` events, against the x axis ``x`` (a
    name of :data:`X_AXES`). Events without a finite x or value are skipped.

    Raises:
        ValueError: an unknown ``x``.
    """
    if x not in X_AXES:
        raise ValueError(f"x {x!r}: choose one of {', '.join(X_AXES)}")
    x_key = X_AXES[x][0]
    xs: list[float] = []
    ys: list[float] = []
    for e in events:
        if e.get("event") != event:
            continue
        xv, yv = _num(e.get(x_key)), _num(e.get(key))
        if xv is not None and yv is not None:
            xs.append(xv)
            ys.append(yv)
    return xs, ys


SMOOTHING_STEPS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
"""The EMA weights ``+`` and ``-`` step through (0: no smoothing)."""


def ema(ys: list[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's de-biasing: ``m_t = w·m_{t-1} + (1-w)·y_t``
    from ``m_0 = 0``, shown as ``m_t / (1 - w^t)`` (so the first point is ``y_1``, not pulled
    towards 0). ``weight`` 0 returns ``ys`` unchanged; larger is smoother. One value per point
    (the x values are not used: points are taken as evenly spaced, as TensorBoard does).

    Source: TensorBoard's scalar dashboard smoothing (``tensorboard/plugins/scalar``), the
    bias correction of Adam (Kingma & Ba, 2015, §3).

    Raises:
        ValueError: ``weight`` outside [0, 1).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"EMA weight {weight}: must be in [0, 1)")
    if weight == 0.0:
        return list(ys)
    out = []
    m = 0.0
    for t, y in enumerate(ys, 1):
        m = weight * m + (1.0 - weight) * y
        out.append(m / (1.0 - weight ** t))
    return out


def step_smoothing(weight: float, direction: int) -> float:
    """The next weight of :data:`SMOOTHING_STEPS` after ``weight`` in ``direction`` (+1
    smoother, -1 less smooth), staying at the ends."""
    steps = SMOOTHING_STEPS
    i = min(range(len(steps)), key=lambda k: abs(steps[k] - weight))
    return steps[max(0, min(len(steps) - 1, i + (1 if direction > 0 else -1)))]


def tokenizer_of(config: dict[str, Any] | None) -> str | None:
    """The tokenizer a run's ``config.json`` names (``data.tokenizer``: ``gpt2`` or ``byte``),
    or None when it does not say."""
    data = (config or {}).get("data")
    tok = data.get("tokenizer") if isinstance(data, dict) else None
    return str(tok) if tok else None


def perplexity_key(configs: list[dict[str, Any] | None]) -> str:
    """``val_ppl`` (per token) when every run names the same tokenizer, else ``val_word_ppl``
    (per word: the one perplexity comparable across vocabularies)."""
    toks = {tokenizer_of(c) for c in configs}
    return "val_ppl" if len(toks) <= 1 else "val_word_ppl"


SEED_KEY = "train.seed"
"""Runs whose configs differ only in this key form a seed group."""


def seed_groups(experiments: list[str], configs: list[dict[str, Any] | None]) -> list[list[int]]:
    """Indices of runs grouped by seed: runs of one experiment whose configs are the same once
    :data:`SEED_KEY` and :data:`IGNORED_KEYS` are set aside (the rule of ``tui-lab export
    --group-seeds``), groups in order of their first run, singletons included."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (exp, config) in enumerate(zip(experiments, configs)):
        flat = {k: v for k, v in flatten_config(config or {}).items()
                if k.split(".", 1)[0] not in IGNORED_KEYS and k != SEED_KEY}
        groups.setdefault((exp, json.dumps(flat, sort_keys=True, default=str)), []).append(i)
    return list(groups.values())


def band(curves: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float], list[float], list[float]]:
    """A seed group's curve: at every x where any run has a value, (x, mean, min, max) over
    the runs that have one there (the last value when a run repeats an x), x ascending."""
    at: dict[float, list[float]] = {}
    for xs, ys in curves:
        seen = dict(zip(xs, ys))
        for x, y in seen.items():
            at.setdefault(x, []).append(y)
    xs = sorted(at)
    return (xs, [math.fsum(at[x]) / len(at[x]) for x in xs], [min(at[x]) for x in xs], [max(at[x]) for x in xs])

"""Repeated, alternating measurements and their summary (median, min, max).

Every ``tui-lab bench`` figure is the median of ≥ 3 repetitions taken in turn with its
reference (tui-lab, reference, tui-lab, reference, …), so a burst of load from another
process on a shared machine hits both sides instead of flipping a verdict.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

MIN_REPEATS = 3


def alternate(measures: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each measure once per round, in the given order, for ``repeats`` rounds.

    Returns: label → the ``repeats`` values, in the order measured.
    Raises:
        ValueError: ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    values: dict[str, list[float]] = {label: [] for label in measures}
    for _ in range(repeats):
        for label, measure in measures.items():
            values[label].append(float(measure()))
    return values


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    """``{"median", "min", "max"}`` of ``values``, rounded to ``digits`` decimals."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def put(out: dict[str, Any], key: str, values: list[float], digits: int = 1) -> float:
    """Store ``key`` = the median of ``values``, ``key_min``, ``key_max`` and ``key_runs``
    (the values in the order measured); return the unrounded median."""
    s = summary(values, digits)
    out[key], out[f"{key}_min"], out[f"{key}_max"] = s["median"], s["min"], s["max"]
    out[f"{key}_runs"] = [round(v, digits) for v in values]
    return statistics.median(values)


def ratio(out: dict[str, Any], key: str, ours: list[float], ref: list[float], digits: int = 3) -> None:
    """``key`` = median(ours) / median(ref); ``key_min``/``key_max`` = the least and greatest
    ratio of the two sides' values from the same round."""
    out[key] = round(statistics.median(ours) / statistics.median(ref), digits)
    per_round = [a / b for a, b in zip(ours, ref)]
    out[f"{key}_min"], out[f"{key}_max"] = round(min(per_round), digits), round(max(per_round), digits)

"""Result tables built from run folders — the tables the seed logs wrote by hand:

- :func:`runs_table`: one row per run (the seeds' "Comparative Analysis", with tokens seen,
  parameters, wall time, losses, perplexities, Chinchilla ratio, throughput, cost, commit);
- :func:`progression_table`: a run's validation perplexity at each evaluation and the
  change from the previous one (the seeds' "Perplexity progression");
- :func:`comparison_table`: runs in a chosen order, each metric with the change from the
  previous run, absolute and in % (the seeds' "Exp N to N+1" findings and "Cost-Benefit
  Analysis").

A :class:`Table` is plain data (typed columns, rows of Python values); every output format
(:mod:`.formats`) and the app's results screen render the same object. Everything is
read through the run store's API (``run.json``, ``config.json``, and ``metrics.jsonl`` via
:func:`~tui_lab.runs.store.load_history`, so the events a resumed run superseded are
dropped). No torch here: the app imports this at start-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs.find import all_runs, first_start, order_runs, resolve_run  # noqa: F401  (re-exported: results.tables was their home)
from ..runs.metrics import perplexity, tokens_per_second
from ..runs.store import RunDir, is_live, load_history

KINDS = ("str", "int", "float", "hash")
"""Column kinds: ``int`` and ``float`` are numbers (right-aligned, thousands separators in
Markdown / LaTeX, raw in CSV / JSON); ``hash`` is a git commit (shortened to 10 characters
for people, whole in CSV / JSON); ``str`` is text."""


@dataclass(frozen=True)
class Column:
    """One column of a :class:`Table`.

    Attributes:
        key: the machine name — the CSV header and the JSON key; carries the unit
            (``wall_time_s``, ``tokens_per_s``, ``cost_usd``).
        name: the header people read (Markdown, LaTeX, the app), unit included where it helps.
        kind: one of :data:`KINDS`.
        decimals: digits after the point for ``float`` columns in Markdown / LaTeX / the app.
        unit: the unit of the values (``s``, ``tokens``, ``nats/token``, ``USD``; empty when
            dimensionless).
    """

    key: str
    name: str
    kind: str = "str"
    decimals: int = 2
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.key!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def header(self) -> str:
        """The human header (same as :attr:`name`)."""
        return self.name

    @property
    def numeric(self) -> bool:
        """Whether the column holds numbers (``int`` or ``float``)."""
        return self.kind in ("int", "float")


@dataclass
class Table:
    """A titled table: typed columns and rows (dicts keyed by :attr:`Column.key`; a missing
    key or None is a missing value)."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def column(self, key: str) -> Column:
        """The column with ``key``.

        Raises:
            KeyError: no such column.
        """
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(key)

    def select(self, keys: list[str]) -> "Table":
        """A table with only the columns ``keys``, in that order (the rows are shared).

        Raises:
            KeyError: a key that is not a column (the message lists the columns).
        """
        known = {c.key: c for c in self.columns}
        missing = [k for k in keys if k not in known]
        if missing:
            raise KeyError(f"no column {', '.join(map(repr, missing))} in the {self.title.lower()} table "
                           f"(columns: {', '.join(known)})")
        return Table(self.title, [known[k] for k in keys], self.rows)

    def values(self, key: str) -> list[Any]:
        """The values of column ``key``, top to bottom (None where missing)."""
        self.column(key)
        return [r.get(key) for r in self.rows]


RUN_COLUMNS = [
    Column("experiment", "Experiment"),
    Column("run_id", "Run"),
    Column("dataset", "Dataset"),
    Column("train_tokens", "Train tokens", "int", unit="tokens"),
    Column("num_params", "Params", "int", unit="parameters"),
    Column("d_model", "d_model", "int"),
    Column("num_layers", "Layers", "int"),
    Column("num_heads", "Heads", "int"),
    Column("batch_size", "Batch", "int", unit="sequences"),
    Column("epochs", "Epochs", "float", 2, unit="epochs"),
    Column("steps", "Steps", "int", unit="optimizer steps"),
    Column("tokens_seen", "Tokens seen", "int", unit="tokens"),
    Column("wall_time_s", "Wall time (s)", "float", 0, unit="s"),
    Column("best_epoch", "Best epoch", "int"),
    Column("best_step", "Best step", "int"),
    Column("final_train_loss", "Final train loss", "float", 4, unit="nats/token"),
    Column("best_val_loss", "Best val loss", "float", 4, unit="nats/token"),
    Column("best_val_ppl", "Best val ppl", "float", 2),
    Column("best_val_word_ppl", "Word ppl", "float", 2),
    Column("chinchilla_ratio", "D/N", "float", 2, unit="tokens/parameter"),
    Column("chinchilla_ratio_epoch", "D/N per epoch", "float", 2, unit="tokens/parameter"),
    Column("tokens_per_s", "Tokens/s", "float", 0, unit="tokens/s"),
    Column("device", "Device"),
    Column("status", "Status"),
    Column("cost_usd", "Cost ($)", "float", 2, unit="USD"),
    Column("git_commit", "Commit", "hash"),
]
"""The runs table's columns, in order. Every key is also a key of :func:`run_record`."""


def _num(v: Any) -> float | None:
    """``v`` when it is a finite number (bools are not), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v


def _dataset(config: dict[str, Any]) -> str | None:
    data = config.get("data") or {}
    if not isinstance(data, dict):
        return None
    if data.get("path"):
        return Path(str(data["path"])).name or str(data["path"])
    if data.get("config"):
        return str(data["config"])
    return str(data["dataset"]) if data.get("dataset") else None


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _max(*values: Any) -> float | None:
    nums = [v for v in (_num(x) for x in values) if v is not None]
    return max(nums) if nums else None


def run_record(run: RunDir, price_per_gpu_hour: float = 0.0) -> dict[str, Any]:
    """Every column of the runs table for one run (None where unknown), plus
    ``started_at`` (the run's first start, Unix s) for ordering.

    Sources: the model shape and batch size from ``config.json``; counts, device, status
    and commit from ``run.json``; losses, perplexities, throughput and the best evaluation
    from the run's history (resumes collapsed). ``tokens_per_s`` is
    :func:`~tui_lab.runs.metrics.tokens_per_second`: tokens seen ÷ the training clock
    (``elapsed_s``), the same figure the app and ``tui-lab train`` show. Steps, tokens seen and wall time take the
    later of ``run.json`` and the history, so a run still going shows its latest event.

    ``cost_usd`` = wall hours × ``price_per_gpu_hour`` × GPUs (``world_size``), for runs on
    a CUDA device and a price above 0; None otherwise.
    """
    info = run.read_run()
    config = run.read_config() or {}
    model, train = _section(config, "model"), _section(config, "train")
    events = load_history(run)
    trains = [e for e in events if e.get("event") == "train" and _num(e.get("train_loss")) is not None]
    evals = [e for e in events if e.get("event") == "eval" and _num(e.get("val_loss")) is not None]
    best = min(evals, key=lambda e: e["val_loss"], default=None)  # the first of equal minima, like the trainer

    def at_best(key: str, fallback: str | None = None) -> Any:
        if best is not None:
            return best.get(key)
        return info.get(fallback) if fallback else None

    steps = _max(info.get("step"), *(e.get("step") for e in events))
    tokens_seen = _max(info.get("tokens_seen"), *(e.get("tokens_seen") for e in events))
    wall = _num(info.get("wall_time_s")) or _max(info.get("elapsed_s"), *(e.get("elapsed_s") for e in events))
    params = _num(info.get("num_params"))
    train_tokens = _num(info.get("train_tokens"))
    steps_per_epoch = _num(info.get("steps_per_epoch"))
    epochs = steps / steps_per_epoch if steps is not None and steps_per_epoch else _num(info.get("epoch"))
    if not is_live(info.get("status")) and _num(info.get("elapsed_s")) and _num(info.get("tokens_seen")) is not None:
        # an ended run: run.json's own figures (events round elapsed_s to the millisecond)
        tps = tokens_per_second(info["tokens_seen"], info["elapsed_s"])
    else:
        tps = tokens_per_second(tokens_seen, _max(info.get("elapsed_s"), *(e.get("elapsed_s") for e in events)))
    device = str(info.get("device") or "")
    cost = None
    price = _num(price_per_gpu_hour) or 0.0
    if price > 0 and wall and device.startswith("cuda"):
        cost = wall / 3600.0 * price * (_num(info.get("world_size")) or 1)
    best_val_loss = at_best("val_loss", "best_val_loss")
    best_ppl = at_best("val_ppl", "best_val_ppl")
    if best_ppl is None and _num(best_val_loss) is not None:
        best_ppl = perplexity(best_val_loss)
    return {
        "experiment": run.experiment,
        "run_id": run.run_id,
        "dataset": _dataset(config),
        "train_tokens": train_tokens,
        "num_params": params,
        "d_model": _num(model.get("d_model")),
        "num_layers": _num(model.get("num_layers")),
        "num_heads": _num(model.get("num_heads")),
        "batch_size": _num(train.get("batch_size") or info.get("batch_size")),  # per process
        "epochs": epochs,
        "steps": steps,
        "tokens_seen": tokens_seen,
        "wall_time_s": wall,
        "best_epoch": _num(at_best("epoch", "best_epoch")),
        "best_step": _num(at_best("step", "best_step")),
        "final_train_loss": trains[-1]["train_loss"] if trains else _num(info.get("final_train_loss")),  # imported
        "best_val_loss": _num(best_val_loss),
        "best_val_ppl": _num(best_ppl),
        "best_val_word_ppl": _num(at_best("val_word_ppl")),
        "chinchilla_ratio": tokens_seen / params if tokens_seen is not None and params else None,
        "chinchilla_ratio_epoch": train_tokens / params if train_tokens is not None and params else None,
        "tokens_per_s": tps,
        "device": info.get("device_name") or info.get("device"),
        "status": info.get("status"),
        "cost_usd": cost,
        "git_commit": info.get("git_commit") or None,
        "started_at": first_start(run, info),
    }


def _order_key(rec: dict[str, Any]) -> tuple[float, str, str]:
    return (rec.get("started_at") or 0.0, rec["run_id"], rec["experiment"])


def runs_table(runs: list[RunDir], price_per_gpu_hour: float = 0.0, title: str = "Runs") -> Table:
    """One row per run (see :func:`run_record`), ordered by start time, then run id.

    The start time is the run's first ``start`` event, else ``run.json``'s ``started_at``
    (the first start; older tui-lab versions rewrote it on resume).
    """
    records = sorted((run_record(r, price_per_gpu_hour) for r in runs), key=_order_key)
    return Table(title, list(RUN_COLUMNS), records)


PROGRESSION_COLUMNS = [
    Column("step", "Step", "int"),
    Column("epoch", "Epoch", "int"),
    Column("tokens_seen", "Tokens seen", "int", unit="tokens"),
    Column("val_loss", "Val loss", "float", 4, unit="nats/token"),
    Column("val_ppl", "Val perplexity", "float", 2),
    Column("delta_val_ppl", "Change", "float", 2),
]


def progression_table(run: RunDir) -> Table:
    """Validation perplexity at each evaluation (step, epoch, tokens seen, loss, perplexity)
    with the change from the previous evaluation (negative: better). ``epoch`` is the
    number of whole epochs finished when the evaluation ran."""
    rows = []
    prev = None
    for e in load_history(run):
        if e.get("event") != "eval":
            continue
        ppl = _num(e.get("val_ppl"))
        if ppl is None and _num(e.get("val_loss")) is not None:
            ppl = perplexity(e["val_loss"])
        rows.append({"step": _num(e.get("step")), "epoch": _num(e.get("epoch")),
                     "tokens_seen": _num(e.get("tokens_seen")), "val_loss": _num(e.get("val_loss")), "val_ppl": ppl,
                     "delta_val_ppl": ppl - prev if prev is not None and ppl is not None else None})
        if ppl is not None:
            prev = ppl
    return Table(f"Perplexity progression: {run.experiment}/{run.run_id}", list(PROGRESSION_COLUMNS), rows)


COMPARE_METRICS = [
    # key, header, kind, decimals, unit
    ("num_params", "Params", "int", 0, "parameters"),
    ("tokens_seen", "Tokens seen", "int", 0, "tokens"),
    ("best_val_loss", "Best val loss", "float", 4, "nats/token"),
    ("best_val_ppl", "Best val ppl", "float", 2, ""),
    ("wall_time_s", "Wall time (s)", "float", 0, "s"),
    ("tokens_per_s", "Tokens/s", "float", 0, "tokens/s"),
    ("cost_usd", "Cost ($)", "float", 2, "USD"),
]
"""The metrics :func:`comparison_table` sets side by side, each with its change."""


def comparison_table(runs: list[RunDir], price_per_gpu_hour: float = 0.0) -> Table:
    """Runs in the given order, side by side: for each metric of :data:`COMPARE_METRICS`
    its value, the change from the previous run (``delta_<key>``) and that change in %
    of the previous value (``delta_<key>_pct``); the first run's changes are None. Also
    ``usd_per_ppl_point``: this run's cost divided by the perplexity it gained over the
    previous run (the seeds' "Cost per Point Improved"; None when it gained nothing)."""
    records = [run_record(r, price_per_gpu_hour) for r in runs]
    cols = [Column("run", "Run"), Column("dataset", "Dataset")]
    for key, header, kind, dec, unit in COMPARE_METRICS:
        short = header.split(" (")[0]
        cols += [Column(key, header, kind, dec, unit),
                 Column(f"delta_{key}", f"Δ {short}", kind, dec, unit),
                 Column(f"delta_{key}_pct", f"Δ {short} %", "float", 1, "%")]
    cols.append(Column("usd_per_ppl_point", "$ per ppl point", "float", 4, "USD/ppl"))
    rows = []
    for i, rec in enumerate(records):
        row: dict[str, Any] = {"run": f"{rec['experiment']}/{rec['run_id']}", "dataset": rec["dataset"]}
        for key, *_ in COMPARE_METRICS:
            cur = _num(rec[key])
            prev = _num(records[i - 1][key]) if i else None
            row[key] = cur
            row[f"delta_{key}"] = cur - prev if cur is not None and prev is not None else None
            row[f"delta_{key}_pct"] = (cur - prev) / abs(prev) * 100 if cur is not None and prev else None
        gain = -(row["delta_best_val_ppl"] or 0.0)
        row["usd_per_ppl_point"] = rec["cost_usd"] / gain if rec["cost_usd"] is not None and gain > 0 else None
        rows.append(row)
    return Table("Comparison", cols, rows)

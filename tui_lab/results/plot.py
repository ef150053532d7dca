"""Curves of runs as PNG or SVG through matplotlib (the optional ``plot`` extra:
``pip install 'tui-lab[plot]'``). matplotlib is imported only when a plot is drawn, and
through its object API on the Agg canvas, so pyplot's global state is never touched."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..errors import TuiLabError
from ..runs.store import RunDir, load_history
from .formats import write_output

KINDS = ("loss", "ppl", "val_ppl", "val_loss", "train_loss")
"""``loss``: train and validation loss (nats/token) together; ``ppl`` (= ``val_ppl``): validation
perplexity, log y-axis; ``val_loss``, ``train_loss``: one of the two losses (nats/token)."""

SERIES = {"ppl": ("eval", "val_ppl"), "val_ppl": ("eval", "val_ppl"), "val_loss": ("eval", "val_loss"),
          "train_loss": ("train", "train_loss")}
"""The one-series kinds: which event and which field each draws."""

LABELS = {"val_ppl": "validation perplexity", "val_loss": "validation loss (nats/token)",
          "train_loss": "train loss (nats/token)"}

X_AXES = ("tokens", "step")
"""What the x-axis counts: tokens seen, or optimizer steps."""

FILE_TYPES = (".png", ".svg")


class PlotError(TuiLabError):
    """A plot could not be drawn: matplotlib missing, a bad choice, or nothing to draw."""


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'tui-lab[plot]'") from None
    return Figure


def _xy(events: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    key = "tokens_seen" if x == "tokens" else "step"
    for e in events:
        xv, yv = e.get(key), e.get(y)
        if isinstance(xv, (int, float)) and isinstance(yv, (int, float)):
            xs.append(xv)
            ys.append(yv)
    return xs, ys


def plot_runs(runs: list[RunDir], kind: str, output: Path | str, x: str = "tokens", title: str | None = None) -> Path:
    """Draw the curves of ``runs`` and write ``output`` (``.png`` or ``.svg``) atomically.

    ``kind``: ``loss`` draws each run's train loss (thin line) and validation loss
    (markers) in one colour; ``ppl`` / ``val_ppl`` draws validation perplexity on a log
    y-axis; ``val_loss`` and ``train_loss`` one loss each. Every run is its own colour, named
    in the legend (the overlay of ``tui-lab export --compare RUN... --plot val_ppl``).
    ``title`` replaces the default title.
    ``x``: ``tokens`` (tokens seen) or ``step``. History comes from
    :func:`~tui_lab.runs.store.load_history` (events a resume superseded are dropped).

    Raises:
        PlotError: matplotlib missing, unknown kind / axis / file type, or no data to draw.
        OSError: ``output`` cannot be written (nothing is left behind).
    """
    if kind not in KINDS:
        raise PlotError(f"--plot {kind!r}: choose one of {', '.join(KINDS)}")
    if x not in X_AXES:
        raise PlotError(f"x-axis {x!r}: choose one of {', '.join(X_AXES)}")
    output = Path(output)
    fmt = output.suffix.lower()
    if fmt not in FILE_TYPES:
        raise PlotError(f"{output}: a plot is written as {' or '.join(FILE_TYPES)}")
    Figure = _matplotlib()
    fig = Figure(figsize=(8, 4.5), dpi=120)
    ax = fig.add_subplot()
    drawn = 0
    for i, run in enumerate(runs):
        events = load_history(run)
        label = f"{run.experiment}/{run.run_id}"
        color = f"C{i % 10}"
        evals = [e for e in events if e.get("event") == "eval"]
        if kind == "loss":
            tx, ty = _xy([e for e in events if e.get("event") == "train"], x, "train_loss")
            vx, vy = _xy(evals, x, "val_loss")
            if tx:
                ax.plot(tx, ty, color=color, lw=1, alpha=0.6, label=f"{label} train")
            if vx:
                ax.plot(vx, vy, "o-", color=color, lw=1.5, ms=3, label=f"{label} val")
            drawn += bool(tx or vx)
        else:
            event, field = SERIES[kind]
            vx, vy = _xy([e for e in events if e.get("event") == event], x, field)
            if vx:
                style = "-" if event == "train" else "o-"
                ax.plot(vx, vy, style, color=color, lw=1.5, ms=3, label=label)
                drawn += 1
    if not drawn:
        raise PlotError("nothing to plot: the chosen runs have no logged metrics yet")
    ax.set_xlabel("tokens seen" if x == "tokens" else "optimizer step")
    field = SERIES[kind][1] if kind in SERIES else "loss"
    ax.set_ylabel("loss (nats/token)" if kind == "loss" else LABELS[field])
    ax.set_title(title or ("Training and validation loss" if kind == "loss" else LABELS[field].split(" (")[0].capitalize()))
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter, ScalarFormatter

    if x == "tokens":
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100M, not 1e8
    if field == "val_ppl":
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 50, 100, 200: perplexities people read
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    # no creation date in the file: the same runs give the same bytes
    metadata = {"Date": None} if fmt == ".svg" else {"Software": None}
    from matplotlib import rc_context

    with rc_context({"svg.hashsalt": "tui-lab"}):  # stable SVG element ids
        fig.savefig(buf, format=fmt[1:], metadata=metadata)
    write_output(output, buf.getvalue())
    return output

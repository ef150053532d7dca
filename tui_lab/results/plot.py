"""Curves of runs as PNG or SVG through matplotlib (the optional ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

from ..errors import TuiLabError
from ..runs.store import RunDir, load_history, write_atomic

KINDS = ("loss", "ppl")


def plot_runs(runs: list[RunDir], kind: str, output: Path) -> Path:
    """Draw train + validation loss (``loss``) or validation perplexity (``ppl``, log scale)
    against tokens seen for each run, and write ``output`` (.png or .svg) atomically.

    Raises:
        TuiLabError: matplotlib missing, unknown kind or file type, no data.
    """
    if kind not in KINDS:
        raise TuiLabError(f"--plot {kind!r}: choose loss or ppl")
    output = Path(output)
    if output.suffix.lower() not in (".png", ".svg"):
        raise TuiLabError(f"--output {output}: a plot is written as .png or .svg")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TuiLabError("plots need matplotlib: pip install 'tui-lab[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    drawn = 0
    for run in runs:
        events = load_history(run)
        label = f"{run.experiment}/{run.run_id}"
        ev = [e for e in events if e.get("event") == "eval"]
        if kind == "loss":
            tr = [e for e in events if e.get("event") == "train" and e.get("train_loss") is not None]
            if tr:
                line, = ax.plot([e["tokens_seen"] for e in tr], [e["train_loss"] for e in tr], lw=1, alpha=0.7,
                                label=f"{label} train")
                ax.plot([e["tokens_seen"] for e in ev], [e["val_loss"] for e in ev], "o-", color=line.get_color(),
                        lw=1.5, ms=3, label=f"{label} val")
                drawn += 1
        elif ev:
            ax.plot([e["tokens_seen"] for e in ev], [e["val_ppl"] for e in ev], "o-", ms=3, label=label)
            drawn += 1
    if not drawn:
        plt.close(fig)
        raise TuiLabError("nothing to plot: the chosen runs have no logged metrics yet")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("loss (nats/token)" if kind == "loss" else "validation perplexity")
    if kind == "ppl":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=output.suffix[1:].lower(), metadata={"Date": None} if output.suffix == ".svg" else None)
    plt.close(fig)
    write_atomic(output, buf.getvalue())
    return output

"""`tui-lab export`: result tables (Markdown, CSV, LaTeX, JSON) and curve plots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import fail


def export_cmd(
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Default: settings.runs_dir of ./experiments.toml, else ./runs."),
    fmt: str = typer.Option("md", "--format", "-f", help="md, csv, latex or json."),
    run: Optional[list[str]] = typer.Option(None, "--run", help="A run folder, experiment/run_id or run id (repeatable)."),
    progression: Optional[str] = typer.Option(None, "--progression", help="The perplexity progression of one run."),
    compare: bool = typer.Option(False, "--compare", help="Compare the --run runs side by side, in order."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    price: Optional[float] = typer.Option(None, "--price-per-gpu-hour", help="USD per GPU-hour for the cost column."),
    plot: Optional[str] = typer.Option(None, "--plot", help="loss or ppl: draw the runs' curves to --output (.png/.svg)."),
) -> None:
    """Export result tables of runs (all runs by default) or plot their curves."""
    from ..errors import TuiLabError
    from ..results import FORMATS, all_runs, comparison_table, progression_table, render, resolve_run, runs_table
    from ..runs.store import write_atomic

    folder, default_price = _defaults(runs_dir)
    price = default_price if price is None else price
    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    try:
        chosen = [resolve_run(spec, folder) for spec in run or []]
        if progression:
            table = progression_table(resolve_run(progression, folder))
            chosen = chosen or [resolve_run(progression, folder)]
        else:
            chosen = chosen or all_runs(folder)
            if not chosen:
                fail(f"no runs under {folder}: train something first (tui-lab train demo)")
            table = comparison_table(chosen, price) if compare else runs_table(chosen, price)
    except LookupError as exc:
        fail(str(exc).strip("'\""))
    if plot:
        if output is None:
            fail("--plot needs --output FILE.png or FILE.svg")
        try:
            from ..results.plot import plot_runs

            plot_runs(chosen, plot, output)
        except TuiLabError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{output}: cannot write: {exc.strerror}")
        print(output)
        return
    text = render(table, fmt)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        write_atomic(output, text)
    except OSError as exc:
        fail(f"{output}: cannot write: {exc.strerror}")
    print(output)


def _defaults(runs_dir: Optional[Path]) -> tuple[Path, float]:
    """--runs-dir, else ./experiments.toml's settings (runs_dir and price), else ./runs."""
    from ..config import DEFAULT_FILENAME, ConfigError, load_experiments

    price = 0.0
    if Path(DEFAULT_FILENAME).exists():
        try:
            cfg = load_experiments(DEFAULT_FILENAME)
            price = cfg.settings.gpu_hour_price_usd
            if runs_dir is None:
                runs_dir = Path(cfg.settings.runs_dir)
        except ConfigError:
            pass
    return (runs_dir or Path("runs")), price

"""`tui-lab export`: result tables (Markdown, CSV, LaTeX, JSON) and curve plots of runs.

Examples::

    tui-lab export                                   # every run, Markdown, to stdout
    tui-lab export -f csv -o results.csv             # the same as CSV, written atomically
    tui-lab export --progression exp3/20260101-...   # one run's perplexity at each evaluation
    tui-lab export --compare --run exp1 --run exp2   # runs side by side, changes between them
    tui-lab export --plot ppl -o curves.png          # validation perplexity curves
    tui-lab export --compare RUN RUN --plot val_ppl -o overlay.png   # two runs overlaid
    tui-lab export --sweep demo-20261201-... --group-seeds           # a sweep, mean ± std (n) per seed group
    tui-lab export -f latex --columns experiment,num_params,tokens_seen,best_val_ppl
    tui-lab export --format tensorboard              # TensorBoard event files in every run folder
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import fail


def export_cmd(
    runs_args: Optional[list[str]] = typer.Argument(
        None, metavar="[RUN]...", help="Runs (as --run), e.g. after --compare: tui-lab export --compare RUN RUN."),
    runs_dir: Optional[Path] = typer.Option(
        None, "--runs-dir", help="Where the runs are. Default: settings.runs_dir of ./experiments.toml, else ./runs."),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f", help="md, csv, latex or json (tables), or tensorboard (event files in each "
        "run's tensorboard/ folder). Default: from --output's extension, else md."),
    run: Optional[list[str]] = typer.Option(
        None, "--run", metavar="RUN", help="A run folder, experiment/run_id or run id (repeatable). Default: every run."),
    progression: Optional[str] = typer.Option(
        None, "--progression", help="Export this run's validation perplexity at each evaluation."),
    compare: bool = typer.Option(
        False, "--compare", help="Set the runs side by side (in --run order) with the changes between them."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write this file (atomically), not stdout."),
    price: Optional[float] = typer.Option(
        None, "--price-per-gpu-hour", help="USD per GPU-hour for the cost column. Default: "
        "settings.gpu_hour_price_usd of ./experiments.toml, else 0 (no cost)."),
    plot: Optional[str] = typer.Option(
        None, "--plot", help="loss, ppl (= val_ppl), val_loss or train_loss: draw the runs' curves, "
        "overlaid, into --output (.png or .svg)."),
    columns: Optional[str] = typer.Option(
        None, "--columns", help="Only these columns, in this order: comma-separated keys (the CSV header), "
        "e.g. experiment,num_params,tokens_seen,best_val_ppl."),
    x_axis: str = typer.Option("tokens", "--x-axis", help="For --plot: tokens (tokens seen) or step."),
    sweep: Optional[str] = typer.Option(
        None, "--sweep", help="The runs of this sweep id (tui-lab sweep prints it), with their overrides."),
    group_seeds: bool = typer.Option(
        False, "--group-seeds", help="One row per seed group (runs that differ only in train.seed): "
        "mean ± std (n) in md / latex; mean, std, min, max, n columns in csv / json. std is the sample std (n - 1)."),
) -> None:
    """Export result tables of runs (all runs by default), or plot their curves."""
    from ..errors import TuiLabError
    from ..results import all_runs, comparison_table, progression_table, render, resolve_run, runs_table
    from ..results.formats import FORMATS, format_for_path, normalize_format, write_output

    if price is not None and not price >= 0:
        fail(f"--price-per-gpu-hour {price}: give a price of 0 or more (USD per GPU-hour)")
    if progression and compare:
        fail("--progression and --compare: choose one table")
    if group_seeds and (progression or compare):
        fail("--group-seeds makes its own table: not with --progression or --compare")
    if sweep is not None and (progression or run or runs_args):
        fail("--sweep chooses the runs: not with --run, RUN arguments or --progression")
    if fmt is not None and fmt.strip().lower() == "tensorboard":
        if sweep is not None or group_seeds:
            fail("--format tensorboard writes event files per run: not with --sweep or --group-seeds")
        _export_tensorboard(runs_dir, list(run or []) + list(runs_args or []), output, progression, compare,
                            plot, columns)
        return
    if output is not None and output.is_dir():
        fail(f"--output {output}: is a folder; give a file name")
    if plot is None:
        try:
            fmt = normalize_format(fmt or (format_for_path(output) if output else None) or "md")
        except ValueError:
            fail(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    folder, price = _defaults(runs_dir, price)

    try:
        chosen = _unique([resolve_run(spec, folder) for spec in [*(run or []), *(runs_args or [])]])
        if sweep is not None:
            from ..results.groups import sweep_ids, sweep_runs

            chosen = sweep_runs(folder, sweep)
            if not chosen:
                known = ", ".join(sweep_ids(folder)) or "none"
                fail(f"--sweep {sweep}: no runs of that sweep under {folder} (sweeps there: {known})")
        if progression:
            one = resolve_run(progression, folder)
            table = progression_table(one)
            chosen = chosen or [one]
        else:
            chosen = chosen or all_runs(folder)
            if not chosen:
                fail(f"no runs to export: the runs folder {Path(folder).resolve()} holds no run folders "
                     "(train one first: tui-lab train demo; or pass --runs-dir DIR)")
            if compare and len(chosen) < 2:
                fail("--compare needs two or more runs (give --run for each, in the order to compare)")
            if group_seeds:
                from ..results.groups import group_table, seed_groups

                title = f"Sweep {sweep}: seed groups" if sweep else "Seed groups"
                table = group_table(seed_groups(chosen, price), human=plot is not None or fmt in ("md", "latex"),
                                    title=title)
            elif sweep is not None:
                from ..results.groups import sweep_table

                table = sweep_table(chosen, price, title=f"Sweep {sweep}")
            else:
                table = comparison_table(chosen, price) if compare else runs_table(chosen, price)
    except LookupError as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    if columns is not None:
        try:
            table = table.select([k.strip() for k in columns.split(",") if k.strip()])
        except KeyError as exc:
            fail(f"--columns: {exc.args[0]}")
        if not table.columns:
            fail("--columns: give one or more column keys, comma-separated")

    if plot is not None:
        if output is None:
            fail("--plot needs --output FILE.png or FILE.svg")
        from ..results.plot import plot_runs

        try:
            plot_runs(chosen, plot, output, x=x_axis)
        except TuiLabError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{output}: cannot write ({exc.strerror or exc})")
        typer.echo(f"wrote {output}", err=True)
        return

    text = render(table, fmt)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_output(output, text)
    except OSError as exc:
        fail(f"{output}: cannot write ({exc.strerror or exc})")
    typer.echo(f"wrote {output}", err=True)


def _export_tensorboard(runs_dir: Optional[Path], specs: Optional[list[str]], output: Optional[Path],
                        *table_options) -> None:
    """``--format tensorboard``: (re)write each chosen run's ``tensorboard/`` folder from its
    ``metrics.jsonl``, so ``tensorboard --logdir RUNS`` shows every run."""
    from ..results import all_runs, resolve_run

    if output is not None:
        fail("--format tensorboard writes into each run's tensorboard/ folder: --output does not apply")
    if any(table_options):
        fail("--format tensorboard: --progression, --compare, --plot and --columns do not apply")
    folder, _ = _defaults(runs_dir, 0.0)
    try:
        chosen = _unique([resolve_run(spec, folder) for spec in specs or []]) or all_runs(folder)
    except LookupError as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    if not chosen:
        fail(f"no runs under {folder}: train one first (tui-lab train demo), or pass --runs-dir")
    try:
        from ..results.tensorboard import export_run
    except ImportError as exc:
        fail(f"--format tensorboard needs tensorboardX ({exc}): pip install tensorboardX")
    for r in chosen:
        try:
            path = export_run(r)
        except OSError as exc:
            fail(f"{r.path}: cannot write TensorBoard files ({exc.strerror or exc})")
        typer.echo(f"wrote {path}", err=True)
    typer.echo(f"view them: tensorboard --logdir {folder}", err=True)


def _unique(runs: list) -> list:
    """``runs`` without repeats (the same folder named twice), first mention kept."""
    seen: set[Path] = set()
    out = []
    for r in runs:
        key = r.path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _defaults(runs_dir: Optional[Path], price: Optional[float]) -> tuple[Path, float]:
    """``--runs-dir`` and ``--price-per-gpu-hour``; what is not given comes from
    ./experiments.toml's settings when that file exists, else ``./runs`` and 0."""
    from ..config import DEFAULT_FILENAME, ConfigError, load_experiments
    from .common import runs_dir_for

    if (runs_dir is None or price is None) and Path(DEFAULT_FILENAME).is_file():
        try:
            cfg = load_experiments(DEFAULT_FILENAME)
        except ConfigError as exc:
            fail(f"{exc} (or pass --runs-dir and --price-per-gpu-hour to export without it)")
        runs_dir = runs_dir_for(cfg, runs_dir)
        if price is None:
            price = cfg.settings.gpu_hour_price_usd
    return (runs_dir or Path("runs")), (price or 0.0)

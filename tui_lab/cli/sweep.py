"""`tui-lab sweep NAME`: queue the runs of an experiment's ``[experiments.NAME.sweep]`` grid."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, console, fail, load_config, runs_dir_for


def sweep_cmd(
    name: str = typer.Argument(..., help="Experiment with a [experiments.NAME.sweep] table."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs; queue nothing."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="section.key=value for every run (repeatable)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where run folders go (default: settings.runs_dir)."),
    config: Optional[Path] = ConfigOption,
    device: str = typer.Option("auto", "--device", help="Device for every run (auto, cpu, cuda, cuda:N, mps)."),
    start: bool = typer.Option(True, "--start/--no-start", help="Start the queue runner if none is running."),
) -> None:
    """Queue one run per point of the experiment's sweep grid (validated first: all or nothing)."""
    from rich.text import Text

    from ..config import ConfigError
    from ..config.sweep import enqueue_sweep, plan_sweep

    cfg = load_config(config)
    try:
        plan = plan_sweep(cfg, name, list(overrides or []))
    except ConfigError as exc:
        fail(str(exc))
    common = " ".join(f"--set {s}" for s in plan.sets)
    console.print(Text(f"sweep {plan.id}: {len(plan.runs)} run{'s' if len(plan.runs) != 1 else ''} of {name}"
                       + (f" ({common})" if common else "")))
    for i, run in enumerate(plan.runs, 1):
        console.print(Text(f"{i:>3}. {run.label}"))
    if dry_run:
        console.print("dry run: nothing queued")
        return
    folder = runs_dir_for(cfg, runs_dir)
    try:
        added = enqueue_sweep(plan, folder, cfg.path, device, start=False)
    except OSError as exc:
        fail(f"{folder}: cannot write the queue ({exc.strerror or exc})")
    console.print(Text(f"queued {len(added)} runs in {folder} (tui-lab queue list; "
                       f"tui-lab export --sweep {plan.id} --group-seeds)"))
    if start:
        from ..runs import queue

        if queue.start_runner(folder):
            console.print("started the queue runner")

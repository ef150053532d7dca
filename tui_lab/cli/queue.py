"""`tui-lab queue`: experiments that run one after another, surviving the app."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, console, fail, load_config, runs_dir_for

queue_app = typer.Typer(help="Queue experiments to run one after another on this machine.", no_args_is_help=True)


@queue_app.command("add")
def add_cmd(
    names: list[str] = typer.Argument(..., help="Experiments to append to the queue."),
    config: Optional[Path] = ConfigOption,
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="section.key=value for these entries."),
    device: str = typer.Option("auto", "--device"),
    start: bool = typer.Option(True, "--start/--no-start", help="Start the runner if none is running."),
) -> None:
    """Append experiments to the queue (validated first) and start the runner."""
    from ..config import ConfigError
    from ..runs import queue

    cfg = load_config(config)
    for name in names:
        try:
            cfg.get(name, list(overrides or []))
        except ConfigError as exc:
            fail(str(exc))
    folder = runs_dir_for(cfg, runs_dir)
    for name in names:
        entries = queue.add(folder, name, cfg.path, list(overrides or []), device)
    console.print(f"queue: {', '.join(e['experiment'] for e in entries)}")
    if start and queue.start_runner(folder):
        console.print("started the queue runner")


@queue_app.command("list")
def list_cmd(config: Optional[Path] = ConfigOption, runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")) -> None:
    """Show the waiting entries and whether the runner is alive."""
    from ..runs import queue

    folder = runs_dir if runs_dir is not None else runs_dir_for(load_config(config), None)
    entries = queue.read_queue(folder)
    console.print(f"runner: {'running' if queue.runner_alive(folder) else 'not running'}")
    for i, e in enumerate(entries, 1):
        console.print(f"{i}. {e['experiment']} {' '.join('--set ' + o for o in e.get('overrides', []))}")
    if not entries:
        console.print("queue is empty")


@queue_app.command("clear")
def clear_cmd(config: Optional[Path] = ConfigOption, runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")) -> None:
    """Drop every waiting entry (a run already started goes on)."""
    from ..runs import queue

    queue.clear(runs_dir if runs_dir is not None else runs_dir_for(load_config(config), None))
    console.print("queue cleared")


@queue_app.command("run")
def run_cmd(runs_dir: Path = typer.Option(..., "--runs-dir")) -> None:
    """Run the queue in the foreground until it is empty (the detached runner does this)."""
    from ..runs import queue

    n = queue.run_queue(runs_dir)
    console.print(f"queue: ran {n} experiments")

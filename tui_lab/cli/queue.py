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
    overrides: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="section.key=value for these entries."),
    device: str = typer.Option("auto", "--device"),
    start: bool = typer.Option(True, "--start/--no-start", help="Start the runner if none is running."),
) -> None:
    """Append experiments to the queue (validated first) and start the runner."""
    from rich.text import Text

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
    console.print(Text("queue: " + ", ".join(e["experiment"] for e in entries)))
    if start and queue.start_runner(folder):
        console.print("started the queue runner")


def _folder(config: Optional[Path], runs_dir: Optional[Path]) -> Path:
    return runs_dir if runs_dir is not None else runs_dir_for(load_config(config), None)


@queue_app.command("list")
def list_cmd(config: Optional[Path] = ConfigOption, runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")) -> None:
    """Show the waiting entries and whether the runner is alive (and what it trains)."""
    from rich.text import Text

    from ..runs import queue

    folder = _folder(config, runs_dir)
    runner = queue.runner_info(folder)
    if runner is None:
        console.print("runner: not running")
    else:
        current, waiting = runner.get("current"), runner.get("waiting_for")
        doing = f"training {current}" if current else f"waiting for {waiting} to end" if waiting else "idle"
        console.print(Text(f"runner: pid {runner.get('pid')}, {doing}"))
    entries = queue.read_queue(folder)
    for i, e in enumerate(entries, 1):
        console.print(Text(f"{i}. {e['experiment']} {' '.join('--set ' + o for o in e.get('overrides', []))}".rstrip()))
    if not entries:
        console.print("queue is empty")


@queue_app.command("clear")
def clear_cmd(config: Optional[Path] = ConfigOption, runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")) -> None:
    """Drop every waiting entry (a run already started goes on)."""
    from ..runs import queue

    n = queue.clear(_folder(config, runs_dir))
    console.print(f"queue cleared ({n} entr{'y' if n == 1 else 'ies'} dropped)")


@queue_app.command("run")
def run_cmd(config: Optional[Path] = ConfigOption, runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")) -> None:
    """Run the queue in the foreground until it is empty (the detached runner does this);
    exits at once when another runner is alive."""
    from ..runs import queue

    n = queue.run_queue(_folder(config, runs_dir))
    console.print(f"queue: ran {n} experiment{'' if n == 1 else 's'}")

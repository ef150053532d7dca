"""Helpers shared by the CLI commands: consoles, config loading, clean errors."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from ..errors import TuiLabError

console = Console()
err_console = Console(stderr=True)

ConfigOption = typer.Option(None, "--config", "-c", help="Experiments file (default: ./experiments.toml).",
                            dir_okay=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (no traceback)."""
    from rich.text import Text

    # the message is data (it may quote "[experiments.NAME]" or a user's value): never markup
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_config(path: Path | None, validate: bool = True):
    """Load the experiments file or exit 2 with the message naming file and key
    (``validate=False``: see :func:`tui_lab.config.load_experiments`)."""
    from ..config import DEFAULT_FILENAME, ConfigError, load_experiments

    if path is None and not Path(DEFAULT_FILENAME).exists():
        fail(f"no {DEFAULT_FILENAME} in {Path.cwd()}: run `tui-lab init` to write the default one, "
             "or pass --config FILE")
    try:
        return load_experiments(path, validate=validate)
    except ConfigError as exc:
        fail(str(exc))


def runs_dir_for(cfg, runs_dir: Path | None) -> Path:
    """``--runs-dir``, else the file's ``settings.runs_dir`` relative to the file's folder."""
    if runs_dir is not None:
        return runs_dir
    base = Path(cfg.settings.runs_dir)
    return base if base.is_absolute() else cfg.path.resolve().parent / base


def handle(exc: TuiLabError) -> NoReturn:
    fail(str(exc), getattr(exc, "exit_code", 2))

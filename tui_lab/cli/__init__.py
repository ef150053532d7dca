"""The ``tui-lab`` command line (Typer). Commands import torch lazily, inside themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import bench, chat, experiments, export, importer, report, serve, sweep, train
from .launch import launch_app
from .queue import queue_app

app = typer.Typer(
    name="tui-lab",
    help="A terminal lab for training small GPT-style language models. Run with no command to open the app.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: paragraphs wrap to the terminal, flags show no <bool> placeholder
)

app.command("init")(experiments.init_cmd)
app.command("check")(experiments.check_cmd)
app.command("list")(experiments.list_cmd)
app.command("train")(train.train_cmd)
app.command("chat")(chat.chat_cmd)
app.command("export")(export.export_cmd)
app.command("import")(importer.import_cmd)
app.command("bench")(bench.bench_cmd)
app.command("serve")(serve.serve_cmd)
app.command("sweep")(sweep.sweep_cmd)
app.command("report")(report.report_cmd)
app.add_typer(queue_app, name="queue")
app.add_typer(launch_app, name="launch")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Experiments file for the app."),
) -> None:
    """With no command: open the terminal app on ./experiments.toml (or --config)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..config import ConfigError
    from .common import fail, load_config

    cfg = load_config(config, validate=False)  # the schema check runs right after the first frame
    try:
        from ..app import run_app
    except ImportError:
        fail("the terminal app is not available in this build")
    try:
        run_app(cfg)
    except ConfigError as exc:
        fail(str(exc))


def _no_list_placeholders(command) -> None:
    """Help names a list argument ``NAMES...`` alone, without Typer's ``<list[str]>`` type."""
    import typer.core

    for param in getattr(command, "params", []):
        if isinstance(param, typer.core.TyperArgument) and param.nargs != 1:
            param.display_type_rich = lambda ctx: None
    for sub in getattr(command, "commands", {}).values():
        _no_list_placeholders(sub)


def main() -> None:
    command = typer.main.get_command(app)
    _no_list_placeholders(command)
    command(prog_name="tui-lab")

"""`tui-lab init`, `tui-lab check`, `tui-lab list`: the experiments file and what it defines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import ConfigOption, console, fail, load_config


def init_cmd(
    path: Path = typer.Argument(Path("experiments.toml"), help="Where to write the default experiments file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write the default experiments file (exp1-exp7 and the offline demo)."""
    from ..config import default_experiments_text
    from ..atomic import atomic_write

    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it")
    try:
        atomic_write(path, default_experiments_text())
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror}")
    console.print(f"wrote {path}")


def check_cmd(
    args: Optional[list[str]] = typer.Argument(None, metavar="[FILE] [NAME]...",
                                               help="Experiments file, then experiment names for --sanity."),
    sanity: bool = typer.Option(False, "--sanity", help="Also build each model and its data and run quick sanity checks."),
    device: str = typer.Option("cpu", "--device", help="Device for --sanity."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="section.key=value for --sanity (e.g. data.path=DIR)."),
) -> None:
    """Validate an experiments file without running anything (exit 2 on the first bad key)."""
    args = list(args or [])
    file: Path | None = None
    if args and (args[0].endswith(".toml") or Path(args[0]).is_file()):
        file = Path(args.pop(0))
    cfg = load_config(file)
    console.print(f"[green]ok[/] {cfg.path}: {len(cfg.names)} experiments ({', '.join(cfg.names)})")
    if args and not sanity:
        fail("experiment names are only taken with --sanity")
    if not sanity:
        return
    from ..errors import TuiLabError
    from ..train.sanity import run_sanity_checks

    names = args or cfg.names
    failed = False
    for name in names:
        try:
            exp = cfg.get(name, list(overrides or []))
            checks = run_sanity_checks(exp, device=device)
        except TuiLabError as exc:
            fail(str(exc))
        for c in checks:
            mark = "[green]pass[/]" if c.ok else "[red]FAIL[/]"
            console.print(f"{mark} {name}: {c.name}: {c.detail}")
            failed |= not c.ok
    if failed:
        raise typer.Exit(1)


def list_cmd(
    config: Optional[Path] = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table."),
) -> None:
    """List the experiments: model kind, exact parameter count, dataset, tokenizer, tokens, D/N."""
    cfg = load_config(config)
    from ..train.catalog import experiment_rows

    rows = experiment_rows(cfg)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    headers = (("experiment", "left"), ("kind", "left"), ("params", "right"), ("dataset", "left"),
               ("tokenizer", "left"), ("tokens", "right"), ("D/N", "right"))
    cells = [[r["name"], r["kind"], f"{r['num_params']:,}", r["dataset"], r["tokenizer"],
              f"{r['train_tokens']:,}" if r["train_tokens"] else "-",
              f"{r['chinchilla_ratio']:.2f}" if r["chinchilla_ratio"] else "-"] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(headers)]
    if sum(widths) + 2 * (len(widths) - 1) > console.width:
        # narrow terminal: the dataset's name and its config on two lines, every figure whole
        for c in cells:
            if "/" in c[3]:
                head, tail = c[3].rsplit("/", 1)
                c[3] = f"{head}/\n{tail}"
    table = Table(title=str(cfg.path), title_justify="left", box=None, padding=(0, 1), pad_edge=False,
                  show_edge=False, caption="D/N: training tokens per parameter (Chinchilla-optimal ≈ 20); "
                  "tokens -: not tokenized yet", caption_justify="left")
    for (col, just) in headers:
        table.add_column(col, justify=just, no_wrap=col != "dataset", overflow="fold", header_style="bold")
    for c in cells:
        table.add_row(*c)
    console.print(table)

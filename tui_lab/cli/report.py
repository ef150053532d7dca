"""`tui-lab report`: a Markdown (or HTML) report of the runs with a report card against the seed logs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, console, fail


def report_cmd(
    output: Path = typer.Option(Path("report.md"), "--output", "-o", help="The report file; its plots go beside it."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="md or html. Default: from --output's extension, else md."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where the runs are (default: settings.runs_dir)."),
    config: Optional[Path] = ConfigOption,
    price: Optional[float] = typer.Option(None, "--price-per-gpu-hour", help="USD per GPU-hour (default: settings)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the overlay plots (PNG, needs matplotlib)."),
) -> None:
    """Write the report: the seed-log report card, runs, seed groups, progression and overlay plots."""
    from ..config import DEFAULT_FILENAME
    from ..results.report import REPORT_FORMATS, write_report
    from .common import load_config, runs_dir_for

    if fmt is None:
        fmt = "html" if output.suffix.lower() in (".html", ".htm") else "md"
    fmt = fmt.lower().replace("markdown", "md")
    if fmt not in REPORT_FORMATS:
        fail(f"--format {fmt!r}: choose one of {', '.join(REPORT_FORMATS)}")
    if output.is_dir():
        fail(f"--output {output}: is a folder; give a file name")
    if price is not None and not price >= 0:
        fail(f"--price-per-gpu-hour {price}: give a price of 0 or more (USD per GPU-hour)")
    cfg = load_config(config) if config is not None or Path(DEFAULT_FILENAME).is_file() else None
    folder = runs_dir_for(cfg, runs_dir) if cfg is not None else (runs_dir or Path("runs"))
    if price is None:
        price = cfg.settings.gpu_hour_price_usd if cfg is not None else 0.0
    try:
        written = write_report(output, folder, cfg.experiments if cfg is not None else None, fmt=fmt,
                               price_per_gpu_hour=price, plots=plots)
    except OSError as exc:
        fail(f"{output}: cannot write ({exc.strerror or exc})")
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)

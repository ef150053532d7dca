"""`tui-lab import`: a foreign checkpoint (seed scripts', exp7's, Hugging Face GPT-2) → a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, console, fail


def import_cmd(
    checkpoint: str = typer.Argument(..., help="A seed-script or exp7 .pt file, a Hugging Face GPT-2 folder, "
                                               "or hf:NAME."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="The experiment the run belongs to "
                                             "(default: the one with the checkpoint's shape; exp7; the folder name)."),
    output: Optional[Path] = typer.Option(None, "--output", help="The run folder to write (default: "
                                          "RUNS_DIR/EXPERIMENT/<new run id>)."),
    num_heads: Optional[int] = typer.Option(None, "--num-heads", min=1, help="Heads of a seed-script checkpoint."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Default: the experiments file's runs_dir."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Convert a checkpoint from outside tui-lab into a run folder marked "imported" (safetensors
    weights, config.json, run.json with the epoch and validation loss the file carries), so it
    shows in `tui-lab export` and the app beside tui-lab's own runs, and `tui-lab chat RUN` works."""
    from ..errors import TuiLabError
    from ..models.foreign.importer import import_checkpoint
    from .common import load_config, runs_dir_for

    exp_file: Path | None = None
    if config is not None or Path("experiments.toml").is_file():
        cfg = load_config(config)
        exp_file = cfg.path
        runs_dir = runs_dir_for(cfg, runs_dir)
    runs_dir = runs_dir or Path("runs")
    source = checkpoint
    try:
        if checkpoint.startswith("hf:"):
            from ..generate import resolve_checkpoint

            source = str(resolve_checkpoint(checkpoint))
        run = import_checkpoint(source, runs_dir, experiment=experiment, output=output, num_heads=num_heads,
                                experiments_file=exp_file)
    except TuiLabError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the run folder: {exc}")
    info = run.read_run()
    from rich.text import Text

    parts = [f"{info.get('num_params'):,} params" if info.get("num_params") else ""]
    if info.get("epoch") is not None:
        parts.append(f"epoch {info['epoch']}")
    if info.get("best_val_loss") is not None:
        parts.append(f"val loss {info['best_val_loss']:.4f} · val ppl {info['best_val_ppl']:.2f}")
    if info.get("message"):
        console.print(Text(str(info["message"]), style="dim"), highlight=False, soft_wrap=True)
    console.print(Text(f"imported {run.experiment}/{run.run_id}: " + " · ".join(p for p in parts if p)),
                  highlight=False, soft_wrap=True)
    print(run.path)

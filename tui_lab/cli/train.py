"""`tui-lab train`: one run in the foreground with a Rich progress bar."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

import typer

from .common import ConfigOption, console, err_console, fail, load_config, runs_dir_for


def train_cmd(
    name: str = typer.Argument(..., help="Experiment name from the experiments file."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override one key: section.key=value (repeatable)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where run folders go (default: settings.runs_dir)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run folder from its last checkpoint."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Name of the new run folder (default: timestamp)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; one line per evaluation."),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", min=1,
                                       help="Processes (GPUs) for DistributedDataParallel through torchrun."),
    attach: Optional[Path] = typer.Option(None, "--attach", hidden=True,
                                          help="(torchrun workers) train into this prepared run folder."),
    sweep_record: Optional[str] = typer.Option(None, "--sweep-record", hidden=True,
                                               help="(the queue) this run's sweep record, JSON, kept in config.json."),
) -> None:
    """Train an experiment in the foreground; prints the run folder. Ctrl-C stops gracefully."""
    from ..config import ConfigError
    from ..errors import TuiLabError

    cfg = load_config(config)
    try:
        exp = cfg.get(name, list(overrides or []))
    except ConfigError as exc:
        fail(str(exc))
    from ..runs.store import RunDir
    from ..device import resolve_device
    from ..train.trainer import Trainer, experiment_of_run, start_run

    try:
        dev = resolve_device(device)
        if attach is not None:
            run = RunDir(attach)
            exp = experiment_of_run(run)
        elif resume is not None:
            run = RunDir(resume)
            if not run.exists():
                fail(f"--resume {resume}: not a run folder (no run.json / config.json)")
            if not run.can_resume():
                fail(f"--resume {resume}: no checkpoint to resume from yet (checkpoints/last.state.pt)")
            if run.experiment != name:
                fail(f"--resume {resume}: that run is of experiment '{run.experiment}', not '{name}'")
            if overrides:
                fail("--resume continues a run with its saved config: --set is not allowed with it")
            exp = experiment_of_run(run)
            _check_batch(exp, nproc_per_node)
        else:
            _check_batch(exp, nproc_per_node)  # before the run folder exists
            run = start_run(exp, runs_dir_for(cfg, runs_dir), run_id, sweep=_sweep_record(sweep_record))
    except FileExistsError:
        fail(f"--run-id {run_id}: a run folder of that name exists already")
    except TuiLabError as exc:
        fail(str(exc))

    if nproc_per_node > 1:
        raise typer.Exit(_torchrun(name, run, nproc_per_node, device, resume is not None, config))
    from ..train.distributed import under_torchrun

    if under_torchrun() and os.environ.get("RANK", "0") != "0":
        quiet = True
    else:
        console.print(f"run folder: [bold]{run.path}[/]")
    reporter, progress = _make_reporter(quiet)
    try:
        trainer = Trainer(exp, run, dev, resume=resume is not None, reporter=reporter,
                          token_progress=progress.tokenizing if progress else None)
        if progress:
            with progress.live:
                status = trainer.train()
        else:
            status = trainer.train()
    except TuiLabError as exc:
        fail(str(exc), getattr(exc, "exit_code", 2))
    if under_torchrun() and os.environ.get("RANK", "0") != "0":
        return  # rank 0 reports for the job
    info = run.read_run()
    best = info.get("best_val_loss")
    best_txt = f"best val loss {best:.4f} (perplexity {math.exp(best):,.2f})" if best else "no evaluation"
    console.print(f"{status}: step {info.get('step')}, {best_txt}; {info.get('message') or ''}", markup=False)
    console.print(str(run.path))
    if status in ("diverged", "failed"):
        raise typer.Exit(1)


def _sweep_record(text: Optional[str]) -> dict | None:
    """The ``--sweep-record`` JSON object (``{id, overrides, set}``), or exit 2."""
    if text is None:
        return None
    import json

    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        fail(f"--sweep-record {text!r}: expected a JSON object with an id")
    return record


def _check_batch(exp, nproc: int) -> None:
    """Exit 2 when ``train.global_batch_size`` does not divide across ``nproc`` processes."""
    from ..train.distributed import under_torchrun

    if under_torchrun():
        return  # a torchrun worker: the trainer checks against the job's WORLD_SIZE
    try:
        exp.train.per_process_batch(nproc)
    except ValueError as exc:
        fail(f"experiment '{exp.name}': {exc} (--nproc-per-node {nproc})")


def _torchrun(name: str, run, nproc: int, device: str, resume: bool, config: Optional[Path]) -> int:
    """Start ``nproc`` DDP workers with torchrun on this node, training into ``run``."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "tui_lab", "train", name, "--device", device, "--quiet"]
    cmd += ["--resume", str(run.path)] if resume else ["--attach", str(run.path)]
    if config is not None:
        cmd += ["--config", str(config)]
    console.print(f"run folder: [bold]{run.path}[/] ({nproc} processes, torchrun)")
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


class _RichReporter:
    """A Rich progress bar fed by the trainer's metrics events."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.live = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn(), console=err_console, transient=False)
        self.task = None
        self.tok_task = None
        self.last_val = ""

    def tokenizing(self, done: int, total: int | None) -> None:
        if self.tok_task is None:
            self.tok_task = self.live.add_task("tokenizing", total=total, info="bytes")
        self.live.update(self.tok_task, completed=done, total=total)

    def __call__(self, e: dict[str, Any]) -> None:
        ev = e["event"]
        if ev in ("start", "resume") and self.task is None:
            total = e.get("total_steps")
            if total is None:
                total = None
            self.task = self.live.add_task("train", total=total, completed=e.get("step", 0), info="")
        if self.task is None:
            return
        if ev == "train":
            loss = e.get("train_loss")
            info = f"loss {loss:.4f}  {e.get('tokens_per_s', 0):,.0f} tok/s" if loss is not None else "loss nan"
            self.live.update(self.task, completed=e["step"], info=f"{info}  {self.last_val}")
        elif ev == "eval":
            self.last_val = f"val ppl {e['val_ppl']:,.2f}"
            self.live.console.print(f"step {e['step']:>6}  epoch {e['epoch']:>3}  val loss {e['val_loss']:.4f}  "
                                    f"val ppl {e['val_ppl']:,.2f}  acc {e['val_acc']:.3f}"
                                    + ("  [green]best[/]" if e.get("is_best") else ""))
        elif ev == "sample":
            from rich.text import Text

            self.live.console.print(Text.assemble("  ", (e["prompt"], "dim"), repr(e["text"])), highlight=False)


def _make_reporter(quiet: bool):
    if quiet:
        def report(e: dict[str, Any]) -> None:
            if e["event"] == "eval":
                print(f"step {e['step']} val_loss {e['val_loss']:.4f} val_ppl {e['val_ppl']:.2f}", flush=True)
        return report, None
    r = _RichReporter()
    return r, r

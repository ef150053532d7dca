"""`tui-lab train`: one run in the foreground with a progress bar (parse, show, delegate).

Exit codes: 0 finished (or stopped by SIGTERM), 130 stopped by Ctrl-C (SIGINT), 1 diverged or
failed after starting, 2 bad usage or an experiment that cannot be trained as given.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Optional

import typer

from .common import ConfigOption, console, err_console, fail, load_config, runs_dir_for


def train_cmd(
    name: str = typer.Argument(..., help="Experiment name from the experiments file."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                                  help="Override one key: section.key=value (repeatable)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", metavar="DIR",
                                            help="Where run folders go (default: settings.runs_dir)."),
    device: str = typer.Option("auto", "--device", metavar="NAME",
                               help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN_DIR",
                                          help="Continue this run folder from its last checkpoint."),
    run_id: Optional[str] = typer.Option(None, "--run-id", metavar="ID",
                                         help="Name of the new run folder (default: timestamp)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; one line per evaluation."),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", min=1, metavar="N",
                                       help="Processes (GPUs) for DistributedDataParallel through torchrun."),
    attach: Optional[Path] = typer.Option(None, "--attach", hidden=True,
                                          help="(torchrun workers) train into this prepared run folder."),
    sweep_record: Optional[str] = typer.Option(None, "--sweep-record", hidden=True,
                                               help="(the queue) this run's sweep record, JSON, kept in config.json."),
) -> None:
    """Train an experiment in the foreground; prints the run folder. Ctrl-C stops gracefully (exit 130)."""
    try:
        _train(name, config, overrides, runs_dir, device, resume, run_id, quiet, nproc_per_node, attach,
               sweep_record)
    except KeyboardInterrupt:  # Ctrl-C before the trainer took over SIGINT (imports, set-up)
        err_console.print("stopped (Ctrl-C)")
        raise typer.Exit(130) from None


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


def _train(name, config, overrides, runs_dir, device, resume, run_id, quiet, nproc_per_node, attach,
           sweep_record=None) -> None:
    from ..config import ConfigError
    from ..errors import TuiLabError

    cfg = load_config(config)
    try:
        exp = cfg.get(name, list(overrides or []))
    except ConfigError as exc:
        fail(str(exc))
    from ..device import resolve_device
    from ..runs.store import RunDir
    from ..train.resume import open_resumable
    from ..train.setup import check_batch, check_run_id, experiment_of_run, start_run

    try:
        if run_id is not None:
            check_run_id(run_id)
        dev = resolve_device(device)
        if attach is not None:
            run = RunDir(attach)
            exp = experiment_of_run(run)
        elif resume is not None:
            run, exp = open_resumable(resume, name, list(overrides or []))
            check_batch(exp, nproc_per_node)
        else:
            check_batch(exp, nproc_per_node)  # before the run folder exists
            run = start_run(exp, runs_dir_for(cfg, runs_dir), run_id, sweep=_sweep_record(sweep_record))
    except FileExistsError:
        fail(f"--run-id {run_id}: a run folder of that name exists already")
    except TuiLabError as exc:
        fail(str(exc))

    if nproc_per_node > 1:
        raise typer.Exit(_torchrun(name, run, nproc_per_node, device, resume is not None, config))
    from ..train.distributed import under_torchrun

    worker = under_torchrun() and os.environ.get("RANK", "0") != "0"
    from ..train.runlog import RunLog

    log = RunLog(run) if not worker else None
    if not worker:
        console.print(f"run folder: [bold]{run.path}[/]")
        if log:
            log.write(f"run folder: {run.path} (tui-lab train {name}{' --resume' if resume else ''})")
    reporter, bar = _make_reporter(quiet or worker, exp, run, log)
    from ..train.loop import Trainer

    trainer = Trainer(exp, run, dev, resume=resume is not None, reporter=reporter,
                      token_progress=bar.tokenizing if bar else None)
    try:
        if bar:
            with bar.live:
                status = trainer.train()
        else:
            status = trainer.train()
    except TuiLabError as exc:
        if log:
            log.write(f"error: {exc}")
            log.close()
        fail(str(exc), getattr(exc, "exit_code", 2))
    if worker:
        return  # rank 0 reports for the job
    from ..runs.metrics import perplexity

    info = run.read_run()
    best = info.get("best_val_loss")
    best_txt = f"best val loss {best:.4f} (perplexity {perplexity(best):,.2f})" if best else "no evaluation"
    final = f"{status}: step {info.get('step')}, {best_txt}; {info.get('message') or ''}"
    console.print(final, markup=False)
    console.print(str(run.path))
    if log:
        log.write(final)
        log.close()
    if status in ("diverged", "failed"):
        raise typer.Exit(1)
    if status == "stopped" and trainer.stop_signal == signal.SIGINT:
        raise typer.Exit(130)


def _torchrun(name: str, run, nproc: int, device: str, resume: bool, config: Optional[Path]) -> int:
    """Start ``nproc`` DDP workers with torchrun on this node, training into ``run``."""
    import subprocess

    from ..runs.launcher import torchrun_command

    cmd = torchrun_command(name, run, nproc_per_node=nproc, device=device, resume=resume, config=config)
    console.print(f"run folder: [bold]{run.path}[/] ({nproc} processes, torchrun)")
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


def _make_reporter(quiet: bool, exp, run, log):
    """``(reporter, bar)``: quiet prints one line per evaluation / sample to stdout; otherwise a
    progress bar on stderr. Both copy those lines into ``train.log`` (``log``)."""
    from ..train.runlog import event_line

    def to_log(e: dict[str, Any]) -> None:
        line = event_line(e)
        if line and log:
            log.write(line)

    if quiet:
        def report(e: dict[str, Any]) -> None:
            line = event_line(e)
            if line:
                print(line, flush=True)
            if line and log:
                log.write(line)
        return report, None
    from ..train.schedule import evaluations_after
    from .train_bar import TrainBar

    bar = TrainBar(err_console, exp.train.eval_every, evaluations_after, run)

    def report_bar(e: dict[str, Any]) -> None:
        bar(e)
        to_log(e)
    return report_bar, bar

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
    nproc_per_node: Optional[int] = typer.Option(None, "--nproc-per-node", min=1, metavar="N",
                                       help="Processes (GPUs) for DistributedDataParallel through torchrun."),
    attach: Optional[Path] = typer.Option(None, "--attach", hidden=True,
                                          help="(torchrun workers) train into this prepared run folder."),
    nnodes: Optional[int] = typer.Option(None, "--nnodes", min=1, metavar="N",
                                         help="Nodes in a multi-node job (default: settings.distributed, else 1)."),
    node_rank: Optional[int] = typer.Option(None, "--node-rank", min=0, metavar="R",
                                            help="This node's rank, 0 to N-1; node 0 writes the run folder."),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", metavar="HOST:PORT",
                                                help="Node 0's address and a free port (torchrun c10d rendezvous)."),
    rdzv_id: Optional[str] = typer.Option(None, "--rdzv-id", metavar="ID",
                                          help="Job id, the same on every node (default: tui-lab)."),
    join: bool = typer.Option(False, "--join", hidden=True,
                              help="(torchrun workers of nodes > 0) train into node 0's run folder."),
    sweep_record: Optional[str] = typer.Option(None, "--sweep-record", hidden=True,
                                               help="(the queue) this run's sweep record, JSON, kept in config.json."),
) -> None:
    """Train an experiment in the foreground; prints the run folder. Ctrl-C stops gracefully (exit 130).

    Across nodes: run the same command on each with --nnodes, --node-rank and --rdzv-endpoint;
    the runs folder must be on a filesystem all nodes share."""
    try:
        from ..train.distributed import under_torchrun

        if under_torchrun():  # a torchrun worker (started by _torchrun below)
            from ..train.multinode import is_multinode

            if is_multinode():
                _train_worker_multinode(attach, resume, join, device)
                return
            dist = {"nnodes": 1, "node_rank": 0, "rdzv_endpoint": None, "rdzv_id": None, "nproc_per_node": 1}
        else:
            dist = _distributed(load_config(config), nnodes, node_rank, rdzv_endpoint, rdzv_id, nproc_per_node)
        if dist["nnodes"] > 1 and dist["node_rank"] > 0:  # node 0 owns the run folder
            raise typer.Exit(_torchrun(name, None, dist, device, resume is not None, config))
        _train(name, config, overrides, runs_dir, device, resume, run_id, quiet, attach, dist, sweep_record)
    except KeyboardInterrupt:  # Ctrl-C before the trainer took over SIGINT (imports, set-up)
        err_console.print("stopped (Ctrl-C)")
        raise typer.Exit(130) from None


def _distributed(cfg, nnodes, node_rank, rdzv_endpoint, rdzv_id, nproc_per_node) -> dict[str, Any]:
    """The job's shape: each flag, else its ``[settings.distributed]`` key; exit 2 on bad values."""
    s = cfg.settings.distributed
    d = {"nnodes": nnodes if nnodes is not None else s.nnodes,
         "node_rank": node_rank if node_rank is not None else s.node_rank,
         "rdzv_endpoint": rdzv_endpoint or s.rdzv_endpoint, "rdzv_id": rdzv_id or s.rdzv_id or "tui-lab",
         "nproc_per_node": nproc_per_node if nproc_per_node is not None else s.nproc_per_node}
    if d["nnodes"] > 1:
        where = d["rdzv_endpoint"]
        if not where:
            fail(f"--nnodes {d['nnodes']}: give --rdzv-endpoint HOST:PORT (node 0's address and a free port)")
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            fail(f"--rdzv-endpoint {where!r}: expected HOST:PORT, e.g. node0.cluster:29500")
        if not d["node_rank"] < d["nnodes"]:
            fail(f"--node-rank {d['node_rank']}: must be 0 to {d['nnodes'] - 1} (--nnodes {d['nnodes']})")
    elif d["node_rank"] != 0:
        fail(f"--node-rank {d['node_rank']}: only with --nnodes 2 or more")
    return d


def _train_worker_multinode(attach, resume, join, device) -> None:
    """A torchrun worker of a multi-node job: join the process group, learn the run folder from
    the writer (node 0's local rank 0), then train; only the writer reports."""
    from ..device import resolve_device
    from ..errors import TuiLabError
    from ..runs.store import RunDir
    from ..train.loop import Trainer
    from ..train.multinode import join_job
    from ..train.setup import experiment_of_run

    try:
        ctx, dev, folder, resuming = join_job(None if join else (resume or attach), resume is not None,
                                              resolve_device(device))
        run = RunDir(folder)
        exp = experiment_of_run(run)
    except TuiLabError as exc:
        fail(str(exc))
    reporter, _ = _make_reporter(True, exp, run, None)
    try:
        status = Trainer(exp, run, dev, resume=resuming, reporter=reporter if ctx.is_main else None).train()
    except TuiLabError as exc:
        fail(str(exc), getattr(exc, "exit_code", 2))
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


def _train(name, config, overrides, runs_dir, device, resume, run_id, quiet, attach, dist,
           sweep_record=None) -> None:
    from ..config import ConfigError
    from ..errors import TuiLabError

    cfg = load_config(config)
    nproc_per_node = dist["nproc_per_node"]
    processes = nproc_per_node * dist["nnodes"]
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
            check_batch(exp, processes)
        else:
            check_batch(exp, processes)  # before the run folder exists
            run = start_run(exp, runs_dir_for(cfg, runs_dir), run_id, sweep=_sweep_record(sweep_record))
    except FileExistsError:
        fail(f"--run-id {run_id}: a run folder of that name exists already")
    except TuiLabError as exc:
        fail(str(exc))

    if processes > 1:
        raise typer.Exit(_torchrun(name, run, dist, device, resume is not None, config))
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
                      token_progress=bar.tokenizing if bar else None, alerts=cfg.settings.alerts)
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


def _torchrun(name: str, run, dist: dict[str, Any], device: str, resume: bool, config: Optional[Path]) -> int:
    """Start this node's DDP workers with torchrun, training into ``run`` (node 0) or into node 0's
    run folder (``run`` None: the other nodes of a multi-node job); the exit code of torchrun."""
    import subprocess

    from ..runs.launcher import torchrun_command
    from ..train.multinode import rdzv_timeout_s

    nproc, nnodes = dist["nproc_per_node"], dist["nnodes"]
    cmd = torchrun_command(name, run, nproc_per_node=nproc, device=device, resume=resume, config=config,
                           nnodes=nnodes, node_rank=dist["node_rank"], rdzv_endpoint=dist["rdzv_endpoint"],
                           rdzv_id=dist["rdzv_id"], rdzv_timeout_s=rdzv_timeout_s())
    if run is None:
        console.print(f"node {dist['node_rank']} of {nnodes}: joining the job at {dist['rdzv_endpoint']} "
                      f"({nproc} processes here); node 0 writes the run folder", markup=False)
    else:
        shape = f"{nnodes} nodes x {nproc}" if nnodes > 1 else str(nproc)
        console.print(f"run folder: [bold]{run.path}[/] ({shape} processes, torchrun)")
    try:
        rc = subprocess.call(cmd, env={**os.environ, "TUI_LAB_NODE_RANK": str(dist["node_rank"])})
    except KeyboardInterrupt:
        return 130
    if run is not None:
        info = run.read_run()
        if rc != 0 and info.get("message"):
            err_console.print(f"{info.get('status')}: {info['message']}", markup=False, highlight=False)
        console.print(str(run.path), markup=False, highlight=False, soft_wrap=True)
    return rc


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

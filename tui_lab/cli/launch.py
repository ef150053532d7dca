"""`tui-lab launch slurm|skypilot`: write (and submit) a multi-node launch spec.

The spec runs ``tui-lab train NAME --nnodes … --node-rank … --rdzv-endpoint …`` on every
node (see :mod:`tui_lab.runs.cluster`); the experiment and its ``--set`` overrides are
checked here first, so a typo fails on the login node, not in the queue.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, console, fail, load_config, runs_dir_for

launch_app = typer.Typer(help="Write launch specs for multi-node training (SLURM, SkyPilot).",
                         no_args_is_help=True)

SetOption = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override one key: section.key=value (repeatable).")
RunsDirOption = typer.Option(None, "--runs-dir", metavar="DIR",
                             help="Where run folders go, on a filesystem every node shares (default: settings.runs_dir).")
PortOption = typer.Option(29500, "--port", min=1, max=65535, help="Rendezvous port on the first node.")
DeviceOption = typer.Option("auto", "--device", metavar="NAME", help="--device for tui-lab train on each node.")


def _spec(name: str, config: Optional[Path], overrides: Optional[list[str]], runs_dir: Optional[Path],
          world_size: int, nproc: int, python: str, port: int, device: str):
    """The validated :class:`TrainSpec` (exit 2 naming the key or value otherwise)."""
    from ..config import ConfigError
    from ..runs.cluster import TrainSpec

    cfg = load_config(config)
    try:
        exp = cfg.get(name, list(overrides or []))
    except ConfigError as exc:
        fail(str(exc))
    try:
        exp.train.per_process_batch(world_size)
    except ValueError as exc:
        fail(f"experiment '{name}': {exc} ({world_size} processes in all)")
    return TrainSpec(experiment=name, config=cfg.path.resolve(), runs_dir=runs_dir_for(cfg, runs_dir).resolve(),
                     nproc_per_node=nproc, python=python, port=port, device=device, overrides=list(overrides or []))


def _write(path: Path, text: str, executable: bool = False) -> None:
    from ..atomic import atomic_write

    try:
        atomic_write(path, text)
        if executable:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as exc:
        fail(f"--out {path}: cannot write it ({exc.strerror or exc})")


@launch_app.command("slurm")
def slurm_cmd(
    name: str = typer.Argument(..., help="Experiment name from the experiments file."),
    nodes: int = typer.Option(..., "--nodes", min=1, help="Nodes (SLURM --nodes)."),
    gpus_per_node: int = typer.Option(..., "--gpus-per-node", min=1,
                                      help="GPUs per node; tui-lab starts one process per GPU."),
    partition: Optional[str] = typer.Option(None, "--partition", help="SLURM partition."),
    time_limit: Optional[str] = typer.Option(None, "--time", metavar="HH:MM:SS", help="SLURM time limit."),
    overrides: Optional[list[str]] = SetOption,
    submit: bool = typer.Option(False, "--submit", help="Submit the script with sbatch after writing it."),
    config: Optional[Path] = ConfigOption,
    runs_dir: Optional[Path] = RunsDirOption,
    out: Optional[Path] = typer.Option(None, "--out", help="The script to write (default: ./NAME.slurm.sh)."),
    port: int = PortOption,
    device: str = DeviceOption,
    python: str = typer.Option(sys.executable, "--python", help="Python on the nodes (default: this one)."),
) -> None:
    """Write a SLURM batch script that trains NAME on --nodes nodes (srun + torchrun on each)."""
    from ..runs.cluster import check_time, slurm_script

    try:
        check_time(time_limit)
    except ValueError as exc:
        fail(str(exc))
    spec = _spec(name, config, overrides, runs_dir, nodes * gpus_per_node, gpus_per_node, python, port, device)
    path = out or Path(f"{name}.slurm.sh")
    _write(path, slurm_script(spec, nodes=nodes, gpus_per_node=gpus_per_node, partition=partition,
                              time_limit=time_limit), executable=True)
    console.print(f"wrote {path} ({nodes} nodes x {gpus_per_node} GPUs; runs in {spec.runs_dir})", markup=False)
    if not submit:
        console.print(f"submit it with: sbatch {path}", markup=False)
        return
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        fail(f"--submit: sbatch is not on PATH (not a SLURM login node?); {path} is written — "
             f"submit it with `sbatch {path}` where SLURM is installed")
    r = subprocess.run([sbatch, str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"sbatch {path} failed (exit {r.returncode}): {r.stderr.strip() or r.stdout.strip()}", 1)
    console.print(r.stdout.strip(), markup=False)


@launch_app.command("skypilot")
def skypilot_cmd(
    name: str = typer.Argument(..., help="Experiment name from the experiments file."),
    nodes: int = typer.Option(..., "--nodes", min=1, help="Nodes (SkyPilot num_nodes)."),
    accelerators: str = typer.Option(..., "--accelerators", metavar="TYPE:COUNT",
                                     help="Accelerators per node, e.g. H100:8; one process per accelerator."),
    overrides: Optional[list[str]] = SetOption,
    config: Optional[Path] = ConfigOption,
    runs_dir: Optional[Path] = RunsDirOption,
    out: Optional[Path] = typer.Option(None, "--out", help="The YAML to write (default: ./NAME.sky.yaml)."),
    port: int = PortOption,
    device: str = DeviceOption,
    python: str = typer.Option("python", "--python", help="Python on the nodes (default: python on PATH)."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="SkyPilot workdir synced to every node."),
    setup: Optional[str] = typer.Option(None, "--setup", help="SkyPilot setup commands (e.g. pip install -e .)."),
) -> None:
    """Write a SkyPilot task YAML that trains NAME on --nodes nodes (sky launch FILE)."""
    from ..runs.cluster import parse_accelerators, skypilot_yaml

    try:
        _, count = parse_accelerators(accelerators)
    except ValueError as exc:
        fail(str(exc))
    spec = _spec(name, config, overrides, runs_dir, nodes * count, count, python, port, device)
    path = out or Path(f"{name}.sky.yaml")
    _write(path, skypilot_yaml(spec, nodes=nodes, accelerators=accelerators, workdir=workdir, setup=setup))
    console.print(f"wrote {path} ({nodes} nodes x {accelerators}; runs in {spec.runs_dir})", markup=False)
    console.print(f"launch it with: sky launch {path}", markup=False)

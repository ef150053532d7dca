"""Launch specs for clusters: a SLURM batch script and a SkyPilot task YAML (no torch here).

Both run the same command on every node — ``tui-lab train NAME --nnodes N --node-rank R
--rdzv-endpoint HEAD:PORT --rdzv-id ID --nproc-per-node P`` — with N, R and HEAD taken
from the scheduler's environment, the pattern of torchtitan's and torchtune's multinode
SLURM scripts (one task per node, torchrun with the c10d rendezvous on each):

- SLURM: ``srun`` starts one task per node; ``$SLURM_NNODES``, ``$SLURM_NODEID``, the head
  node from ``scontrol show hostnames $SLURM_JOB_NODELIST | sed -n 1p``, ``$SLURM_JOB_ID`` as
  the rendezvous id.
- SkyPilot: the ``run`` section runs on every node with ``$SKYPILOT_NUM_NODES``,
  ``$SKYPILOT_NODE_RANK``, the head node's IP as the first line of ``$SKYPILOT_NODE_IPS``
  (SkyPilot docs, "Distributed multi-node jobs").

The training command then writes its run folder exactly as a local run does (resolved
experiment in ``config.json``), so the app and the results tables treat cluster runs like
any other. The runs folder must be on a filesystem all nodes share.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 29500
TIME_RE = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")
ACCEL_RE = re.compile(r"^([A-Za-z0-9_-]+):([1-9]\d*)$")


@dataclass
class TrainSpec:
    """What every node runs: ``python -m tui_lab train`` with these choices (all validated)."""

    experiment: str
    config: Path
    runs_dir: Path
    nproc_per_node: int
    python: str = "python"
    port: int = DEFAULT_PORT
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)

    def fixed_args(self) -> list[str]:
        """The argv before the node-dependent flags (each item shell-quoted on output)."""
        args = [self.python, "-m", "tui_lab", "train", self.experiment, "--config", str(self.config),
                "--runs-dir", str(self.runs_dir), "--device", self.device, "--quiet"]
        for item in self.overrides:
            args += ["--set", item]
        return args

    def command(self, nnodes: str, node_rank: str, head: str, rdzv_id: str) -> str:
        """One shell line; ``nnodes`` / ``node_rank`` / ``head`` / ``rdzv_id`` are shell words
        (variable references, inserted unquoted inside double quotes)."""
        fixed = " ".join(shlex.quote(a) for a in self.fixed_args())
        return (f'{fixed} --nnodes "{nnodes}" --node-rank "{node_rank}" --rdzv-endpoint "{head}:{self.port}" '
                f'--rdzv-id "{rdzv_id}" --nproc-per-node {self.nproc_per_node}')


def check_time(value: str | None) -> None:
    """Raises ValueError unless ``value`` is SLURM's ``[D-]HH:MM:SS`` (or None)."""
    if value is not None and not TIME_RE.match(value):
        raise ValueError(f"--time {value!r}: expected HH:MM:SS (or D-HH:MM:SS)")


def parse_accelerators(value: str) -> tuple[str, int]:
    """``H100:8`` → ("H100", 8). Raises ValueError naming the value otherwise."""
    m = ACCEL_RE.match(value)
    if not m:
        raise ValueError(f"--accelerators {value!r}: expected TYPE:COUNT, e.g. H100:8")
    return m.group(1), int(m.group(2))


def slurm_script(spec: TrainSpec, *, nodes: int, gpus_per_node: int, partition: str | None = None,
                 time_limit: str | None = None, job_name: str | None = None, log_dir: Path | None = None) -> str:
    """A ``sbatch`` script: one task per node, each running torchrun through ``tui-lab train``.

    Raises:
        ValueError: ``time_limit`` is not ``[D-]HH:MM:SS``.
    """
    check_time(time_limit)
    name = job_name or f"tui-lab-{spec.experiment}"
    out = (Path(log_dir) if log_dir else spec.runs_dir) / f"slurm-{spec.experiment}-%j.out"
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={name}",
             f"#SBATCH --nodes={nodes}",
             "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --gpus-per-node={gpus_per_node}" if gpus_per_node else None,
             f"#SBATCH --partition={partition}" if partition else None,
             f"#SBATCH --time={time_limit}" if time_limit else None,
             f"#SBATCH --output={out}",
             "# Written by `tui-lab launch slurm`. One task per node; on each, tui-lab starts torchrun",
             "# (c10d rendezvous at the first node) with --nproc-per-node workers. The runs folder",
             "# must be on a filesystem every node shares.",
             "set -euo pipefail",
             "# sed, not head: head would exit after one line and, under pipefail, a SIGPIPE'd",
             "# scontrol (more than one node) would end the job with 141",
             'MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
             "export MASTER",
             "# single quotes: each task expands its own $SLURM_NODEID",
             "srun --kill-on-bad-exit=1 --ntasks-per-node=1 bash -c "
             + shlex.quote("exec " + spec.command("$SLURM_NNODES", "$SLURM_NODEID", "$MASTER", "$SLURM_JOB_ID"))]
    return "\n".join(line for line in lines if line is not None) + "\n"


def skypilot_yaml(spec: TrainSpec, *, nodes: int, accelerators: str, workdir: Path | None = None,
                  setup: str | None = None, name: str | None = None) -> str:
    """A SkyPilot task YAML running the training command on ``nodes`` nodes.

    Raises:
        ValueError: ``accelerators`` is not ``TYPE:COUNT``.
    """
    import json

    parse_accelerators(accelerators)
    run = "\n".join([
        'MASTER=$(echo "$SKYPILOT_NODE_IPS" | sed -n 1p)',
        "exec " + spec.command("$SKYPILOT_NUM_NODES", "$SKYPILOT_NODE_RANK", "$MASTER",
                               "${SKYPILOT_TASK_ID:-tui-lab}"),
    ])

    def block(text: str, indent: str = "  ") -> str:
        return "|\n" + "\n".join(indent + line for line in text.splitlines())

    lines = [f"# Written by `tui-lab launch skypilot`: `sky launch {spec.experiment}.sky.yaml`.",
             "# The runs folder must be on a filesystem every node shares (a SkyPilot storage mount).",
             f"name: {json.dumps(name or 'tui-lab-' + spec.experiment)}",
             f"num_nodes: {nodes}",
             "resources:",
             f"  accelerators: {json.dumps(accelerators)}"]
    if workdir is not None:
        lines.append(f"workdir: {json.dumps(str(workdir))}")
    if setup:
        lines.append("setup: " + block(setup))
    lines.append("run: " + block(run))
    return "\n".join(lines) + "\n"

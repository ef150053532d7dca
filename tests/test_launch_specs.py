"""`tui-lab launch slurm` / `launch skypilot`: the specs they write, and their commands run here.

SLURM: the generated batch script runs under bash with the SLURM variables of a two-node job
and stub ``srun`` / ``scontrol`` on PATH (the stub ``srun`` starts the task once per fake
node with its ``SLURM_NODEID``, as srun does on each node). SkyPilot: the YAML parses and its
``run`` section trains as a one-node job when SkyPilot's variables are set.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tui_lab.runs import RunDir, load_history

from tiny import tiny_toml

SRUN_STUB = """#!/bin/bash
# stub srun: drop srun's options, run the task once per node of the fake job, fail if any fails
while [[ "$1" == --* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NNODES; i++)); do
  SLURM_NODEID=$i SLURM_PROCID=$i "$@" > "$STUB_LOG_DIR/node$i.out" 2> "$STUB_LOG_DIR/node$i.err" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""
SCONTROL_STUB = """#!/bin/bash
# stub scontrol: `scontrol show hostnames NODELIST` prints one host per node of the fake job
[[ "$1 $2" == "show hostnames" ]] || exit 1
for ((i = 0; i < SLURM_NNODES; i++)); do echo 127.0.0.1; done
"""


def tui_lab(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stub(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml(batch_size=8, max_steps=10, eval_every=10, log_every=5))
    return path


def test_slurm_script_has_the_multinode_pattern(tmp_path, cfg):
    out = tmp_path / "job.sh"
    r = tui_lab("launch", "slurm", "tiny", "--nodes", "4", "--gpus-per-node", "8", "--partition", "gpu",
                "--time", "02:00:00", "--set", "train.lr=3e-4", "--config", str(cfg), "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert out.stat().st_mode & stat.S_IXUSR
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --partition=gpu", "#SBATCH --time=02:00:00",
                 'MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)'):
        assert line in text.splitlines(), (line, text)
    srun = next(line for line in text.splitlines() if line.startswith("srun "))
    for part in ('--nnodes "$SLURM_NNODES"', '--node-rank "$SLURM_NODEID"', '--rdzv-endpoint "$MASTER:29500"',
                 "--nproc-per-node 8", "--set train.lr=3e-4", str(cfg.resolve())):
        assert part in srun, (part, srun)
    subprocess.run(["bash", "-n", str(out)], check=True)  # valid bash


@pytest.mark.parametrize("args, message", [
    (["--time", "2h"], "--time '2h': expected HH:MM:SS"),
    (["--set", "train.nope=1"], "train.nope"),
    (["--set", "train.global_batch_size=6"], "does not divide by 4 processes"),
])
def test_slurm_bad_input_names_the_value_and_writes_nothing(tmp_path, cfg, args, message):
    out = tmp_path / "job.sh"
    r = tui_lab("launch", "slurm", "tiny", "--nodes", "2", "--gpus-per-node", "2", "--config", str(cfg),
                "--out", str(out), *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_slurm_submit_without_sbatch_is_a_clear_error(tmp_path, cfg):
    out = tmp_path / "job.sh"
    r = tui_lab("launch", "slurm", "tiny", "--nodes", "2", "--gpus-per-node", "1", "--config", str(cfg),
                "--out", str(out), "--submit", env={"PATH": str(Path(sys.executable).parent)})
    assert r.returncode == 2
    assert "sbatch is not on PATH" in r.stderr and str(out) in r.stderr.replace("\n", "")
    assert out.is_file()  # written, ready to submit elsewhere


def test_slurm_submit_runs_sbatch(tmp_path, cfg):
    bin_dir = tmp_path / "bin"
    stub(bin_dir, "sbatch", '#!/bin/bash\necho "$@" > "$(dirname "$0")/sbatch.args"\necho "Submitted batch job 42"\n')
    out = tmp_path / "job.sh"
    r = tui_lab("launch", "slurm", "tiny", "--nodes", "2", "--gpus-per-node", "1", "--config", str(cfg),
                "--out", str(out), "--submit", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    assert "Submitted batch job 42" in r.stdout
    assert (bin_dir / "sbatch.args").read_text().strip() == str(out)


@pytest.mark.slow
def test_slurm_script_trains_two_fake_nodes_on_this_machine(tmp_path, cfg):
    runs, port = tmp_path / "runs", free_port()
    out = tmp_path / "job.sh"
    r = tui_lab("launch", "slurm", "tiny", "--nodes", "2", "--gpus-per-node", "1", "--config", str(cfg),
                "--runs-dir", str(runs), "--port", str(port), "--device", "cpu", "--set", "train.batch_size=4",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    bin_dir = tmp_path / "bin"
    stub(bin_dir, "srun", SRUN_STUB)
    stub(bin_dir, "scontrol", SCONTROL_STUB)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "fake[1-2]", "STUB_LOG_DIR": str(tmp_path), "TUI_LAB_DIST_TIMEOUT_S": "60",
           "TUI_LAB_RDZV_TIMEOUT_S": "120"}
    job = subprocess.run(["bash", str(out)], capture_output=True, text=True, timeout=600, env=env)
    logs = {i: (tmp_path / f"node{i}.err").read_text() for i in (0, 1) if (tmp_path / f"node{i}.err").exists()}
    assert job.returncode == 0, (job.stderr, logs)
    (path,) = list((runs / "tiny").iterdir())  # one run folder for the job
    run = RunDir(path)
    info = json.loads(run.run_path.read_text())
    assert (info["status"], info["world_size"], info["nnodes"]) == ("finished", 2, 2)
    assert json.loads(run.config_path.read_text())["train"]["batch_size"] == 4  # resolved, as a local run
    steps = [e["step"] for e in load_history(run) if e["event"] == "train"]
    assert steps == [5, 10]


def test_skypilot_yaml_parses(tmp_path, cfg):
    import yaml

    out = tmp_path / "job.sky.yaml"
    r = tui_lab("launch", "skypilot", "tiny", "--nodes", "2", "--accelerators", "H100:8", "--config", str(cfg),
                "--out", str(out), "--setup", "pip install -e .")
    assert r.returncode == 0, r.stderr
    task = yaml.safe_load(out.read_text())
    assert task["num_nodes"] == 2 and task["resources"]["accelerators"] == "H100:8"
    assert task["setup"].strip() == "pip install -e ."
    run = task["run"]
    assert 'sed -n 1p' in run and "$SKYPILOT_NODE_IPS" in run
    for part in ('--nnodes "$SKYPILOT_NUM_NODES"', '--node-rank "$SKYPILOT_NODE_RANK"', "--nproc-per-node 8"):
        assert part in run


def test_skypilot_bad_accelerators(tmp_path, cfg):
    r = tui_lab("launch", "skypilot", "tiny", "--nodes", "2", "--accelerators", "H100x8", "--config", str(cfg),
                "--out", str(tmp_path / "x.yaml"))
    assert r.returncode == 2 and "--accelerators 'H100x8'" in r.stderr
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.slow
def test_skypilot_run_section_trains_a_one_node_job(tmp_path, cfg):
    import yaml

    runs, out = tmp_path / "runs", tmp_path / "job.sky.yaml"
    r = tui_lab("launch", "skypilot", "tiny", "--nodes", "1", "--accelerators", "H100:1", "--config", str(cfg),
                "--runs-dir", str(runs), "--port", str(free_port()), "--device", "cpu", "--python", sys.executable,
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    task = yaml.safe_load(out.read_text())
    env = {**os.environ, "SKYPILOT_NODE_RANK": "0", "SKYPILOT_NUM_NODES": "1", "SKYPILOT_NODE_IPS": "127.0.0.1\n",
           "SKYPILOT_TASK_ID": "sky-test"}
    job = subprocess.run(["bash", "-c", task["run"]], capture_output=True, text=True, timeout=600, env=env)
    assert job.returncode == 0, job.stderr
    (path,) = list((runs / "tiny").iterdir())
    run = RunDir(path)
    assert run.read_run()["status"] == "finished"
    assert json.loads(run.config_path.read_text())["name"] == "tiny"

"""The `tui-lab` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_toml

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "tui_lab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_init_writes_the_default_file_and_refuses_to_overwrite(tmp_path):
    r = cli("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "experiments.toml").read_text() == (ROOT / "experiments.toml").read_text()
    r = cli("init", cwd=tmp_path)
    assert r.returncode == 2 and "exists" in r.stderr


def test_missing_experiments_file_says_how_to_get_one(tmp_path):
    r = cli("list", cwd=tmp_path)
    assert r.returncode == 2
    assert "experiments.toml" in r.stderr and "tui-lab init" in r.stderr
    assert "Traceback" not in r.stderr


def test_check_ok_and_bad_file(tmp_path):
    r = cli("check")
    assert r.returncode == 0 and "8 experiments" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "experiments.toml").read_text().replace("num_heads = 2", "num_heads = 3", 1))
    r = cli("check", str(bad))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "experiment 'exp1'" in r.stderr and "divisible by num_heads" in r.stderr
    assert "Traceback" not in r.stderr


def test_list_reports_the_seed_logs_parameter_counts():
    r = cli("list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["exp1"]["num_params"] == 869_153
    assert rows["exp2"]["num_params"] == 869_153
    assert rows["exp3"]["num_params"] == 7_342_033
    assert rows["exp6"]["num_params"] == 63_873_617
    assert rows["exp7"]["kind"] == "deepseek"
    assert rows["exp7"]["num_params"] == 15_585_472 + (50257 - 49152) * 256  # GPT-2 vocabulary
    r = cli("list")
    assert r.returncode == 0 and "869,153" in r.stdout and "63,873,617" in r.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (("train", "nope"), "no experiment named 'nope'"),
        (("train", "demo", "--set", "train.lr"), "expected section.key=value"),
        (("train", "demo", "--set", "train.lr=-1"), "key 'train.lr'"),
        (("train", "demo", "--resume", "/nonexistent/run"), "not a run folder"),
        (("train", "demo", "--device", "cuda:7"), "not available"),
    ],
)
def test_bad_usage_is_a_clean_error(args, words, tmp_path):
    r = cli(*args, "--runs-dir", str(tmp_path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_train_demo_from_the_cli(tmp_path):
    r = cli("train", "demo", "--runs-dir", str(tmp_path), "--quiet", "--set", "train.max_steps=20",
            "--set", "train.eval_every=10", "--set", "train.sample_every=1")
    assert r.returncode == 0, r.stderr
    run_dirs = list((tmp_path / "demo").iterdir())
    assert len(run_dirs) == 1 and str(run_dirs[0]) in r.stdout
    assert "finished" in r.stdout
    info = json.loads((run_dirs[0] / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == 20
    events = [json.loads(line) for line in (run_dirs[0] / "metrics.jsonl").read_text().splitlines()]
    samples = [e for e in events if e["event"] == "sample"]
    assert {s["prompt"] for s in samples} == {"The return statement", "A class is"}


def test_bench_json_reports_training_and_decoding_side_by_side(tmp_path):
    """`tui-lab bench --json`: the last line is one JSON object with both models' figures from one run."""
    (tmp_path / "experiments.toml").write_text(tiny_toml())
    r = cli("bench", "-e", "tiny", "--steps", "1", "--context", "16", "--new-tokens", "8",
            "--skip", "tokenize", "--skip", "startup", "--device", "cpu", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    train, decode = out["train"], out["decode"]
    assert train["num_params"] == 256 * 32 + 64 * 32 + (4 * (32 * 32 + 32) + 2 * 32 * 64 + 64 + 32 + 4 * 32) + 2 * 32 + 256
    assert train["fused_cross_entropy"] is True
    assert train["tui_lab_tokens_per_s"] > 0 and train["tui_lab_logits_loss_tokens_per_s"] > 0
    if "speedup_vs_reference" in train:  # transformers installed (the `bench` extra)
        assert train["speedup_vs_reference"] == pytest.approx(
            train["tui_lab_tokens_per_s"] / train["reference_tokens_per_s"], rel=1e-2)
    else:
        assert "transformers" in train["reference"]
    assert decode["kv_cache_tokens_per_s"] > 0 and decode["no_cache_tokens_per_s"] > 0
    assert "tokenize" not in out and "startup" not in out

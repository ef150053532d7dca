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


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300, columns: int = 200) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
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
    for columns in (80, 120):  # every exact count and every dataset name whole, nothing cut with '…'
        r = cli("list", columns=columns)
        assert r.returncode == 0, r.stderr
        assert "…" not in r.stdout and max(len(line) for line in r.stdout.splitlines()) <= columns
        for row in rows.values():
            assert f"{row['num_params']:,}" in r.stdout
        words = r.stdout.split()
        for row in rows.values():  # whole, or (narrow terminals) its name and its config on two lines
            head, _, tail = row["dataset"].rpartition("/")
            assert row["dataset"] in words or (head + "/" in words and tail in words), (columns, row["dataset"])
        if columns == 120:
            assert all(row["dataset"] in words for row in rows.values())


def test_help_shows_no_type_placeholders_and_wraps_to_the_terminal():
    for command in ("train", "chat", "export", "bench", "check", "list", "queue add"):
        r = cli(*command.split(), "--help", columns=80)
        assert r.returncode == 0, r.stderr
        assert "<bool>" not in r.stdout and "<list[" not in r.stdout, (command, r.stdout)
        assert max(len(line) for line in r.stdout.splitlines()) <= 80, command
    r = cli("chat", "--help", columns=80)
    description = r.stdout.split("Arguments:")[0].strip().split("\n\n")[1:]  # after the usage line
    assert description
    for paragraph in description:  # wrapped to the width: only a paragraph's last line is short
        lines = paragraph.splitlines()
        assert all(len(line) >= 60 for line in lines[:-1]), lines


def test_run_id_must_be_one_folder_name(tmp_path):
    runs = tmp_path / "R"
    for bad in ("../../escaped", "a/b", "..", ".hidden", "x/../../y"):
        r = cli("train", "demo", "--runs-dir", str(runs), "--run-id", bad, "--device", "cpu")
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "--run-id" in r.stderr and "Traceback" not in r.stderr
    assert not runs.exists() and not (tmp_path / "escaped").exists()


def test_check_bounds_integer_keys_and_names_the_key(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml(batch_size=10**15))
    r = cli("check", str(path))
    assert r.returncode == 2 and "train.batch_size" in r.stderr and "Traceback" not in r.stderr


def test_train_reports_fewer_windows_than_one_batch_cleanly(tmp_path):
    """Valid in the file, impossible with this data: exit 2, the keys to change, no traceback."""
    (tmp_path / "experiments.toml").write_text(tiny_toml(batch_size=500_000))
    r = cli("train", "tiny", "--runs-dir", str(tmp_path / "runs"), "--device", "cpu", "--quiet", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "fewer than one batch" in r.stderr and "train.batch_size" in r.stderr and "Traceback" not in r.stderr
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and "fewer than one batch" in info["message"]


def test_export_with_no_runs_names_the_runs_folder(tmp_path):
    r = cli("export", "--runs-dir", str(tmp_path / "nothing-here"), cwd=tmp_path)
    assert r.returncode == 2
    assert "no runs" in r.stderr and str((tmp_path / "nothing-here").resolve()) in r.stderr.replace("\n", "")


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
@pytest.mark.parametrize("quiet", [True, False])
def test_train_demo_from_the_cli(tmp_path, quiet):
    r = cli("train", "demo", "--runs-dir", str(tmp_path), *(["--quiet"] if quiet else []), "--set", "train.max_steps=20",
            "--set", "train.eval_every=10", "--set", "train.sample_every=1", "--set", "train.eval_max_tokens=2048")
    assert r.returncode == 0, r.stderr
    run_dirs = list((tmp_path / "demo").iterdir())
    assert len(run_dirs) == 1 and str(run_dirs[0]) in r.stdout
    assert "finished" in r.stdout
    shown = r.stdout if quiet else r.stderr
    # samples print as text: the prompt, then the generated text — no Python repr quotes or escapes
    samples = [line for line in shown.splitlines() if "The return statement" in line]
    assert samples and not any("'" + "The return" in line or "\\u" in line for line in samples), samples
    # a foreground run writes train.log too, each line once
    log = (run_dirs[0] / "train.log").read_text().splitlines()
    assert log[0].startswith("run folder: ") and log[-1].startswith("finished: step 20")
    for step in (0, 10, 20):  # each evaluation once (samples may wrap onto indented lines)
        assert sum(line.startswith(f"step {step} val_loss") for line in log) == 1, log
    assert sum(line.startswith(("run folder:", "finished:")) for line in log) == 2
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
    out = json.loads(r.stdout)  # stdout is the JSON alone; the human lines went to stderr
    assert "training:" in r.stderr
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

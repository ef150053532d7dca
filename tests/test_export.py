"""Result tables and `tui-lab export`: golden outputs, pandas round-trip, LaTeX structure, plots."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui_lab.results import comparison_table, progression_table, render, runs_table
from tui_lab.runs import RunDir, write_json_atomic

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TUI_LAB_UPDATE_GOLDEN") == "1"  # TUI_LAB_UPDATE_GOLDEN=1 pytest tests/test_export.py


def make_run(root: Path, exp: str, run_id: str, start: float, ppls: list[float], d_model: int,
             device: str = "cpu", resume_at: int | None = None) -> RunDir:
    run = RunDir(root / exp / run_id)
    run.path.mkdir(parents=True)
    write_json_atomic(run.config_path, {"model": {"d_model": d_model, "num_layers": 4, "num_heads": 8},
                                        "train": {"batch_size": 32},
                                        "data": {"dataset": "Salesforce/wikitext", "config": "wikitext-2-raw-v1"}})
    events = []
    for i, ppl in enumerate(ppls):
        step = (i + 1) * 100
        events.append({"event": "train", "time": start + step, "step": step, "epoch": i, "train_loss": math.log(ppl) + 0.1,
                       "lr": 3e-4, "tokens_seen": step * 16384, "tokens_per_s": 50000.0 + i, "elapsed_s": step * 0.3})
        events.append({"event": "eval", "time": start + step, "step": step, "epoch": i + 1, "val_loss": math.log(ppl),
                       "val_ppl": ppl, "val_acc": 0.2, "val_word_ppl": ppl * 1.7, "tokens_seen": step * 16384,
                       "elapsed_s": step * 0.3})
        if resume_at is not None and step == resume_at:
            events.append({"event": "train", "time": start + step + 1, "step": step + 100, "train_loss": 99.0,
                           "tokens_seen": 0, "elapsed_s": 0})  # written, then the process was killed
            events.append({"event": "resume", "time": start + step + 2, "step": step})
    run.metrics_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    n = len(ppls) * 100
    write_json_atomic(run.run_path, {"status": "finished", "started_at": start, "num_params": 7_342_033,
                                     "train_tokens": 2_448_382, "step": n, "epoch": len(ppls), "tokens_seen": n * 16384,
                                     "elapsed_s": n * 0.3, "device": device, "world_size": 1,
                                     "git_commit": "0123456789abcdef"})
    return run


@pytest.fixture
def runs(tmp_path) -> list[RunDir]:
    return [make_run(tmp_path, "exp3", "20260101-000000-aaaa", 1000.0, [376.01, 187.36, 91.76, 77.75], 128),
            make_run(tmp_path, "exp4", "20260102-000000-bbbb", 2000.0, [180.5, 45.2, 32.8], 256, device="cuda",
                     resume_at=200)]


@pytest.mark.parametrize("fmt, ext", [("md", "md"), ("csv", "csv"), ("latex", "tex"), ("json", "json")])
def test_runs_table_matches_golden_files(runs, fmt, ext):
    text = render(runs_table(runs, price_per_gpu_hour=2.0), fmt)
    golden = GOLDEN / f"runs.{ext}"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_progression_table_matches_golden(runs):
    text = render(progression_table(runs[0]), "md")
    golden = GOLDEN / "progression.md"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text()
    assert "| 200 | 2 | 3,276,800 | 5.2330 | 187.36 | -188.65 |" in text  # the seeds' exp3 table, recomputed


def test_csv_round_trips_through_pandas_with_numeric_columns(runs):
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(io.StringIO(render(runs_table(runs, 2.0), "csv")))
    assert list(df["experiment"]) == ["exp3", "exp4"]
    for col in ("num_params", "train_tokens", "steps", "tokens_seen"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    for col in ("best_val_ppl", "best_val_loss", "wall_time_s", "tokens_per_s", "chinchilla_ratio"):
        assert pd.api.types.is_float_dtype(df[col]), col
    assert df["best_val_ppl"].tolist() == [77.75, 32.8]
    assert math.isnan(df["cost_usd"][0]) and df["cost_usd"][1] == pytest.approx(300 * 0.3 / 3600 * 2.0, rel=1e-3)


def test_json_keys_carry_units_and_values_are_typed(runs):
    rows = json.loads(render(runs_table(runs), "json"))
    assert {"wall_time_s", "tokens_per_s", "best_val_ppl", "num_params", "cost_usd"} <= set(rows[0])
    assert rows[1]["best_val_word_ppl"] == pytest.approx(32.8 * 1.7)
    assert isinstance(rows[0]["num_params"], int) and rows[0]["cost_usd"] is None


def test_latex_is_booktabs_escaped_and_well_formed(runs):
    tex = render(runs_table(runs), "latex")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "wikitext-2-raw-v1" in tex and r"exp3" in tex and "_" not in tex.replace(r"\_", "")
    spec = tex.split(r"\begin{tabular}{")[1].split("}")[0]
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    for line in body:  # every row has as many cells as the column spec
        assert line.endswith(r"\\") and line.count(" & ") == len(spec) - 1
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")


def test_resumed_run_history_drops_superseded_events(runs):
    row = runs_table(runs).rows[1]
    assert row["final_train_loss"] == pytest.approx(math.log(32.8) + 0.1)  # not the killed attempt's 99.0


def test_comparison_shows_changes_between_consecutive_runs(runs):
    rows = comparison_table(runs).rows
    assert rows[0]["delta_best_val_ppl"] is None
    assert rows[1]["delta_best_val_ppl"] == pytest.approx(32.8 - 77.75)
    assert rows[1]["delta_best_val_ppl_pct"] == pytest.approx((32.8 - 77.75) / 77.75 * 100)


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", "export", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_export_cli_stdout_file_and_errors(runs, tmp_path):
    out = cli("--runs-dir", str(tmp_path), "--format", "csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    r = cli("--runs-dir", str(tmp_path), "--format", "csv", "--output", "t.csv", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "t.csv").read_text() == out.stdout
    r = cli("--runs-dir", str(tmp_path), "--run", "exp4/20260102-000000-bbbb", "--run", "20260101-000000-aaaa",
            "--compare", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.index("exp4/") < r.stdout.index("exp3/")
    r = cli("--runs-dir", str(tmp_path), "--run", "nope", "--output", "x.md", cwd=tmp_path)
    assert r.returncode == 2 and "nope" in r.stderr and not (tmp_path / "x.md").exists()
    r = cli("--runs-dir", str(tmp_path / "empty"), cwd=tmp_path)
    assert r.returncode == 2 and "no runs" in r.stderr
    r = cli("--runs-dir", str(tmp_path), "--format", "xml", cwd=tmp_path)
    assert r.returncode == 2 and "xml" in r.stderr


def test_export_plot_writes_a_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    r = cli("--runs-dir", str(tmp_path), "--plot", "ppl", "--output", "curves.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""`tui-lab report` and seed groups on fixed run folders (built with the run store's API).

The report's golden file is ``tests/golden/report.md`` (regenerate with
``TUI_LAB_UPDATE_GOLDEN=1``, then read the diff).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from fixed_runs import WT2_RAW, make_run
from tui_lab.config import load_experiments
from tui_lab.results.groups import Stat, group_table, seed_groups, sweep_runs, sweep_table
from tui_lab.results.formats import render
from tui_lab.results.report import data_protocol, write_report

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TUI_LAB_UPDATE_GOLDEN") == "1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_763_000_000.0


def fixed_runs(root: Path, tmp: Path) -> dict[str, object]:
    """exp1 (seed protocol, and once on the <unk> text), exp2 (whole-file join), exp7, and a
    demo sweep of 2 lr x 2 seeds."""
    unk = tmp / "wikitext-2-tokenized"
    unk.mkdir()
    (unk / "valid.txt").write_text(" = Homarus = \n a <unk> lobster .\n", encoding="utf-8")
    runs = {}
    runs["exp1"] = make_run(root, "exp1", "20251111-090000-a1a1", t0=T0, evals=[(100, 900.0), (200, 520.5), (300, 471.25)],
                            tokens_per_s=[1200.0, 1180.0, 1190.0])
    runs["exp1_unk"] = make_run(root, "exp1", "20251111-100000-b2b2", t0=T0 + 3600,
                                evals=[(100, 950.0), (300, 480.0)], tokens_per_s=[1100.0],
                                data={"path": str(unk), "tokenizer": "gpt2", "join": "file"}, val_tokens=258_659)
    runs["exp2"] = make_run(root, "exp2", "20251112-090000-c3c3", t0=T0 + 7200, evals=[(500, 700.0), (1000, 380.0)],
                            tokens_per_s=[125_000.0, 127_000.0],
                            data={**WT2_RAW, "config": "wikitext-103-raw-v1", "join": "file"}, val_tokens=249_887,
                            train_tokens=117_920_140)
    runs["exp7"] = make_run(root, "exp7", "20251120-090000-d4d4", t0=T0 + 9000, evals=[(500, 300.0), (1000, 120.0)],
                            tokens_per_s=[50_000.0], num_params=15_868_352,
                            model={"kind": "deepseek", "vocab_size": 50257, "max_seq_len": 256, "d_model": 256,
                                   "num_heads": 4, "d_ff": 1024, "num_layers": 3, "q_lora_rank": 128,
                                   "kv_lora_rank": 128},
                            data={**WT2_RAW, "config": "wikitext-103-raw-v1", "join": "file"}, val_tokens=249_887)
    demo = {"kind": "gpt", "vocab_size": 256, "max_seq_len": 64, "d_model": 32, "num_heads": 2, "d_ff": 64, "num_layers": 1}
    pydoc = {"dataset": "pydoc", "tokenizer": "byte"}
    grid = [(1e-3, 0, 12.5, [3000.0, 3100.0]), (1e-3, 1, 13.1, [2900.0, 3050.0]),
            (2e-3, 0, 11.2, [3200.0]), (2e-3, 1, 11.9, [3150.0, 3000.0, 2950.0])]
    for i, (lr, seed, ppl, tps) in enumerate(grid):
        runs[f"demo{i}"] = make_run(root, "demo", f"20251121-09000{i}-e5e5", t0=T0 + 10_000 + 100 * i,
                                    evals=[(10, 40.0), (20, ppl)], tokens_per_s=tps, model=demo, data=pydoc,
                                    train={"lr": lr, "seed": seed}, num_params=70_000, val_tokens=30_000,
                                    train_tokens=400_000,
                                    sweep={"id": "demo-sw1", "overrides": {"train.lr": lr, "train.seed": seed}, "set": []})
    return runs


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    made = fixed_runs(root, tmp_path)
    return root, made


def test_sample_std_uses_n_minus_1():
    xs = [12.5, 13.1, 11.9]
    st = Stat.of(xs + [None, float("nan")])
    assert st.n == 3 and st.mean == pytest.approx(statistics.mean(xs))
    assert st.std == pytest.approx(statistics.stdev(xs))  # n - 1
    assert (st.min, st.max) == (11.9, 13.1)
    assert Stat.of([5.0]).std is None and Stat.of([5.0]).text() == "5.00 (1)"
    assert st.text(2) == f"{statistics.mean(xs):,.2f} ± {statistics.stdev(xs):,.2f} (3)"


def test_seed_groups_pair_runs_that_differ_only_in_the_seed(runs):
    root, made = runs
    demo = sweep_runs(root, "demo-sw1")
    assert [r.run_id for r in demo] == [made[f"demo{i}"].run_id for i in range(4)]
    groups = seed_groups(demo)
    assert [(g.label, g.n, g.seeds, g.sweep) for g in groups] == [
        ("train.lr=0.001", 2, [0, 1], "demo-sw1"), ("train.lr=0.002", 2, [0, 1], "demo-sw1")]
    ppl = groups[0].stats["best_val_ppl"]
    assert (ppl.n, ppl.mean, ppl.std) == (2, pytest.approx(12.8), pytest.approx(statistics.stdev([12.5, 13.1])))
    tps = groups[1].stats["tokens_per_s"]  # each run's tokens seen / training clock, then over the group
    assert tps.mean == pytest.approx((3200.0 + (3150.0 + 3000.0 + 2950.0) / 3) / 2, rel=1e-4)  # elapsed_s: 3 decimals
    # exp1's two runs differ in their data: two groups of one
    assert [g.n for g in seed_groups([made["exp1"], made["exp1_unk"]])] == [1, 1]


def test_group_exports_in_every_format(runs):
    root, _ = runs
    groups = seed_groups(sweep_runs(root, "demo-sw1"))
    md = render(group_table(groups, human=True), "md")
    assert f"{statistics.mean([12.5, 13.1]):.2f} ± {statistics.stdev([12.5, 13.1]):.2f} (2)" in md
    latex = render(group_table(groups, human=True), "latex")
    assert r"\ensuremath{\pm}" in latex
    rows = json.loads(render(group_table(groups, human=False), "json"))
    assert rows[1]["best_val_ppl_mean"] == pytest.approx(11.55) and rows[1]["best_val_ppl_n"] == 2
    assert rows[1]["best_val_ppl_std"] == pytest.approx(statistics.stdev([11.2, 11.9]))
    csv = render(group_table(groups, human=False), "csv").splitlines()
    assert "best_val_ppl_mean" in csv[0].split(",") and len(csv) == 3
    table = sweep_table(sweep_runs(root, "demo-sw1"))
    assert table.values("overrides")[:2] == ["train.lr=0.001 train.seed=0", "train.lr=0.001 train.seed=1"]


def test_data_protocol_names_join_and_text(runs):
    _, made = runs
    assert data_protocol(made["exp1"].read_config()) == ("strip-lines", "raw")
    assert data_protocol(made["exp1_unk"].read_config()) == ("file", "unk")
    assert data_protocol({"data": {"dataset": "pydoc"}}) == ("file", "pydoc")


def test_report_golden(runs, tmp_path):
    """`tui-lab report` on the fixed runs: the exp1 row shows the seed log's 464.64 beside
    tui-lab's 471.25 with Δ; exp2 says its protocol differs; exp7 says the seed figure is invalid."""
    root, _ = runs
    out = tmp_path / "out" / "report.md"
    out.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "tui_lab", "report", "--output", str(out), "--runs-dir", str(root),
                           "--config", str(ROOT / "experiments.toml")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8").replace(str(tmp_path), "TMP")
    exp1 = next(line for line in text.splitlines() if line.startswith("| exp1 |"))
    assert "| 464.64 | 471.25 | 6.61 | 1.4 | same protocol |" in exp1
    exp2 = next(line for line in text.splitlines() if line.startswith("| exp2 |"))
    assert "different protocol: join file vs seed strip-lines; val tokens 249,887 vs seed 242,643" in exp2
    exp7 = next(line for line in text.splitlines() if line.startswith("| exp7 |"))
    assert "seed figure invalid" in exp7 and "| 3.02 | 120.00 | - |" in exp7
    assert "non-causal model evaluated on overlapping windows" in text
    for name in ("report-exp1.png", "report-demo.png", "report-experiments.png"):
        assert (out.parent / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in text
    path = GOLDEN / "report.md"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), "report.md differs from tests/golden/report.md"


def test_report_html_and_without_plots(runs, tmp_path):
    root, _ = runs
    cfg = load_experiments(ROOT / "experiments.toml")
    written = write_report(tmp_path / "r.html", root, cfg.experiments, fmt="html", plots=False)
    assert written == [tmp_path / "r.html"]
    page = written[0].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<td class=\"n\">464.64</td>" in page
    assert "(plot r-exp1.png skipped: plots turned off)" in page


def test_report_bad_format_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tui_lab", "report", "--format", "pdf", "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--format 'pdf'" in proc.stderr and "Traceback" not in proc.stderr


def test_export_compare_runs_plot_and_sweep_groups(runs, tmp_path):
    """`tui-lab export --compare RUN RUN --plot val_ppl -o FILE.png` draws the overlay;
    `--sweep ID --group-seeds` gives one row per seed group; an unknown sweep exits 2."""
    root, made = runs

    def export(*args):
        return subprocess.run([sys.executable, "-m", "tui_lab", "export", "--runs-dir", str(root), *args],
                              capture_output=True, text=True, cwd=tmp_path)

    png = tmp_path / "overlay.png"
    proc = export("--compare", "exp1/20251111-090000-a1a1", "exp2/20251112-090000-c3c3", "--plot", "val_ppl",
                  "--output", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == PNG_MAGIC
    rows = json.loads(export("--sweep", "demo-sw1", "--group-seeds", "-f", "json").stdout)
    assert [(r["group"], r["n"], r["seeds"]) for r in rows] == [("train.lr=0.001", 2, "0, 1"), ("train.lr=0.002", 2, "0, 1")]
    bad = export("--sweep", "nope")
    assert bad.returncode == 2 and "--sweep nope" in bad.stderr and "demo-sw1" in bad.stderr


def test_group_curve_is_mean_min_max_per_step(runs):
    from tui_lab.results.groups import group_curve

    root, made = runs
    curve = group_curve([made["demo0"], made["demo1"]], "val_ppl")
    assert curve == [(10.0, 40.0, 40.0, 40.0, 2), (20.0, pytest.approx(12.8), 12.5, 13.1, 2)]
    with pytest.raises(ValueError, match="field"):
        group_curve([made["demo0"]], "nope")


def test_with_reference_adds_the_seed_column_to_the_runs_table(runs):
    from tui_lab.results import runs_table
    from tui_lab.results.report import with_reference

    root, made = runs
    cfg = load_experiments(ROOT / "experiments.toml")
    table = with_reference(runs_table([made["exp1"], made["exp7"], made["demo0"]]), cfg.experiments)
    keys = [c.key for c in table.columns]
    assert keys[keys.index("best_val_ppl") + 1: keys.index("best_val_ppl") + 3] == ["seed_val_ppl", "delta_seed_val_ppl"]
    assert table.values("seed_val_ppl") == ["464.64", "3.02 invalid", None]
    assert table.values("delta_seed_val_ppl")[0] == pytest.approx(471.25 - 464.64)
    assert table.values("delta_seed_val_ppl")[1:] == [None, None]


async def test_the_app_results_screen_shows_the_seed_log_column(tmp_path, monkeypatch, no_counts):
    """`r` in the app: beside each run's best val ppl, the seed log's figure and Δ (exp1 464.64)."""
    from textual.widgets import DataTable

    from tui_lab.app.app import TuiLabApp
    from waits import wait_for

    root = tmp_path / "runs"
    fixed_runs(root, tmp_path)
    cfg_path = tmp_path / "experiments.toml"
    cfg_path.write_text((ROOT / "experiments.toml").read_text())
    monkeypatch.chdir(tmp_path)
    app = TuiLabApp(load_experiments(cfg_path))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen.query("#results") and app.screen.query_one("#results", DataTable)
                       .row_count == 8, timeout=15, what="the runs table")
        dt = app.screen.query_one("#results", DataTable)
        row = dt.get_row("exp1/20251111-090000-a1a1")
        keys = [c.key.value for c in dt.ordered_columns]
        assert row[keys.index("seed_val_ppl")] == "464.64" and row[keys.index("delta_seed_val_ppl")] == "6.61"
        assert dt.get_row("exp7/20251120-090000-d4d4")[keys.index("seed_val_ppl")] == "3.02 invalid"

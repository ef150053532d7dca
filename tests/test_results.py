"""Result tables and `tui-lab export`: runs / progression / comparison tables built from run
folders, their Markdown / CSV / LaTeX / JSON renderings, the CLI, and the plots.

The run folders are written with the run store's own API (``create_run``,
``atomic_write_json``, ``MetricsWriter``) and hold realistic numbers: the seeds' exp1 on
WikiText-2 (CPU), exp3 on WikiText-103 (one H100, killed and resumed once) and a wider
model on two GPUs.

Golden files live in ``tests/golden/results_*``. After an intended change of the output,
regenerate them and review the diff::

    TUI_LAB_UPDATE_GOLDEN=1 pytest tests/test_results.py
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny import tiny_toml
from tui_lab.results import (
    FORMATS,
    Column,
    Table,
    all_runs,
    comparison_table,
    progression_table,
    render,
    resolve_run,
    run_record,
    runs_table,
)
from tui_lab.results.formats import format_for_path, latex_escape
from tui_lab.atomic import atomic_write_json
from tui_lab.runs import MetricsWriter, RunDir, create_run, load_history

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TUI_LAB_UPDATE_GOLDEN") == "1"
EXT = {"md": "md", "csv": "csv", "latex": "tex", "json": "json"}
PRICE = 2.49  # USD per GPU-hour
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GPT2_VOCAB, SEQ = 50257, 512
WT103_TRAIN, WT103_VAL, WT103_VAL_WORDS = 117_920_140, 247_289, 217_646


def gpt_params(d: int, d_ff: int, layers: int, vocab: int = GPT2_VOCAB, seq: int = SEQ) -> int:
    """The seeds' LanguageModel parameter count (FIELD_NOTES §1)."""
    return vocab * d + seq * d + layers * (4 * (d * d + d) + (2 * d * d_ff + d_ff + d) + 4 * d) + 2 * d + vocab


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with TUI_LAB_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def make_run(root: Path, experiment: str, run_id: str, *, t0: float, d_model: int, heads: int, d_ff: int,
             layers: int, batch: int, data: dict, train_tokens: int, val_tokens: int, val_words: int | None,
             steps_per_epoch: int, evals: list[tuple[int, float]], train_every: int, tokens_per_s: float,
             device: str = "cpu", device_name: str | None = None, world_size: int = 1, status: str = "finished",
             word_ppl: bool = True, commit: str = "3e7a7e8c" * 5,
             killed_after: int | None = None, superseded: list[dict] | None = None) -> RunDir:
    """A finished run folder written the way the trainer writes one.

    ``evals``: (step, validation perplexity) pairs. ``killed_after``: the step of the last
    checkpoint before the process was killed; ``superseded`` events are what the killed
    attempt logged after it, then a ``resume`` event at ``killed_after`` continues the run.
    """
    run = create_run(root, experiment, run_id)
    params = gpt_params(d_model, d_ff, layers)
    tokens_per_step = batch * SEQ
    global_step_tokens = tokens_per_step * world_size
    atomic_write_json(run.config_path, {
        "name": experiment,
        "model": {"kind": "gpt", "vocab_size": GPT2_VOCAB, "max_seq_len": SEQ, "d_model": d_model,
                  "num_heads": heads, "d_ff": d_ff, "num_layers": layers, "dropout": 0.1},
        "data": data,
        "train": {"batch_size": batch, "lr": 3e-4, "weight_decay": 0.1, "grad_clip": 1.0},
    })

    def elapsed(step: int) -> float:
        return round(step * global_step_tokens / tokens_per_s, 3)

    def when(step: int) -> float:
        return t0 + 30.0 + elapsed(step)

    def train_loss(step: int) -> float:
        return round(4.1 + 3.0 * math.exp(-step / 3000) + 1.0 / math.log(params), 6)

    def eval_fields(step: int, ppl: float, best: float) -> dict:
        loss = math.log(ppl)
        words = round(math.exp(loss * val_tokens / val_words), 4) if word_ppl and val_words else None
        return dict(step=step, epoch=step // steps_per_epoch, val_loss=round(loss, 6), val_ppl=ppl,
                    val_acc=round(0.9 / math.log(ppl), 6), val_tokens=val_tokens, val_word_ppl=words,
                    is_best=loss <= best, best_val_loss=round(min(loss, best), 6),
                    tokens_seen=step * global_step_tokens, elapsed_s=elapsed(step))

    w = MetricsWriter(run.metrics_path)
    w.write("start", time=t0, step=0, total_steps=evals[-1][0], num_params=params, device=device,
            train_tokens=train_tokens, val_tokens=val_tokens)
    last = evals[-1][0]
    eval_at = dict(evals)
    best = math.inf
    resumed = False
    for step in range(1, last + 1):
        if step % train_every == 0 or step == last or step in eval_at:
            w.write("train", time=when(step), step=step, epoch=step // steps_per_epoch, train_loss=train_loss(step),
                    lr=3e-4, tokens_seen=step * global_step_tokens,
                    tokens_per_s=round(tokens_per_s * (1 + 0.01 * ((step // train_every) % 5 - 2)), 1),
                    elapsed_s=elapsed(step), mem_mb=812.5)
        if step % steps_per_epoch == 0:
            w.write("epoch_end", time=when(step), step=step, epoch=step // steps_per_epoch)
        if step in eval_at:
            fields = eval_fields(step, eval_at[step], best)
            best = min(best, fields["val_loss"])
            w.write("eval", time=when(step), **fields)
        if killed_after is not None and step == killed_after and not resumed:
            for e in superseded or []:
                w.write(e["event"], time=when(e["step"]), **{k: v for k, v in e.items() if k != "event"})
            w.write("resume", time=when(step) + 600, step=step, epoch=step // steps_per_epoch,
                    tokens_seen=step * global_step_tokens)
            resumed = True
    best_eval = min(evals, key=lambda sp: sp[1])
    w.write("end", time=when(last) + 1, status=status, step=last, message=f"reached {last} steps",
            best_val_loss=round(math.log(best_eval[1]), 6))
    w.close()
    atomic_write_json(run.run_path, {
        "experiment": experiment, "run_id": run_id, "status": status, "pid": None, "proc_start": None,
        "host": "lab-node-1", "device": device, "device_name": device_name,
        # a resume rewrites started_at: the table orders runs by their first `start` event
        "started_at": t0 + (900.0 if killed_after else 0.0) + 10_000.0 * bool(killed_after),
        "ended_at": when(last) + 1, "message": f"reached {last} steps", "num_params": params,
        "train_tokens": train_tokens, "val_tokens": val_tokens, "val_words": val_words, "total_steps": last,
        "steps_per_epoch": steps_per_epoch, "tokens_per_step": tokens_per_step, "git_commit": commit,
        "world_size": world_size, "step": last, "epoch": last // steps_per_epoch,
        "tokens_seen": last * global_step_tokens, "best_val_loss": math.log(best_eval[1]),
        "best_val_ppl": best_eval[1], "best_step": best_eval[0], "best_epoch": best_eval[0] // steps_per_epoch,
        "elapsed_s": elapsed(last),
    })
    return run


EXP3_EVALS = [(2500, 376.01), (5000, 187.36), (7183, 91.76), (9683, 77.75), (12183, 71.38), (14366, 68.84)]


def build_runs(root: Path) -> list[RunDir]:
    """Three runs, returned in creation order: exp1 (CPU), exp3 (H100, resumed), exp4_wide (2 GPUs)."""
    exp1 = make_run(
        root, "exp1", "20251111-090000-a1b2", t0=1_762_851_600.0, d_model=16, heads=2, d_ff=64, layers=2, batch=8,
        data={"dataset": "Salesforce/wikitext", "config": "wikitext-2-raw-v1", "tokenizer": "gpt2"},
        train_tokens=2_347_038, val_tokens=242_643, val_words=217_646, steps_per_epoch=573,
        evals=[(573, 1210.42), (1146, 612.05), (1719, 464.64)], train_every=191, tokens_per_s=6_150.0)
    superseded = [  # the first attempt logged these, then died writing the step-12183 checkpoint
        {"event": "train", "step": 10000, "epoch": 1, "train_loss": 9.99, "lr": 3e-4, "tokens_seen": 10000 * 16384,
         "tokens_per_s": 1.0, "elapsed_s": 182.0},
        {"event": "eval", "step": 12183, "epoch": 1, "val_loss": math.log(70.0), "val_ppl": 70.0, "val_acc": 0.2,
         "val_word_ppl": 99.0, "is_best": True, "tokens_seen": 12183 * 16384, "elapsed_s": 221.8},
        {"event": "train", "step": 12500, "epoch": 1, "train_loss": 9.99, "lr": 3e-4, "tokens_seen": 12500 * 16384,
         "tokens_per_s": 1.0, "elapsed_s": 227.6},
    ]
    exp3 = make_run(
        root, "exp3", "20251113-080000-c3d4", t0=1_763_020_800.0, d_model=128, heads=4, d_ff=512, layers=4,
        batch=32, data={"dataset": "Salesforce/wikitext", "config": "wikitext-103-raw-v1", "tokenizer": "gpt2"},
        train_tokens=WT103_TRAIN, val_tokens=WT103_VAL, val_words=WT103_VAL_WORDS, steps_per_epoch=7183,
        evals=EXP3_EVALS, train_every=500, tokens_per_s=902_000.0, device="cuda:0",
        device_name="NVIDIA H100 80GB HBM3", commit="54c119e" + "0" * 33, killed_after=9683, superseded=superseded)
    exp4 = make_run(
        root, "exp4_wide", "20251113-093000-e5f6", t0=1_763_026_200.0, d_model=256, heads=8, d_ff=1024, layers=4,
        batch=32, data={"path": "/data/corpora/wikitext-103_raw"}, train_tokens=WT103_TRAIN, val_tokens=WT103_VAL,
        val_words=WT103_VAL_WORDS, steps_per_epoch=3591, evals=[(1500, 120.93), (3591, 58.1), (7182, 46.33)],
        train_every=250, tokens_per_s=1_210_000.0, device="cuda:0", device_name="NVIDIA H100 80GB HBM3",
        world_size=2, word_ppl=False, commit="aa0848d" + "1" * 33)
    return [exp1, exp3, exp4]


@pytest.fixture
def runs(tmp_path) -> list[RunDir]:
    return build_runs(tmp_path / "runs")


# ------------------------------------------------------------------ golden files


@pytest.mark.parametrize("fmt", FORMATS)
def test_runs_table_matches_golden_files(runs, fmt):
    check_golden(f"results_runs.{EXT[fmt]}", render(runs_table(runs, PRICE), fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_progression_table_matches_golden_files(runs, fmt):
    check_golden(f"results_progression.{EXT[fmt]}", render(progression_table(runs[1]), fmt))


def test_comparison_table_matches_golden_file(runs):
    check_golden("results_comparison.md", render(comparison_table(runs, PRICE), "md"))


def test_output_is_deterministic_and_ordered_by_first_start(runs):
    forward = render(runs_table(runs, PRICE), "json")
    assert render(runs_table(list(reversed(runs)), PRICE), "json") == forward
    # exp3's run.json started_at was rewritten by its resume (after exp4_wide started); its
    # first `start` event still puts it second
    assert [r["experiment"] for r in json.loads(forward)] == ["exp1", "exp3", "exp4_wide"]


# ------------------------------------------------------------------ values


def test_runs_table_values(runs):
    rows = {r["experiment"]: r for r in runs_table(runs, PRICE).rows}
    e1, e3, e4 = rows["exp1"], rows["exp3"], rows["exp4_wide"]
    assert e1["num_params"] == 869_153 and e3["num_params"] == 7_342_033 and e4["num_params"] == 16_206_673
    assert (e1["dataset"], e3["dataset"], e4["dataset"]) == ("wikitext-2-raw-v1", "wikitext-103-raw-v1",
                                                             "wikitext-103_raw")
    assert (e3["d_model"], e3["num_layers"], e3["num_heads"], e3["batch_size"]) == (128, 4, 4, 32)
    assert e1["best_val_ppl"] == 464.64 and e1["best_step"] == 1719 and e1["best_epoch"] == 3
    assert e1["epochs"] == pytest.approx(3.0) and e3["epochs"] == pytest.approx(14366 / 7183)
    # word-level perplexity at the best evaluation; none where the eval was capped
    assert e1["best_val_word_ppl"] == pytest.approx(math.exp(math.log(464.64) * 242_643 / 217_646), rel=1e-6)
    assert e4["best_val_word_ppl"] is None
    # Chinchilla D/N: tokens seen over params, and one epoch of training tokens over params
    assert e1["chinchilla_ratio"] == pytest.approx(1719 * 4096 / 869_153)
    assert e1["chinchilla_ratio_epoch"] == pytest.approx(2_347_038 / 869_153)
    assert e4["tokens_seen"] == 7182 * 16384 * 2  # two GPUs
    # cost: wall hours x price x GPUs, only on CUDA
    assert e1["cost_usd"] is None
    assert e3["cost_usd"] == pytest.approx(e3["wall_time_s"] / 3600 * PRICE)
    assert e4["cost_usd"] == pytest.approx(e4["wall_time_s"] / 3600 * PRICE * 2)
    assert all(r["cost_usd"] is None for r in runs_table(runs, 0.0).rows)
    assert e3["device"] == "NVIDIA H100 80GB HBM3" and e1["device"] == "cpu"
    assert e3["tokens_per_s"] == pytest.approx(902_000, rel=0.02)


def test_numbers_are_formatted_per_format(runs):
    table = runs_table(runs, PRICE)
    md, csv_text = render(table, "md"), render(table, "csv")
    assert "| 7,342,033 |" in md and ",7342033," in csv_text  # separators for people, raw for machines
    assert "| 68.84 |" in md and "| 4.2318 |" in md  # perplexity 2 decimals, loss 4
    assert "| 54c119e000 |" in md and "54c119e" + "0" * 33 in csv_text  # short commit for people
    assert "| - |" in md  # missing values


# ------------------------------------------------------------------ formats


def test_csv_round_trips_through_pandas_with_numeric_dtypes(runs):
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(io.StringIO(render(runs_table(runs, PRICE), "csv")))
    assert list(df["experiment"]) == ["exp1", "exp3", "exp4_wide"]
    for col in ("num_params", "train_tokens", "d_model", "num_layers", "num_heads", "batch_size", "steps",
                "tokens_seen", "best_step", "best_epoch"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    for col in ("epochs", "wall_time_s", "final_train_loss", "best_val_loss", "best_val_ppl", "best_val_word_ppl",
                "chinchilla_ratio", "chinchilla_ratio_epoch", "tokens_per_s", "cost_usd"):
        assert pd.api.types.is_float_dtype(df[col]), col
    assert df["best_val_ppl"].tolist() == [464.64, 68.84, 46.33]
    assert math.isnan(df["cost_usd"][0]) and math.isnan(df["best_val_word_ppl"][2])
    rows = runs_table(runs, PRICE).rows
    assert df["cost_usd"][2] == pytest.approx(rows[2]["cost_usd"], rel=1e-9)
    prog = pd.read_csv(io.StringIO(render(progression_table(runs[1]), "csv")))
    assert pd.api.types.is_integer_dtype(prog["step"]) and pd.api.types.is_float_dtype(prog["delta_val_ppl"])


def test_json_keys_carry_units_and_values_are_typed(runs):
    rows = json.loads(render(runs_table(runs, PRICE), "json"))
    assert {"wall_time_s", "tokens_per_s", "best_val_ppl", "num_params", "cost_usd", "tokens_seen",
            "chinchilla_ratio", "chinchilla_ratio_epoch", "best_val_word_ppl"} <= set(rows[0])
    assert isinstance(rows[0]["num_params"], int) and isinstance(rows[0]["wall_time_s"], float)
    assert rows[0]["cost_usd"] is None and rows[2]["best_val_word_ppl"] is None
    assert rows[1]["git_commit"] == "54c119e" + "0" * 33
    comp = json.loads(render(comparison_table(runs, PRICE), "json"))
    assert {"delta_best_val_ppl", "delta_best_val_ppl_pct", "usd_per_ppl_point"} <= set(comp[1])


def test_latex_is_booktabs_and_escaped(runs):
    tex = render(runs_table(runs, PRICE), "latex")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"exp4\_wide" in tex and r"d\_model" in tex and r"Cost (\$)" in tex
    assert "_" not in tex.replace(r"\_", "")
    spec = tex.split(r"\begin{tabular}{")[1].split("}")[0]
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 3
    for line in body:  # every row has as many cells as the column spec
        assert line.endswith(r"\\") and line.count(" & ") == len(spec) - 1
    assert latex_escape("50% of $5 & #1_a {x} ~^\\") == (r"50\% of \$5 \& \#1\_a \{x\} \textasciitilde{}"
                                                          r"\textasciicircum{}\textbackslash{}")
    comp = render(comparison_table(runs, PRICE), "latex")
    assert "Δ" not in comp and r"\ensuremath{\Delta}" in comp


def _special_table() -> Table:
    cols = [Column("name_x", "Name_% & #"), Column("v", "Value ($)", "float", 2, "USD")]
    return Table("Specials: 50% & $5 #1 ~ ^ \\ {x}", cols, [{"name_x": "a_b & c% #d $e ~f ^g \\h {i} |j|\nΔ"},
                                                            {"v": 1234.5}])


def test_latex_compiles_with_pdflatex(runs, tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not on PATH (e.g. apt-get install texlive-latex-recommended)")
    tables = [render(runs_table(runs, PRICE), "latex"), render(progression_table(runs[1]), "latex"),
              render(comparison_table(runs, PRICE), "latex"), render(_special_table(), "latex")]
    # the one package the output asks for, and nothing else
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + "\n".join(tables)
    doc += "\\end{document}\n"
    (tmp_path / "doc.tex").write_text(doc, encoding="utf-8")
    r = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"


def test_markdown_escapes_pipes_and_line_breaks():
    md = render(_special_table(), "md")
    lines = md.splitlines()
    assert len(lines) == 4  # the line break in a cell became a space
    for line in lines:  # two cells a line: every pipe inside a cell is escaped
        assert len(re.split(r"(?<!\\)\|", line)) == 4, line
    assert "\\|j\\|" in md and "| 1,234.50 |" in md and lines[1] == "| --- | ---: |"


def test_render_rejects_unknown_formats_and_knows_aliases(runs):
    table = runs_table(runs)
    with pytest.raises(ValueError, match="xml"):
        render(table, "xml")
    assert render(table, "tex") == render(table, "latex") and render(table, "markdown") == render(table, "md")
    assert [format_for_path(p) for p in ("a.csv", "b.TEX", "c.json", "d.md", "e.txt")] == [
        "csv", "latex", "json", "md", None]


# ------------------------------------------------------------------ progression, comparison, resume


def test_progression_lists_every_eval_with_its_change(runs):
    rows = progression_table(runs[1]).rows
    assert [(r["step"], r["epoch"], r["val_ppl"]) for r in rows] == [
        (s, s // 7183, p) for s, p in EXP3_EVALS]
    assert rows[0]["delta_val_ppl"] is None
    assert rows[1]["delta_val_ppl"] == pytest.approx(187.36 - 376.01)
    assert rows[-1]["delta_val_ppl"] == pytest.approx(68.84 - 71.38)
    md = render(progression_table(runs[1]), "md")
    assert "| 5,000 | 0 | 81,920,000 | 5.2330 | 187.36 | -188.65 |" in md  # the seeds' exp3 table


def test_resumed_run_drops_superseded_events(runs):
    exp3 = runs[1]
    raw = [json.loads(line) for line in exp3.metrics_path.read_text().splitlines()]
    assert any(e.get("val_ppl") == 70.0 for e in raw)  # the killed attempt's eval is on disk ...
    history = load_history(exp3)
    assert not any(e.get("val_ppl") == 70.0 or e.get("train_loss") == 9.99 for e in history)
    rows = progression_table(exp3).rows  # ... but not in the tables
    assert [r["step"] for r in rows] == [s for s, _ in EXP3_EVALS]
    assert rows[4]["val_ppl"] == 71.38 and rows[4]["delta_val_ppl"] == pytest.approx(71.38 - 77.75)
    rec = run_record(exp3, PRICE)
    assert rec["best_val_ppl"] == 68.84 and rec["final_train_loss"] != 9.99
    assert min(e["tokens_per_s"] for e in history if e["event"] == "train") > 800_000
    assert rec["tokens_per_s"] == pytest.approx(902_000, rel=0.02)  # not dragged down by the dead attempt


def test_comparison_shows_changes_between_consecutive_runs(runs):
    table = comparison_table(runs, PRICE)
    rows = table.rows
    assert [r["run"] for r in rows] == ["exp1/20251111-090000-a1b2", "exp3/20251113-080000-c3d4",
                                        "exp4_wide/20251113-093000-e5f6"]
    assert rows[0]["delta_best_val_ppl"] is None and rows[0]["delta_num_params_pct"] is None
    assert rows[1]["delta_best_val_ppl"] == pytest.approx(68.84 - 464.64)
    assert rows[1]["delta_best_val_ppl_pct"] == pytest.approx((68.84 - 464.64) / 464.64 * 100)  # the "85% better"
    assert rows[2]["delta_best_val_ppl_pct"] == pytest.approx((46.33 - 68.84) / 68.84 * 100)
    assert rows[1]["delta_num_params"] == 7_342_033 - 869_153
    assert rows[1]["delta_num_params_pct"] == pytest.approx((7_342_033 / 869_153 - 1) * 100)  # "8.4x more"
    assert rows[1]["delta_cost_usd"] is None  # exp1 ran on a CPU: no cost to compare with
    assert rows[2]["usd_per_ppl_point"] == pytest.approx(rows[2]["cost_usd"] / (68.84 - 46.33))
    # the given order is kept (a comparison is a story: N to N+1)
    back = comparison_table(list(reversed(runs)), PRICE).rows
    assert back[0]["run"].startswith("exp4_wide/") and back[1]["delta_best_val_ppl"] == pytest.approx(68.84 - 46.33)
    assert back[1]["usd_per_ppl_point"] is None  # got worse
    headers = [c.name for c in table.columns]
    assert len(headers) == len(set(headers))  # every header says what it is


# ------------------------------------------------------------------ odd run folders


def test_unfinished_diverged_and_garbled_runs_do_not_break_the_table(tmp_path, runs):
    root = tmp_path / "runs"
    fresh = create_run(root, "exp5", "20251114-000000-0000")  # just created: config.json only
    atomic_write_json(fresh.config_path, {"model": {"d_model": 256, "num_layers": 8, "num_heads": 8}})
    bad = create_run(root, "exp6", "20251115-000000-0000")
    atomic_write_json(bad.run_path, {"status": "diverged", "device": "cuda:0", "num_params": 63_873_617,
                                     "started_at": 1_763_164_800.0, "best_val_loss": None})
    with open(bad.metrics_path, "w") as fh:
        fh.write('{"event":"train","time":1,"step":10,"train_loss":7.1,"tokens_seen":100,"tokens_per_s":5.0}\n')
        fh.write('{"event":"eval","time":2,"step":10,"val_loss":NaN,"val_ppl":Infinity}\n')
        fh.write("not json at all\n")
        fh.write('{"event":"train","time":3,"step":20,"train_loss":null}\n')
        fh.write('{"event":"train","time":4,"st')  # a partial last line: a writer mid-append
    table = runs_table(all_runs(root), PRICE)
    assert len(table.rows) == 5
    row = next(r for r in table.rows if r["experiment"] == "exp6")
    assert row["best_val_ppl"] is None and row["final_train_loss"] == 7.1 and row["status"] == "diverged"
    assert row["cost_usd"] is None  # no wall time known
    for fmt in FORMATS:
        render(table, fmt)
    assert json.loads(render(table, "json"))  # strict JSON: no NaN / Infinity
    assert progression_table(bad).rows[0]["val_ppl"] is None


def test_resolve_run_by_path_experiment_and_id(runs, tmp_path):
    root = tmp_path / "runs"
    assert resolve_run(str(runs[0].path), root).path == runs[0].path
    assert resolve_run("exp3/20251113-080000-c3d4", root).path == runs[1].path
    assert resolve_run("20251113-093000-e5f6", root).path == runs[2].path
    with pytest.raises(LookupError, match="nope"):
        resolve_run("nope", root)
    with pytest.raises(LookupError, match="not a run folder"):
        resolve_run(str(root / "exp1"), root)
    twin = create_run(root, "exp1_again", "20251113-080000-c3d4")
    atomic_write_json(twin.run_path, {"status": "finished"})
    with pytest.raises(LookupError, match="ambiguous"):
        resolve_run("20251113-080000-c3d4", root)


def test_results_package_imports_neither_torch_nor_matplotlib():
    code = ("import sys, tui_lab.results, tui_lab.results.plot, tui_lab.results.formats\n"
            "bad = [m for m in ('torch', 'matplotlib', 'pandas') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ the CLI


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", "export", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_cli_writes_the_same_table_to_stdout_and_to_output(runs, tmp_path):
    for fmt in FORMATS:
        out = cli("--runs-dir", "runs", "--format", fmt, "--price-per-gpu-hour", str(PRICE), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout == render(runs_table(runs, PRICE), fmt)
        target = tmp_path / f"table.{EXT[fmt]}"
        r = cli("--runs-dir", "runs", "--output", target.name, "--price-per-gpu-hour", str(PRICE), cwd=tmp_path)
        assert r.returncode == 0, r.stderr  # the format comes from the extension
        assert target.read_text(encoding="utf-8") == out.stdout and r.stdout == ""
    r = cli("--runs-dir", "runs", "--progression", "exp3/20251113-080000-c3d4", "-f", "csv", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == render(progression_table(runs[1]), "csv")
    r = cli("--runs-dir", "runs", "--compare", "--run", "exp4_wide/20251113-093000-e5f6",
            "--run", str(runs[0].path), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.index("exp4_wide/") < r.stdout.index("exp1/")


def test_cli_errors_exit_2_with_a_message_and_write_nothing(runs, tmp_path):
    cases = [
        (("--run", "nope"), "nope"),
        (("--progression", "nope"), "nope"),
        (("--runs-dir", "empty"), "no runs"),
        (("--format", "xml"), "xml"),
        (("--compare", "--run", "exp1/20251111-090000-a1b2"), "two or more"),
        (("--price-per-gpu-hour", "-1"), "price"),
        (("--progression", "exp1/20251111-090000-a1b2", "--compare"), "choose one"),
    ]
    for args, message in cases:
        argv = ("--runs-dir", "runs", *args) if "--runs-dir" not in args else args
        r = cli(*argv, "--output", "x.md", cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not (tmp_path / "x.md").exists(), args
    r = cli("--runs-dir", "runs", "--output", "missing/folder/x.md", cwd=tmp_path)
    assert r.returncode == 2 and "cannot write" in r.stderr
    assert not (tmp_path / "missing").exists()
    (tmp_path / "adir.md").mkdir()
    r = cli("--runs-dir", "runs", "--output", "adir.md", cwd=tmp_path)
    assert r.returncode == 2 and "folder" in r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_cli_columns_pick_and_order_columns(runs, tmp_path):
    r = cli("--runs-dir", "runs", "--columns", "experiment, best_val_ppl,num_params", "-f", "csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["experiment,best_val_ppl,num_params", "exp1,464.64,869153",
                                     "exp3,68.84,7342033", "exp4_wide,46.33,16206673"]
    r = cli("--runs-dir", "runs", "--columns", "experiment,perplexity", "-o", "x.csv", cwd=tmp_path)
    assert r.returncode == 2 and "perplexity" in r.stderr and "best_val_ppl" in r.stderr  # lists the real keys
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(KeyError):
        runs_table(runs).select(["nope"])


def test_output_files_get_the_usual_permissions(runs, tmp_path):
    r = cli("--runs-dir", "runs", "-o", "table.md", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    mode = (tmp_path / "table.md").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, oct(mode)  # what any new file gets, not the temp file's 0600


def test_all_runs_are_ordered_by_first_start(runs, tmp_path):
    # list_runs orders by run.json's started_at, which exp3's resume moved past exp4_wide's
    assert [r.experiment for r in all_runs(tmp_path / "runs")] == ["exp1", "exp3", "exp4_wide"]


def test_cli_takes_runs_dir_and_price_from_experiments_toml(tmp_path):
    build_runs(tmp_path / "lab-runs")
    (tmp_path / "experiments.toml").write_text(
        '[settings]\nruns_dir = "lab-runs"\ngpu_hour_price_usd = 3.0\n\n' + tiny_toml())
    r = cli("--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {row["experiment"]: row for row in json.loads(r.stdout)}
    assert rows["exp3"]["cost_usd"] == pytest.approx(rows["exp3"]["wall_time_s"] / 3600 * 3.0, rel=1e-6)
    r = cli("--format", "json", "--price-per-gpu-hour", "0", cwd=tmp_path)
    assert all(row["cost_usd"] is None for row in json.loads(r.stdout))


# ------------------------------------------------------------------ plots


@pytest.mark.parametrize("kind, name", [("ppl", "curves.png"), ("loss", "loss.svg")])
def test_cli_plot_writes_an_image(runs, tmp_path, kind, name):
    pytest.importorskip("matplotlib")
    r = cli("--runs-dir", "runs", "--plot", kind, "--output", name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = (tmp_path / name).read_bytes()
    if name.endswith(".png"):
        assert data[:8] == PNG_MAGIC and len(data) > 5_000
    else:
        assert b"<svg" in data[:2000] and "exp4_wide".encode() in data
        r = cli("--runs-dir", "runs", "--plot", kind, "--output", "again.svg", cwd=tmp_path)
        assert (tmp_path / "again.svg").read_bytes() == data  # no dates, stable element ids


def test_plot_errors_are_clean(runs, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from tui_lab.results.plot import PlotError, plot_runs

    with pytest.raises(PlotError, match="png or .svg"):
        plot_runs(runs, "ppl", tmp_path / "x.pdf")
    with pytest.raises(PlotError, match="loss"):
        plot_runs(runs, "accuracy", tmp_path / "x.png")
    empty = create_run(tmp_path / "runs", "exp9", "20251120-000000-0000")
    atomic_write_json(empty.run_path, {"status": "running"})
    with pytest.raises(PlotError, match="nothing to plot"):
        plot_runs([empty], "loss", tmp_path / "x.png")
    assert plot_runs(runs[:1], "loss", tmp_path / "steps.png", x="step").read_bytes()[:8] == PNG_MAGIC
    r = cli("--runs-dir", "runs", "--plot", "ppl", cwd=tmp_path)
    assert r.returncode == 2 and "--output" in r.stderr
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the `plot` extra were not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(PlotError, match=r"pip install 'tui-lab\[plot\]'"):
        plot_runs(runs, "ppl", tmp_path / "y.png")
    assert not (tmp_path / "y.png").exists() and not (tmp_path / "x.png").exists()

"""The compare view, driven with Pilot on real run folders (made with the run store's API and
MetricsWriter; no training): marks across experiments, overlay, x axis, smoothing, baseline
Δ, config diff, a live run streaming in, snapshots at 120×40 and 80×24."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tui_lab.app.app import TuiLabApp
from tui_lab.app.screens.compare import CompareScreen
from tui_lab.app.widgets import CurvePlot
from tui_lab.app.widgets.runs import MARK
from tui_lab.atomic import atomic_write_json
from tui_lab.config import load_experiments
from tui_lab.results.compare import band, curve, ema
from tui_lab.runs import MetricsWriter, RunDir, create_run, load_history

from waits import wait_for
from tiny import tiny_toml

pytestmark = pytest.mark.usefixtures("no_counts")

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed times for the pictures


def write_config(folder: Path) -> Path:
    path = folder / "experiments.toml"
    path.write_text('[settings]\nruns_dir = "runs"\n\n' + tiny_toml("alpha", max_steps=100, eval_every=20)
                    + tiny_toml("beta", max_steps=100, eval_every=20))
    return path


def set_key(config: dict, dotted: str, value) -> None:
    section, key = dotted.split(".")
    config[section][key] = value


def make_run(cfg_path: Path, name: str, run_id: str, day: int, scale: float, overrides: dict,
             status: str = "finished", steps: int = 100, writer_out: list | None = None) -> RunDir:
    """A run folder as the trainer writes it: config.json (with ``overrides``), metrics.jsonl
    through MetricsWriter, run.json; fixed numbers and times."""
    exp = load_experiments(cfg_path).get(name)
    run = create_run(cfg_path.parent / "runs", name, run_id)
    config = exp.model_dump(mode="json")
    for k, v in overrides.items():
        set_key(config, k, v)
    atomic_write_json(run.config_path, config)
    t = T0 + day * 86_400
    writer = MetricsWriter(run.metrics_path)
    writer.write("start", step=0, total_steps=100, num_params=31_264, device="cpu")
    for step in range(0, steps + 1, 5):
        loss = 5.5 * scale * (0.985 ** step) + 1.0 + (0.2 if step % 10 else 0.0)
        if step:
            writer.write("train", step=step, epoch=0, train_loss=loss, lr=1e-3, tokens_seen=step * 256,
                         tokens_per_s=2000.0, elapsed_s=step * 0.1 * scale)
        if step % 20 == 0:
            writer.write("eval", step=step, epoch=0, val_loss=loss + 0.1, val_ppl=round(math.exp(loss + 0.1), 4),
                         tokens_seen=step * 256, elapsed_s=step * 0.1 * scale, is_best=True)
    if writer_out is None:
        writer.close()
    else:
        writer_out.append(writer)
    best = 5.5 * scale * (0.985 ** steps) + 1.1
    info = {"experiment": name, "run_id": run_id, "status": status, "started_at": t, "ended_at": t + 10,
            "num_params": 31_264, "step": steps, "epoch": 0, "total_steps": 100, "device": "cpu",
            "best_val_loss": best, "best_val_ppl": math.exp(best), "elapsed_s": 10.0 * scale,
            "tokens_seen": steps * 256, "train_tokens": 383_688, "message": "reached 100 steps"}
    if status == "running":
        info.update(pid=os.getpid(), host=socket.gethostname(), ended_at=None)
    atomic_write_json(run.run_path, info)
    return run


def three_runs(root: Path) -> tuple[Path, list[RunDir]]:
    cfg = write_config(root)
    runs = [make_run(cfg, "alpha", "20260101-000000-aaaa", 0, 1.0, {"train.lr": 1e-3, "train.seed": 0}),
            make_run(cfg, "alpha", "20260102-000000-bbbb", 1, 0.9, {"train.lr": 2e-3, "train.seed": 1}),
            make_run(cfg, "beta", "20260103-000000-cccc", 2, 0.8, {"train.lr": 1e-3, "train.seed": 0,
                                                                   "model.d_model": 64})]
    return cfg, runs


def main(app):
    return app.main


def best_ppl(run: RunDir) -> float:
    return min(e["val_ppl"] for e in map(json.loads, run.metrics_path.read_text().splitlines())
               if e["event"] == "eval")


async def mark_three(pilot, app):
    """space on the newest run of alpha, down + space on the older one, then beta's run."""
    screen = main(app)
    await wait_for(pilot, lambda: screen.selected is not None and screen.scan is not None, timeout=10,
                   what="the runs")
    screen.query_one("#runs", DataTable).focus()
    await wait_for(pilot, lambda: screen.selected.run_id == "20260102-000000-bbbb", what="the newest run")
    await pilot.press("space")           # alpha bbbb (the newest, selected first)
    await wait_for(pilot, lambda: len(screen.marked) == 1, what="one mark")
    await pilot.press("down")
    await wait_for(pilot, lambda: screen.selected.run_id == "20260101-000000-aaaa", what="the older run")
    await pilot.press("space")           # alpha aaaa
    await wait_for(pilot, lambda: len(screen.marked) == 2, what="two marks")
    screen.query_one("#experiments", DataTable).focus()
    await pilot.press("down")            # beta
    await wait_for(pilot, lambda: screen.selected is not None and screen.selected.experiment == "beta",
                   what="beta's run")
    await pilot.press("space")
    await wait_for(pilot, lambda: len(screen.marked) == 3, what="three marks")


async def open_compare(pilot, app) -> CompareScreen:
    await pilot.press("v")
    await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
    cmp = app.screen
    await wait_for(pilot, lambda: len(cmp.records) == len(cmp.runs) and len(cmp.configs) == len(cmp.runs),
                   timeout=10, what="every run read")
    return cmp


async def test_mark_compare_baseline_and_diff(tmp_path):
    cfg, (a1, a2, b1) = three_runs(tmp_path)
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        await mark_three(pilot, app)
        screen = main(app)
        assert list(screen.marked) == [str(a2.path), str(a1.path), str(b1.path)]
        # marks survive switching experiments: back on alpha both rows still show the mark
        await pilot.press("up")
        await wait_for(pilot, lambda: screen.highlighted_experiment() == "alpha", what="alpha again")
        runs_table = screen.query_one("#runs", DataTable)
        await wait_for(pilot, lambda: runs_table.row_count == 2, what="alpha's runs")
        assert [str(runs_table.get_row(str(r.path))[0])[0] for r in (a1, a2)] == [MARK, MARK]
        assert "3 marked" in str(screen.query_one("#runs-title").render())

        cmp = await open_compare(pilot, app)
        assert [r.path for r in cmp.runs] == [a2.path, a1.path, b1.path]
        # the diff lists exactly the keys that differ (name / description are not config)
        diff = cmp.query_one("#compare-diff", DataTable)
        assert [str(k.value) for k in diff.rows] == ["model.d_model", "train.lr", "train.seed"]
        assert [str(c) for c in diff.get_row("train.lr")] == ["train.lr", "0.002", "0.001", "0.001"]
        assert [str(c) for c in diff.get_row("model.d_model")] == ["model.d_model", "32", "32", "64"]
        # overlay: one coloured series per run on each plot
        ppl = cmp.query_one("#cmp-ppl", CurvePlot)
        assert len(ppl.series) == 3 and len(set(ppl.series_colors)) == 3
        # no baseline yet: no Δ
        assert cmp.table.values("delta") == [None, None, None]
        # pin the first marked run (alpha bbbb) as the baseline
        table = cmp.query_one("#compare-table", DataTable)
        assert table.cursor_row == 0
        await pilot.press("b")
        assert cmp.baseline == 0
        base = best_ppl(a2)
        want = [(best_ppl(r) - base, (best_ppl(r) - base) / base * 100) for r in (a2, a1, b1)]
        got = list(zip(cmp.table.values("delta"), cmp.table.values("delta_pct")))
        assert got == [pytest.approx(w) for w in want]
        assert str(table.get_row(str(a1.path))[2]) == f"{want[1][0]:+,.2f}"
        assert str(table.get_row(str(a1.path))[3]) == f"{want[1][1]:+,.1f} %"
        assert cmp.table.values("tokens_seen") == [25_600, 25_600, 25_600]
        # pin another: down + b; b again on it unpins
        await pilot.press("down", "b")
        assert cmp.baseline == 1 and cmp.table.values("delta")[1] == 0.0
        await pilot.press("b")
        assert cmp.baseline is None
        await pilot.press("escape")
        assert app.screen is screen and len(screen.marked) == 3


async def test_x_axis_and_smoothing_change_the_plotted_series(tmp_path):
    cfg, runs = three_runs(tmp_path)
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        await mark_three(pilot, app)
        cmp = await open_compare(pilot, app)
        train = cmp.query_one("#cmp-train", CurvePlot)
        await wait_for(pilot, lambda: train.series and len(train.series[0][1]) == 20, what="train curves")
        raw = [list(s[2]) for s in train.series]
        assert train.series[0][1][:2] == [5, 10]  # step
        await pilot.press("x")
        assert cmp.x == "tokens" and train.series[0][1][:2] == [5 * 256, 10 * 256]
        assert train.xlabel == "tokens seen"
        await pilot.press("x")
        assert cmp.x == "time" and train.series[0][1][:2] == pytest.approx([0.45, 0.9])  # alpha bbbb: scale 0.9
        await pilot.press("x")
        assert cmp.x == "step"
        await pilot.press("plus")
        assert cmp.smoothing == 0.5
        assert [list(s[2]) for s in train.series] == [pytest.approx(ema(r, 0.5)) for r in raw]
        await pilot.press("plus", "plus")
        assert cmp.smoothing == 0.9
        await pilot.press("minus", "minus", "minus")
        assert cmp.smoothing == 0.0 and [list(s[2]) for s in train.series] == raw
        val = cmp.query_one("#cmp-val", CurvePlot)
        assert [len(s[1]) for s in val.series] == [6, 6, 6]  # val loss is never smoothed


async def test_a_live_run_streams_into_the_overlay(tmp_path):
    cfg = write_config(tmp_path)
    writers: list = []
    done = make_run(cfg, "alpha", "20260101-000000-aaaa", 0, 1.0, {})
    live = make_run(cfg, "beta", "20260102-000000-bbbb", 1, 0.9, {}, status="running", steps=40, writer_out=writers)
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(CompareScreen([done, live], poll_s=0.05))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
        cmp = app.screen
        train = cmp.query_one("#cmp-train", CurvePlot)
        await wait_for(pilot, lambda: len(train.series) == 2 and train.series[1][1][-1:] == [40], timeout=10,
                       what="the live run's history")
        writer = writers[0]
        writer.write("train", step=45, epoch=0, train_loss=2.0, lr=1e-3, tokens_seen=45 * 256, tokens_per_s=2000.0,
                     elapsed_s=4.5)
        await wait_for(pilot, lambda: train.series[1][1][-1] == 45, timeout=10, what="the new step in the overlay")
        assert train.series[1][2][-1] == 2.0
        writer.write("eval", step=45, epoch=0, val_loss=1.5, val_ppl=math.exp(1.5), tokens_seen=45 * 256,
                     elapsed_s=4.5)
        await wait_for(pilot, lambda: cmp.records[str(live.path)].get("best_val_ppl") == pytest.approx(
            math.exp(1.5)), timeout=10, what="the table's best ppl from the new evaluation")
        assert cmp.query_one("#cmp-ppl", CurvePlot).series[1][2][-1] == pytest.approx(math.exp(1.5))
        writer.close()


async def test_different_tokenizers_compare_word_perplexity(tmp_path):
    cfg = write_config(tmp_path)
    a = make_run(cfg, "alpha", "20260101-000000-aaaa", 0, 1.0, {"data.tokenizer": "gpt2", "model.vocab_size": 50257})
    b = make_run(cfg, "beta", "20260102-000000-bbbb", 1, 0.9, {})
    with open(a.metrics_path, "a") as fh:  # the gpt2 run has word-level perplexity, the byte run none
        fh.write('{"event":"eval","step":100,"val_loss":3.0,"val_ppl":20.0,"val_word_ppl":55.5,"tokens_seen":25600,'
                 '"elapsed_s":10.0}\n')
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(CompareScreen([a, b]))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare view")
        cmp = app.screen
        await wait_for(pilot, lambda: len(cmp.configs) == 2 and len(cmp.snaps) == 2, timeout=10, what="both runs")
        assert cmp.ppl_key == "val_word_ppl"
        note = cmp.note_text().plain
        assert "different tokenizers (byte, gpt2): perplexity is compared per word" in note
        assert "no word-level perplexity for beta·bbbb" in note
        ppl = cmp.query_one("#cmp-ppl", CurvePlot)
        assert ppl.title == "val word perplexity" and ppl.series[0][2] == [55.5] and ppl.series[1][2] == []
        assert cmp.table.column("best_ppl").name == "Best word ppl"


async def test_v_without_marks_and_keys_in_footer_and_palette(tmp_path):
    cfg, _ = three_runs(tmp_path)
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = {b.binding.key: b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert shown.get("space") == "Mark" and shown.get("v") == "Compare"
        assert {"Mark run", "Compare"} <= {c.title for c in app.get_system_commands(app.screen)}
        await pilot.press("v")
        assert not isinstance(app.screen, CompareScreen)  # nothing marked: a notification instead
        await mark_three(pilot, app)
        await open_compare(pilot, app)
        shown = {b.binding.key: b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert {k: shown.get(k) for k in ("x", "plus", "minus", "b")} == {"x": "X axis", "plus": "Smooth",
                                                                         "minus": "Less", "b": "Baseline"}
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Compare: x axis", "Compare: more smoothing", "Compare: pin baseline"} <= titles


# ---------------------------------------------------------------------------- snapshots
def _snapshot_app(tmp_path, monkeypatch) -> TuiLabApp:
    monkeypatch.chdir(tmp_path)  # relative paths only, so the pictures do not depend on tmp_path
    three_runs(tmp_path)
    return TuiLabApp(load_experiments("experiments.toml"))


async def _compare_with_baseline(pilot):
    app = pilot.app
    await mark_three(pilot, app)
    cmp = await open_compare(pilot, app)
    await pilot.press("b")
    await wait_for(pilot, lambda: cmp.baseline == 0 and all(
        len(p.series) == 3 and all(s[1] for s in p.series) and not p._pending for p in cmp.query(CurvePlot)),
        what="every run's curves drawn")
    await pilot.pause(0.3)  # the plots' redraw throttle (0.1 s) has passed: a settled picture
    await wait_for(pilot, lambda: not any(p._pending for p in cmp.query(CurvePlot)), what="no redraw pending")


def test_snapshot_compare_view(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(120, 40),
                        run_before=_compare_with_baseline)


def test_snapshot_compare_view_80x24(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(_snapshot_app(tmp_path, monkeypatch), terminal_size=(80, 24),
                        run_before=_compare_with_baseline)


async def test_g_draws_seed_groups_as_mean_min_max(tmp_path):
    cfg = write_config(tmp_path)
    runs = [make_run(cfg, "alpha", "20260101-000000-aaaa", 0, 1.0, {"train.lr": 1e-3, "train.seed": 0}),
            make_run(cfg, "alpha", "20260102-000000-bbbb", 1, 0.9, {"train.lr": 1e-3, "train.seed": 1}),
            make_run(cfg, "alpha", "20260103-000000-cccc", 2, 0.8, {"train.lr": 2e-3, "train.seed": 0})]
    app = TuiLabApp(load_experiments(cfg))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(CompareScreen(runs))
        cmp = app.screen
        await wait_for(pilot, lambda: len(cmp.configs) == 3 and len(cmp.snaps) == 3, timeout=10, what="every run")
        assert "g: seed groups" in cmp.note_text().plain
        await pilot.press("g")
        val = cmp.query_one("#cmp-val", CurvePlot)
        assert [s[0] for s in val.series] == ["alpha·aaaa +1 min", "alpha·aaaa +1 max", "alpha·aaaa +1 mean",
                                              "alpha·cccc"]
        events = [load_history(r) for r in runs[:2]]
        xs, mean, lo, hi = band([curve(e, "eval", "val_loss") for e in events])
        assert val.series[2][1] == xs and val.series[2][2] == pytest.approx(mean)
        assert val.series[0][2] == lo and val.series[1][2] == hi and lo != hi
        assert "1 seed group: mean, min and max" in cmp.note_text().plain
        await pilot.press("g")
        assert len(val.series) == 3

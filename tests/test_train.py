"""The trainer on real text: loss falls, checkpoints round-trip, resume continues exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tui_lab.config import load_experiments
from tui_lab.runs import RunDir, load_history
from tui_lab.models.checkpoint import CheckpointError, load_model
from tui_lab.train.loop import Trainer
from tui_lab.train.setup import start_run

from faults import stop_after

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "model.d_model=64", "model.num_heads=4", "model.d_ff=128", "model.max_seq_len=64", "model.dropout=0.1",
    "train.batch_size=8", "train.eval_every=10", "train.eval_max_tokens=4096", "train.log_every=5",
    "train.sample_every=0", "train.warmup_steps=5",
]


def demo(*extra: str):
    return load_experiments(ROOT / "experiments.toml").get("demo", TINY + list(extra))


def train(exp, runs_dir, resume_run=None, stop_at=None):
    run = resume_run or start_run(exp, runs_dir)
    trainer = Trainer(exp, run, torch.device("cpu"), resume=resume_run is not None)
    if stop_at is not None:
        def reporter(e):
            if e["event"] == "eval" and e["step"] == stop_at:
                trainer.stop_requested = True
        trainer.reporter = reporter
    return run, trainer.train()


def curve(run: RunDir, event: str, key: str) -> dict[int, float]:
    return {e["step"]: e[key] for e in load_history(run) if e["event"] == event}


@pytest.mark.slow
def test_demo_training_lowers_validation_loss_and_writes_the_run_folder(tmp_path, monkeypatch):
    import tui_lab.train.loop as loop

    monkeypatch.setattr(loop, "EVAL_PROGRESS_EVERY_S", 0.0)  # an eval_progress event after every batch
    exp = demo("train.max_steps=60", "train.lr=3e-3")
    run, status = train(exp, tmp_path)
    assert status == "finished"
    val = curve(run, "eval", "val_loss")
    assert sorted(val) == [0, 10, 20, 30, 40, 50, 60]
    assert val[0] == pytest.approx(math.log(256), abs=0.5)  # byte vocabulary at init
    assert val[60] < val[0] - 1.5, val
    info = run.read_run()
    assert info["status"] == "finished" and info["step"] == 60 and info["num_params"] > 0
    assert info["tokens_seen"] == 60 * 8 * 64
    assert json.loads(run.config_path.read_text())["model"]["d_model"] == 64
    for name in ("best.safetensors", "last.safetensors", "last.state.pt"):
        assert (run.checkpoint_dir / name).is_file()
    ev = [e for e in load_history(run) if e["event"] == "eval"]
    assert all(math.isclose(e["val_ppl"], math.exp(e["val_loss"]), rel_tol=1e-3) for e in ev)
    assert all(0.0 <= e["val_acc"] <= 1.0 for e in ev)
    tr = [e for e in load_history(run) if e["event"] == "train"]
    assert all(e["tokens_per_s"] > 0 and e["lr"] > 0 for e in tr)
    # evaluation status: eval_start, eval_progress (tokens done so far), then eval with its duration,
    # for the step-0 evaluation too
    events = load_history(run)
    for step in (0, 10, 60):
        mine = [e for e in events if e.get("step") == step and e["event"].startswith("eval")]
        kinds = [e["event"] for e in mine]
        assert kinds[0] == "eval_start" and kinds[-1] == "eval" and set(kinds[1:-1]) == {"eval_progress"}, kinds
        start, progress, done = mine[0], mine[1:-1], mine[-1]
        assert start["tokens_total"] == done["val_tokens"] == 4096 and isinstance(start["elapsed_s"], float)
        dones = [e["tokens_done"] for e in progress]
        assert dones == sorted(dones) and 0 < dones[0] and dones[-1] < 4096
        assert all(e["tokens_total"] == 4096 for e in progress)
        assert done["eval_s"] > 0


@pytest.mark.slow
def test_best_checkpoint_reloads_to_the_same_validation_loss(tmp_path):
    from tui_lab.data import load_tokenizer, load_tokens
    from tui_lab.train.evaluate import evaluate

    exp = demo("train.max_steps=20")
    run, _ = train(exp, tmp_path)
    model, meta = load_model(run.checkpoint_dir / "best.safetensors")
    assert meta["model_config"]["d_model"] == 64 and meta["experiment"] == "demo"
    tok = load_tokenizer("byte")
    val = load_tokens(exp.data, "validation", tok)
    res = evaluate(model, val.ids, exp.seq_len, 8, "cpu", exp.train.eval_max_tokens)
    best = min(curve(run, "eval", "val_loss").values())
    assert res.val_loss == pytest.approx(best, abs=1e-4)


@pytest.mark.slow
def test_resume_continues_the_curve_exactly(tmp_path):
    exp = demo("train.max_steps=40")
    straight, _ = train(exp, tmp_path / "a")
    part, status = train(exp, tmp_path / "b", stop_at=20)
    first = part.read_run()
    assert status == "stopped" and first["status"] == "stopped"
    assert first["step"] == 20 and first["attempts"] == 1 and first["resumed_at"] is None
    _, status = train(exp, tmp_path / "b", resume_run=part)
    assert status == "finished"
    info = part.read_run()
    # the first start is kept, the resume recorded, and wall time adds both attempts up
    assert info["started_at"] == first["started_at"] and info["resumed_at"] > first["ended_at"]
    assert info["attempts"] == 2
    assert info["wall_time_s"] > first["wall_time_s"] >= first["elapsed_s"] > 0
    a, b = curve(straight, "train", "train_loss"), curve(part, "train", "train_loss")
    assert sorted(a) == sorted(b) == [5, 10, 15, 20, 25, 30, 35, 40]
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-5), (step, a, b)
    assert curve(part, "eval", "val_loss")[40] == pytest.approx(curve(straight, "eval", "val_loss")[40], abs=1e-5)


@pytest.mark.slow
def test_resume_in_the_middle_of_a_log_window_gives_the_same_curve_point_for_point(tmp_path):
    """Stopped at step 13 with log_every=3 (one step into a window): the loss accumulator is in
    last.state.pt, so every logged train loss of the resumed run equals the uninterrupted run's."""
    exp = demo("train.max_steps=24", "train.log_every=3", "train.eval_every=12", "train.eval_max_tokens=1024")
    straight, _ = train(exp, tmp_path / "a")
    run = start_run(exp, tmp_path / "b")
    first = Trainer(exp, run, torch.device("cpu"))
    first.loss_hook = stop_after(first, 13)
    assert first.train() == "stopped"
    from tui_lab.train.state import load_train_state

    state = load_train_state(run.train_state_path)
    assert state["progress"]["step"] == 13 and state["loss_window"]["count"] == 1
    assert Trainer(exp, run, torch.device("cpu"), resume=True).train() == "finished"
    a, b = curve(straight, "train", "train_loss"), curve(run, "train", "train_loss")
    assert sorted(a) == sorted(b) == list(range(3, 25, 3))
    assert b == a  # point for point, exactly (float32 sum restored bit for bit)


def test_corrupt_and_missing_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="x.safetensors"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "absent.safetensors")

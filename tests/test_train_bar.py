"""The progress bar of `tui-lab train`: evaluation state, elapsed that never goes back, an ETA
that counts the evaluations to come, one tokens/s definition, resume totals, a fresh last line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tui_lab.cli import train_bar
from tui_lab.cli.train_bar import TrainBar, clock
from tui_lab.runs.metrics import tokens_per_second
from tui_lab.train.schedule import evaluations_after


class Clock:
    """A hand-driven monotonic clock for the bar."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def bar(monkeypatch):
    now = Clock()
    monkeypatch.setattr(train_bar.time, "monotonic", now)
    b = TrainBar(Console(file=io.StringIO(), width=120), eval_every=10, evaluations_after=evaluations_after)
    return b, now


def test_evaluations_after_counts_periodic_epoch_end_and_final_evaluations():
    assert evaluations_after(0, 40, 10) == 4
    assert evaluations_after(10, 45, 10) == 4  # 20, 30, 40 and the last step 45
    assert evaluations_after(40, 40, 10) == 0
    assert evaluations_after(0, 30, 0, steps_per_epoch=12) == 3  # 12, 24, 30


def test_the_bar_shows_evaluation_progress_and_an_eta_with_the_evaluations_to_come(bar):
    b, now = bar
    b({"event": "start", "step": 0, "total_steps": 40})
    assert clock(b.eta()) == "-:--:--"  # nothing measured yet
    b({"event": "eval_start", "step": 0, "tokens_total": 4000, "elapsed_s": 0.0})
    now.t += 2
    b({"event": "eval_progress", "step": 0, "tokens_done": 1000, "tokens_total": 4000})
    assert b._info().startswith("evaluating 1,000/4,000 tokens")
    now.t += 6
    b({"event": "eval", "step": 0, "epoch": 0, "val_loss": 5.0, "val_ppl": 148.41, "val_acc": 0.1, "eval_s": 8.0})
    assert "evaluating" not in b._info() and "val ppl 148.41" in b._info()
    elapsed = [b.elapsed()]
    now.t += 10  # 10 training steps in 10 s
    b({"event": "train", "step": 10, "train_loss": 4.0, "tokens_seen": 10_240, "elapsed_s": 10.0})
    assert f"{tokens_per_second(10_240, 10.0):,.0f} tok/s" in b._info()
    elapsed.append(b.elapsed())
    # 30 steps at 1 step/s + 4 evaluations (10, 20, 30, 40) of 8 s each
    assert b.eta() == pytest.approx(30 + 4 * 8)
    now.t += 2  # no event for 2 s: the estimate counts down instead of growing
    assert b.eta() == pytest.approx(30 + 4 * 8 - 2)
    b({"event": "eval_start", "step": 10, "tokens_total": 4000, "elapsed_s": 12.0})
    now.t += 4
    b({"event": "eval_progress", "step": 10, "tokens_done": 2000, "tokens_total": 4000})
    elapsed.append(b.elapsed())
    # the running evaluation (half done in 4 s: 4 s left), 30 steps, 3 evaluations after it
    assert b.eta() == pytest.approx(4 + 30 + 3 * 8)
    assert "evaluating 2,000/4,000 tokens" in b._info()
    now.t += 4
    b({"event": "eval", "step": 10, "epoch": 0, "val_loss": 4.0, "val_ppl": 54.6, "val_acc": 0.2, "eval_s": 8.0})
    elapsed.append(b.elapsed())
    assert elapsed == sorted(elapsed)  # never backwards


def test_the_last_line_shows_the_final_evaluation(bar):
    b, now = bar
    b({"event": "start", "step": 0, "total_steps": 10})
    b({"event": "eval", "step": 0, "epoch": 0, "val_loss": 5.0, "val_ppl": 148.41, "val_acc": 0.1, "eval_s": 1.0})
    now.t += 5
    b({"event": "train", "step": 10, "train_loss": 4.0, "tokens_seen": 100, "elapsed_s": 5.0})
    b({"event": "eval_start", "step": 10, "tokens_total": 100, "elapsed_s": 5.0})
    b({"event": "eval", "step": 10, "epoch": 0, "val_loss": 2.47, "val_ppl": 11.84, "val_acc": 0.3, "eval_s": 1.0})
    task = b.live.tasks[0]
    assert "val ppl 11.84" in task.fields["info"] and task.completed == 10 and task.total == 10
    assert b.eta() == 0


def test_a_resumed_run_has_its_total_and_carries_its_elapsed(bar):
    b, now = bar
    b({"event": "resume", "step": 120, "epoch": 1, "tokens_seen": 1, "total_steps": 200, "elapsed_s": 300.0})
    task = b.live.tasks[0]
    assert task.total == 200 and task.completed == 120
    assert b.elapsed() == pytest.approx(300.0)
    now.t += 1
    assert b.elapsed() == pytest.approx(301.0)

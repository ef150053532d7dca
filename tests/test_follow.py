"""Following a run from its files (runs/follow.py, no Textual): evaluation progress, ETA with
the evaluations still to come, an elapsed time that never goes back, tokens/s — fed from
synthetic metrics.jsonl streams written as the trainer writes them."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tui_lab.atomic import atomic_write_json
from tui_lab.runs import RUN_FORMAT, RunDir, create_time
from tui_lab.runs.follow import RunFollower
from tui_lab.runs.metrics import tokens_per_second

T0 = 1_767_225_600.0
TOKENS_PER_STEP = 256


def make_run(tmp_path, status="running", total=100, eval_every=20, steps_per_epoch=1000) -> RunDir:
    run = RunDir(tmp_path / "runs" / "tiny" / "20260101-000000-aaaa")
    run.path.mkdir(parents=True)
    atomic_write_json(run.config_path, {"train": {"eval_every": eval_every}})
    atomic_write_json(run.run_path, {"format": RUN_FORMAT, "status": status, "pid": os.getpid(),
                                     "proc_start": create_time(), "host": socket.gethostname(),
                                     "total_steps": total, "steps_per_epoch": steps_per_epoch})
    return run


def write(run: RunDir, *events: dict) -> None:
    with open(run.metrics_path, "a") as fh:
        for e in events:
            fh.write(json.dumps(e) + "\n")


def train(step: int, per_step_s: float = 0.1, extra_s: float = 0.0) -> dict:
    """A train event at ``step`` with the clock at step × pace + evaluation time so far."""
    clock = step * per_step_s + extra_s
    return {"event": "train", "time": T0 + clock, "step": step, "train_loss": 5.0, "lr": 1e-3,
            "tokens_seen": step * TOKENS_PER_STEP, "tokens_per_s": 99.0, "elapsed_s": clock}


def snapshot(run: RunDir):
    follower = RunFollower(run)
    follower.poll()
    return follower, follower.snapshot()


def test_evaluation_in_progress_shows_tokens_done_of_total(tmp_path):
    run = make_run(tmp_path)
    write(run, {"event": "start", "time": T0, "format": 2, "step": 0, "total_steps": 100},
          {"event": "eval_start", "time": T0, "step": 0, "tokens_total": 258_000, "elapsed_s": 0.0})
    follower, snap = snapshot(run)
    assert snap.evaluating is not None and snap.evaluating.tokens_done == 0
    assert snap.evaluating.tokens_total == 258_000
    write(run, {"event": "eval_progress", "time": T0 + 2, "step": 0, "tokens_done": 64_500, "tokens_total": 258_000})
    follower.poll()
    ev = follower.snapshot().evaluating
    assert (ev.step, ev.tokens_done, ev.tokens_total, ev.fraction) == (0, 64_500, 258_000, 0.25)
    write(run, {"event": "eval", "time": T0 + 8, "step": 0, "val_loss": 10.0, "val_ppl": 22026.0, "elapsed_s": 0.0,
                "eval_s": 8.0})
    follower.poll()
    assert follower.snapshot().evaluating is None


def test_eta_counts_the_evaluations_still_to_come(tmp_path):
    """100 steps at 0.1 s, evaluations of 3 s at every 20 steps: at step 40 (just evaluated)
    60 steps (6 s) and 3 evaluations (60, 80, 100: 9 s) are left."""
    run = make_run(tmp_path)
    events = [{"event": "start", "time": T0, "step": 0}]
    evals_s = 0.0
    for step in range(5, 41, 5):
        events.append(train(step, extra_s=evals_s))
        if step % 20 == 0:
            events.append({"event": "eval_start", "time": T0 + step * 0.1 + evals_s, "step": step,
                           "tokens_total": 1000, "elapsed_s": step * 0.1 + evals_s})
            events.append({"event": "eval", "time": T0 + step * 0.1 + evals_s + 3.0, "step": step, "val_loss": 4.0,
                           "val_ppl": 54.6, "elapsed_s": step * 0.1 + evals_s, "eval_s": 3.0})
            evals_s += 3.0
    write(run, *events)
    _, snap = snapshot(run)
    assert snap.train_seconds_per_step() == pytest.approx(0.1)
    assert snap.evaluations_left() == 3
    assert snap.eta_s() == pytest.approx(60 * 0.1 + 3 * 3.0)


def test_eta_during_the_final_evaluation_is_not_zero(tmp_path):
    run = make_run(tmp_path)
    write(run, *[train(s) for s in range(10, 101, 10)],
          {"event": "eval", "time": T0 + 50, "step": 80, "val_loss": 4.0, "elapsed_s": 8.0, "eval_s": 4.0},
          {"event": "eval_start", "time": T0 + 60, "step": 100, "tokens_total": 2000, "elapsed_s": 10.0},
          {"event": "eval_progress", "time": T0 + 61, "step": 100, "tokens_done": 500, "tokens_total": 2000})
    _, snap = snapshot(run)
    assert snap.progress() == (100, 100)
    assert snap.eta_s() == pytest.approx(4.0 * 0.75)  # what is left of this evaluation, not 0:00:00


def test_eta_before_any_measured_evaluation_uses_the_running_ones_pace(tmp_path):
    run = make_run(tmp_path)
    write(run, {"event": "eval_start", "time": T0, "step": 0, "tokens_total": 1000, "elapsed_s": 0.0},
          {"event": "eval_progress", "time": T0 + 2, "step": 0, "tokens_done": 250, "tokens_total": 1000})
    _, snap = snapshot(run)
    assert snap.eval_seconds(now=T0 + 2) == pytest.approx(8.0)
    assert snap.eta_s(now=T0 + 2) is None  # the training pace is not known yet


def test_elapsed_never_goes_back_across_an_evaluation(tmp_path):
    """Old trainers wrote the eval event with the clock read at its start and the time at its
    end (no eval_s): extrapolating from it went back by the evaluation's length."""
    run = make_run(tmp_path)
    write(run, train(10), {"event": "eval_start", "time": T0 + 1.0, "step": 10, "tokens_total": 10, "elapsed_s": 1.0})
    follower = RunFollower(run)
    follower.poll()
    shown = [follower.snapshot().elapsed_s(now=T0 + 200)]  # 200 s into the evaluation
    write(run, {"event": "eval", "time": T0 + 201.0, "step": 10, "val_loss": 4.0, "elapsed_s": 1.0})  # no eval_s
    follower.poll()
    snap = follower.snapshot()
    shown.append(snap.elapsed_s(now=T0 + 201.5))
    write(run, {**train(20), "time": T0 + 203.0, "elapsed_s": 203.0})
    follower.poll()
    shown.append(follower.snapshot().elapsed_s(now=T0 + 203.5))
    assert shown == sorted(shown) and shown[0] >= 199.0


def test_elapsed_after_an_eval_with_eval_s_goes_on_from_its_end(tmp_path):
    run = make_run(tmp_path)
    write(run, train(10), {"event": "eval", "time": T0 + 31.0, "step": 10, "val_loss": 4.0, "elapsed_s": 1.0,
                           "eval_s": 30.0})
    _, snap = snapshot(run)
    assert snap.elapsed_s(now=T0 + 41.0) == pytest.approx(41.0)


def test_live_tokens_per_s_is_tokens_over_training_seconds(tmp_path):
    run = make_run(tmp_path)
    write(run, train(10), train(20))
    _, snap = snapshot(run)
    assert snap.tokens_per_s() == pytest.approx(tokens_per_second(20 * TOKENS_PER_STEP, 2.0)) == 2560.0


def test_a_finished_run_is_only_stat_ed_until_a_file_changes(tmp_path, monkeypatch):
    run = make_run(tmp_path, status="finished")
    write(run, train(10))
    follower = RunFollower(run)
    assert follower.poll()
    reads = []
    import tui_lab.runs.follow as follow

    real = follow.read_jsonl
    monkeypatch.setattr(follow, "read_jsonl", lambda *a: reads.append(a) or real(*a))
    for _ in range(5):
        assert not follower.poll()
    assert reads == []  # nothing read: one stat per file
    write(run, train(20))
    assert follower.poll() and follower.snapshot().progress()[0] == 20


def test_the_followers_curves_are_the_events_series_however_they_arrive(tmp_path):
    """The one-pass index (curves kept as events arrive, in chunks) equals reading every event
    again with series_of: steps in order, non-finite values, bools, strings and missing keys
    left out."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tui_lab.runs.follow import SERIES, series_of

    value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.booleans(),
                      st.text(max_size=2), st.none())
    event = st.fixed_dictionaries({"event": st.sampled_from(["train", "eval", "sample", "start"]),
                                   "step": st.integers(0, 10**6)},
                                  optional={k: value for _, k in SERIES})
    counter = iter(range(10**9))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(chunks=st.lists(st.lists(event, max_size=20), max_size=5))
    def check(chunks):
        run = RunDir(tmp_path / f"r{next(counter)}")
        run.path.mkdir(parents=True)
        follower = RunFollower(run)
        written = []
        for chunk in chunks:  # appended between two polls, as a live run's writer does
            with open(run.metrics_path, "a") as fh:
                fh.write("".join(json.dumps(e) + "\n" for e in chunk))
            written += json.loads("[" + ",".join(json.dumps(e) for e in chunk) + "]")  # NaN as JSON reads it
            follower.poll()
        snap = follower.snapshot()
        for event_kind, key in SERIES:
            assert snap.series(event_kind, key) == series_of(written, event_kind, key)

    check()

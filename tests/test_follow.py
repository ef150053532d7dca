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


def _long_history(run: RunDir, steps: int, eval_every: int = 50, sample_every: int = 200,
                  end: bool = True) -> list[dict]:
    events: list[dict] = [{"event": "start", "time": T0, "format": 2, "step": 0, "total_steps": steps}]
    for s in range(1, steps + 1):
        events.append({**train(s), "train_loss": 10.0 / s ** 0.5, "lr": 1e-3 * (1 - s / (steps + 1))})
        if s % eval_every == 0:
            events.append({"event": "eval", "time": T0 + s * 0.1, "step": s, "val_loss": 3.0 + 1 / s,
                           "val_ppl": 20.0 + 1 / s, "eval_s": 1.0 + s / 1e4, "elapsed_s": s * 0.1})
        if s % sample_every == 0:
            events.append({"event": "sample", "step": s, "text": f"sample at {s}"})
    if end:
        events.append({"event": "end", "time": T0 + steps * 0.1 + 1, "step": steps, "status": "finished"})
    write(run, *events)
    return events


def _panel_figures(snap) -> tuple:
    """What the run panel shows (widgets/stats.py reads these)."""
    return (snap.progress(), snap.last("train"), snap.last("eval"), snap.elapsed_s(), snap.tokens_per_s(),
            snap.eval_seconds(), snap.train_seconds_per_step())


@pytest.fixture
def small_preview(monkeypatch):
    """The two-pass read at a size a test writes in milliseconds: a history ≥ 40 kB is first
    read from its last 8 kB, then whole in 16 kB pieces."""
    import tui_lab.runs.follow as follow

    monkeypatch.setattr(follow, "PREVIEW_MIN_BYTES", 40_000)
    monkeypatch.setattr(follow, "PREVIEW_TAIL_BYTES", 8_000)
    monkeypatch.setattr(follow, "HISTORY_CHUNK_BYTES", 16_000)


def test_a_long_history_is_shown_from_its_tail_then_read_whole(tmp_path, small_preview, monkeypatch):
    """The first poll of a long finished run gives every figure the panels show, from the
    tail alone (the same figures as reading it all: the tail holds the latest evaluations the
    evaluation time is averaged over); the samples are the latest ones the tail holds; the
    curves come once the whole history is read, in pieces, and equal reading it in one go."""
    import tui_lab.runs.follow as follow
    from tui_lab.runs.follow import SERIES, series_of

    run = make_run(tmp_path, status="finished", total=2_000)
    events = _long_history(run, 2_000, eval_every=8, sample_every=20)
    assert run.metrics_path.stat().st_size > 5 * follow.HISTORY_CHUNK_BYTES
    follower = RunFollower(run)
    assert follower.poll()
    first = follower.snapshot()
    assert not first.history_complete and follower.catching_up
    assert 0 < len(first.events) < len(events) / 10  # the tail only
    assert first.history_total_bytes == run.metrics_path.stat().st_size
    polls = 0
    while follower.catching_up:
        follower.poll()
        polls += 1
        assert polls < 100
    assert polls > 3  # in pieces, not one parse of the whole file
    whole = follower.snapshot()
    assert whole.history_complete and whole.version > first.version
    monkeypatch.setattr(follow, "PREVIEW_MIN_BYTES", 1 << 40)  # the one-pass read, for reference
    _, reference = snapshot(run)
    assert reference.history_complete
    assert _panel_figures(first) == _panel_figures(whole) == _panel_figures(reference)
    assert first.progress() == (2_000, 2_000) and first.samples()[-1]["text"] == "sample at 2000"
    assert first.samples() == whole.samples()[-len(first.samples()):] and whole.samples() == reference.samples()
    for kind, key in SERIES:
        assert whole.series(kind, key) == reference.series(kind, key) == series_of(events, kind, key)
    assert list(whole.events) == events
    assert not follower.poll()  # then one stat per file, as for any finished run


def test_lines_appended_while_a_long_history_is_read_come_after_it_once(tmp_path, small_preview):
    run = make_run(tmp_path, status="running", total=3_000)
    events = _long_history(run, 1_000, end=False)
    follower = RunFollower(run)
    follower.poll()
    assert follower.catching_up
    more = [train(s) for s in range(1_001, 1_011)]
    write(run, *more)  # the writer goes on meanwhile
    for _ in range(100):
        follower.poll()
        if not follower.catching_up:
            break
    follower.poll()
    snap = follower.snapshot()
    assert snap.history_complete
    assert list(snap.events) == events + more  # each line once, in order
    assert snap.progress()[0] == 1_010


def test_a_resume_inside_a_long_history_is_collapsed_after_the_whole_read(tmp_path, small_preview):
    from tui_lab.runs.store import collapse_resumes

    run = make_run(tmp_path, status="finished", total=1_500)
    events = _long_history(run, 800, end=False)
    resumed = [{"event": "resume", "time": T0 + 500, "step": 600}] + [
        {**train(s), "train_loss": 1.0} for s in range(601, 1_501)]
    write(run, *resumed)
    follower = RunFollower(run)
    follower.poll()
    while follower.catching_up:
        follower.poll()
    snap = follower.snapshot()
    expected = collapse_resumes(events + resumed)
    assert list(snap.events) == expected
    steps, _ = snap.series("train", "train_loss")
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 1_500  # no step twice after the resume


def test_read_jsonl_in_pieces_and_from_the_tail_gives_the_same_lines(tmp_path):
    from tui_lab.runs.store import read_jsonl, read_jsonl_tail

    path = tmp_path / "m.jsonl"
    lines = [{"i": i, "pad": "x" * (i % 37)} for i in range(500)] + [{"i": 500, "pad": "y" * 5_000}]
    lines += [{"i": i} for i in range(501, 600)]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"partial": ')  # a writer mid-line
    whole, end = read_jsonl(path)
    assert whole == lines and end == path.stat().st_size - len('{"partial": ')
    got, offset = [], 0
    while True:
        new, nxt = read_jsonl(path, offset, max_bytes=1_000)  # one line is 5 kB: read whole
        if nxt == offset:
            break
        got += new
        offset = nxt
    assert got == lines and offset == end
    for n in (10, 1_000, 6_000, 10**6):
        tail, tail_end = read_jsonl_tail(path, n)
        assert tail_end == end
        assert tail == lines[len(lines) - len(tail):]  # a suffix: the line the window starts in is dropped
    assert len(read_jsonl_tail(path, 10**6)[0]) == len(lines)
    assert read_jsonl_tail(tmp_path / "missing.jsonl", 100) == ([], 0)

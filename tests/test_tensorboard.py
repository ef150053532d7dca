"""TensorBoard event files: written live by real training runs and by `tui-lab export --format
tensorboard`, read back with TensorBoard's own event reader and compared with metrics.jsonl."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tui_lab.results.tensorboard import SCALARS, sample_tag
from tui_lab.runs import RunDir, load_history

from tiny import tiny_toml

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard package (TensorBoard's event reader) is not installed")
from tensorboard.backend.event_processing import event_multiplexer  # noqa: E402


def tui_lab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def read_events(logdir: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, str]]]]:
    """Every scalar (tag → [(step, value)]) and text (tag → [(step, text)]) TensorBoard sees in ``logdir``."""
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0,
                                                                         event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}
    texts = {t.removesuffix("/text_summary"): [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(t)]
             for t in tags["tensors"]}
    return scalars, texts


def expected_from_metrics(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl's scalars by TensorBoard tag (float32, as TensorBoard stores them)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for e in load_history(run):
        for key, tag in SCALARS.get(e["event"], ()):
            if isinstance(e.get(key), (int, float)):
                out.setdefault(tag, []).append((e["step"], float(np.float32(e[key]))))
    return out


def assert_same_as_metrics(run: RunDir) -> None:
    scalars, texts = read_events(run.path / "tensorboard")
    expected = expected_from_metrics(run)
    assert {"train/loss", "train/lr", "train/tokens_per_s", "val/loss", "val/ppl", "val/accuracy"} <= set(expected)
    assert scalars == expected  # every tag, same steps, same values
    samples = [e for e in load_history(run) if e["event"] == "sample"]
    assert samples
    for s in samples:
        assert (s["step"], f"**{s['prompt']}**{s['text']}") in texts[sample_tag(s["prompt"])]


@pytest.mark.slow
def test_training_writes_tensorboard_scalars_equal_to_metrics_and_export_rewrites_them(tmp_path):
    (tmp_path / "experiments.toml").write_text(tiny_toml(max_steps=20, eval_every=10, log_every=5, sample_every=1,
                                                         sample_prompts=["The cat", "A class is"],
                                                         sample_max_new_tokens=8))
    r = tui_lab("train", "tiny", "--runs-dir", "runs", "--run-id", "r", "--quiet", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = RunDir(tmp_path / "runs" / "tiny" / "r")
    assert [e["step"] for e in load_history(run) if e["event"] == "train"] == [5, 10, 15, 20]
    assert_same_as_metrics(run)  # written live by the trainer

    shutil.rmtree(run.path / "tensorboard")
    r = tui_lab("export", "--format", "tensorboard", "--run", "tiny/r", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"tensorboard --logdir {tmp_path / 'runs'}" in r.stderr
    assert_same_as_metrics(run)  # written by the export from metrics.jsonl alone
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".tensorboard")] == []  # no temp folder left
    mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "runs"))
    mux.Reload()
    assert "tiny/r/tensorboard" in mux.Runs()  # what `tensorboard --logdir runs` lists


@pytest.mark.slow
def test_train_tensorboard_false_writes_no_event_files(tmp_path):
    (tmp_path / "experiments.toml").write_text(tiny_toml(max_steps=5, eval_every=5, tensorboard=False))
    r = tui_lab("train", "tiny", "--runs-dir", "runs", "--run-id", "r", "--quiet", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "runs" / "tiny" / "r" / "tensorboard").exists()


def test_export_tensorboard_refuses_output_and_unknown_runs(tmp_path):
    (tmp_path / "runs").mkdir()
    r = tui_lab("export", "--format", "tensorboard", "--runs-dir", "runs", "-o", "x.md", cwd=tmp_path)
    assert r.returncode == 2 and "--output does not apply" in r.stderr and "Traceback" not in r.stderr
    r = tui_lab("export", "--format", "tensorboard", "--runs-dir", "runs", cwd=tmp_path)
    assert r.returncode == 2 and "no runs under runs" in r.stderr


def test_a_resumed_writer_purges_the_points_after_its_checkpoint(tmp_path):
    """As collapse_resumes does for metrics.jsonl: the killed attempt's step-15 point goes."""
    import time

    from tui_lab.results.tensorboard import TensorBoardWriter

    first = TensorBoardWriter(tmp_path)
    for step in (5, 10, 15):
        first({"event": "train", "step": step, "train_loss": float(step), "time": 1000.0 + step})
    first.close()
    time.sleep(1.1)  # event file names carry the second they were opened
    resumed = TensorBoardWriter(tmp_path, purge_step=11)  # resumed from the checkpoint at step 10
    for step in (15, 20):
        resumed({"event": "train", "step": step, "train_loss": step + 0.5, "time": 2000.0 + step})
    resumed.close()
    scalars, _ = read_events(tmp_path)
    assert scalars["train/loss"] == [(5, 5.0), (10, 10.0), (15, 15.5), (20, 20.5)]

"""train.global_batch_size, train.precision, train.decay_all and the eval_every schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tui_lab.config import ConfigError, load_experiments
from tui_lab.models import build_model
from tui_lab.runs import load_history
from tui_lab.train.loop import Trainer
from tui_lab.train.optimizer import autocast_dtype, build_optimizer
from tui_lab.train.setup import start_run

from tiny import tiny_toml

ROOT = Path(__file__).resolve().parents[1]


def load(tmp_path: Path, **train):
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml(**train))
    return load_experiments(path)


# ------------------------------------------------------------------ global_batch_size
def test_global_batch_size_is_divided_across_processes_and_accumulation(tmp_path):
    t = load(tmp_path, batch_size=None, global_batch_size=32, grad_accum_steps=2).get("tiny").train
    assert [t.per_process_batch(n) for n in (1, 2, 4, 8, 16)] == [16, 8, 4, 2, 1]
    with pytest.raises(ValueError, match=r"train.global_batch_size \(32\) does not divide by 3 processes"):
        t.per_process_batch(3)
    plain = load(tmp_path, batch_size=4).get("tiny").train
    assert [plain.per_process_batch(n) for n in (1, 2, 3)] == [4, 4, 4]  # batch_size is per process


@pytest.mark.parametrize("train", [dict(global_batch_size=8), dict(batch_size=None)])
def test_exactly_one_batch_key(tmp_path, train):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, **train)
    assert "key 'train': give exactly one of batch_size (per process) or global_batch_size" in str(err.value)
    assert "experiments.toml" in str(err.value)


def test_set_of_one_batch_key_replaces_the_other(tmp_path):
    cfg = load(tmp_path, batch_size=None, global_batch_size=8)
    exp = cfg.get("tiny", ["train.batch_size=2"])
    assert (exp.train.batch_size, exp.train.global_batch_size) == (2, None)
    back = load(tmp_path, batch_size=4).get("tiny", ["train.global_batch_size=16"])
    assert (back.train.batch_size, back.train.global_batch_size) == (None, 16)
    with pytest.raises(ConfigError, match="exactly one of batch_size"):  # both on one command line
        cfg.get("tiny", ["train.batch_size=2", "train.global_batch_size=8"])


# ------------------------------------------------------------------ precision, decay_all
def test_defaults_are_the_speed_options(tmp_path):
    t = load(tmp_path).get("tiny").train
    assert (t.precision, t.decay_all) == ("bf16", False)
    with pytest.raises(ConfigError, match="train.precision"):
        load(tmp_path, precision="fp16")


@pytest.mark.parametrize("device_type,precision,dtype", [
    ("cuda", "bf16", torch.bfloat16), ("cuda", "fp32", None),
    ("cpu", "bf16", None), ("cpu", "fp32", None), ("mps", "bf16", None),
])
def test_autocast_dtype(device_type, precision, dtype):
    assert autocast_dtype(device_type, precision) is dtype


def _groups(tmp_path, decay_all: bool):
    exp = load(tmp_path, decay_all=decay_all, weight_decay=0.1).get("tiny")
    model = build_model(exp.model)
    opt = build_optimizer(model, exp.train, torch.device("cpu"))
    return model, [(g["weight_decay"], {id(p) for p in g["params"]}) for g in opt.param_groups]


def test_decay_all_decays_every_parameter_like_plain_adamw(tmp_path):
    model, groups = _groups(tmp_path, decay_all=True)
    assert groups == [(0.1, {id(p) for p in model.parameters()})]


def test_default_decays_matrices_only(tmp_path):
    model, groups = _groups(tmp_path, decay_all=False)
    matrices = {id(p) for p in model.parameters() if p.dim() >= 2}
    vectors = {id(p) for p in model.parameters() if p.dim() < 2}
    assert groups == [(0.1, matrices), (0.0, vectors)]
    norms = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    biases = {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    assert norms and biases and norms | biases <= vectors  # no decay on norms and biases


# ------------------------------------------------------------------ evaluation schedule
def _eval_steps(tmp_path, eval_every: int):
    """A run of 20 steps with an epoch every 6 steps (385 train tokens: 6 windows of 64, batch 1)."""
    exp = load(tmp_path, batch_size=1, max_steps=20, eval_every=eval_every, log_every=5,
               eval_max_tokens=256).get("tiny", ["data.max_train_tokens=385"])
    run = start_run(exp, tmp_path / f"runs-{eval_every}")
    assert Trainer(exp, run, torch.device("cpu")).train() == "finished"
    history = load_history(run)
    return ([e["step"] for e in history if e["event"] == "eval"],
            [e["step"] for e in history if e["event"] == "epoch_end"])


def test_eval_every_is_the_only_schedule_when_set(tmp_path):
    evals, epoch_ends = _eval_steps(tmp_path, eval_every=5)
    assert epoch_ends == [6, 12, 18]
    assert evals == [0, 5, 10, 15, 20]  # no extra evaluations at the epoch ends


def test_without_eval_every_evaluations_follow_the_epochs(tmp_path):
    evals, epoch_ends = _eval_steps(tmp_path, eval_every=0)
    assert evals == [0, 6, 12, 18, 20]  # each epoch end, and the last step

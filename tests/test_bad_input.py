"""Broken or hostile experiments files and checkpoints: a clear message, exit 2, nothing written,
no code run, and the app keeps running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tui_lab.models import build_model
from tui_lab.models.checkpoint import save_weights

from tiny import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]

GOOD = """[experiments.tiny]
description = "ok"
[experiments.tiny.model]
kind = "gpt"
vocab_size = 256
max_seq_len = 32
d_model = 32
num_heads = 4
d_ff = 64
num_layers = 1
dropout = 0.1
[experiments.tiny.data]
dataset = "pydoc"
tokenizer = "byte"
[experiments.tiny.train]
batch_size = 4
max_steps = 10
lr = 1e-3
"""


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


# (file content, words the message must contain)
BAD_FILES = [
    ("", "no [experiments.NAME] tables"),
    ("\x00\x01\x02garbage\xff", "not UTF-8"),
    ("[experiments.tiny\nkind=1", "TOML syntax error"),
    ("experiments = 3", "at least one [experiments.NAME] table"),
    ("[experiments]", "at least one"),
    (edit('kind = "gpt"', 'kind = "lstm"'), "model.kind"),
    (edit('kind = "gpt"', "kind = 1"), "model.kind"),
    (edit("d_model = 32", "d_model = 30"), "divisible by num_heads"),
    (edit("d_model = 32", "d_model = -32"), "model.d_model"),
    (edit("d_model = 32", 'd_model = "32"'), "model.d_model"),
    (edit("d_model = 32", "d_model = 32.5"), "model.d_model"),
    (edit("d_model = 32", "d_model = 100000000"), "model.d_model"),
    (edit("num_heads = 4", "num_heads = 0"), "model.num_heads"),
    (edit("num_layers = 1", "num_layers = 100000"), "model.num_layers"),
    (edit("vocab_size = 256", "vocab_size = 100"), "vocab_size >= 256"),
    (edit("max_seq_len = 32", "max_seq_len = 0"), "model.max_seq_len"),
    (edit("dropout = 0.1", "dropout = 1.0"), "model.dropout"),
    (edit("dropout = 0.1", "dropout = -0.5"), "model.dropout"),
    (edit("dropout = 0.1", "dropout = nan"), "model.dropout"),
    (edit("lr = 1e-3", "lr = 0"), "train.lr"),
    (edit("lr = 1e-3", "lr = -1"), "train.lr"),
    (edit("lr = 1e-3", "lr = inf"), "train.lr"),
    (edit("lr = 1e-3", "lr = 1e9"), "train.lr"),
    (edit("batch_size = 4", "batch_size = 0"), "train.batch_size"),
    (edit("batch_size = 4", "batch_size = true"), "train.batch_size"),
    (edit("batch_size = 4", "batch_size = 1000000000000000"), "train.batch_size"),
    (edit("max_steps = 10", "max_steps = 10000000000000000"), "train.max_steps"),
    (edit("lr = 1e-3", "lr = 1e-3\nseed = -1"), "train.seed"),
    (edit("max_steps = 10", ""), "epochs or max_steps"),
    (edit("max_steps = 10", "max_steps = -10"), "train.max_steps"),
    (edit("lr = 1e-3", "lr = 1e-3\nbetas = [0.9]"), "train.betas"),
    (edit("lr = 1e-3", "lr = 1e-3\nbetas = [0.9, 1.5]"), "train.betas"),
    (edit("lr = 1e-3", 'lr = 1e-3\nlr_schedule = "linear"'), "train.lr_schedule"),
    (edit("lr = 1e-3", "lr = 1e-3\nmomentum = 0.9"), "train.momentum"),
    (edit('tokenizer = "byte"', 'tokenizer = "bert"'), "data.tokenizer"),
    (edit('dataset = "pydoc"', 'dataset = "Salesforce/wikitext"'), "needs a config"),
    (edit('dataset = "pydoc"\n', ""), "either dataset"),
    (edit("[experiments.tiny.model]", "[experiments.tiny.modle]"), "modle"),
    (GOOD.replace("experiments.tiny", 'experiments."../../etc"'), "experiment name"),
    (GOOD.replace("experiments.tiny", 'experiments."a/b"'), "experiment name"),
    (GOOD.replace("experiments.tiny", 'experiments.".."'), "experiment name"),
    (GOOD + "[settings]\nruns_dir = 5\n", "settings.runs_dir"),
    (GOOD + "[bogus]\nx = 1\n", "bogus"),
]


@pytest.mark.parametrize("content, words", BAD_FILES, ids=[f"bad{i:02d}" for i in range(len(BAD_FILES))])
def test_bad_experiments_file_is_a_clean_error_and_writes_nothing(tmp_path, content, words):
    path = tmp_path / "experiments.toml"
    if "\x00" in content or "\xff" in content:
        path.write_bytes(content.encode("latin-1"))
    else:
        path.write_text(content)
    for args in (["check", str(path)], ["train", "tiny", "--config", str(path), "--runs-dir", str(tmp_path / "runs")]):
        r = subprocess.run([sys.executable, "-m", "tui_lab", *args], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "300"})
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert str(path) in r.stderr and words in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments.toml"]  # nothing written


@pytest.mark.parametrize("key", ["batch_size", "seq_len", "grad_accum_steps", "epochs", "max_steps", "warmup_steps",
                                 "eval_every", "eval_max_tokens", "log_every", "patience", "seed", "sample_every",
                                 "sample_max_new_tokens"])
def test_every_integer_train_key_has_a_sane_upper_bound(tmp_path, key):
    """``key = 10**15`` is refused when the file is loaded (so `check` catches it), naming the key;
    the default value loads."""
    from tui_lab.config import ConfigError, load_experiments

    path = tmp_path / "experiments.toml"
    existing = {"batch_size": "batch_size = 4", "max_steps": "max_steps = 10"}
    path.write_text(edit(existing[key], f"{key} = {10**15}") if key in existing
                    else edit("lr = 1e-3", f"lr = 1e-3\n{key} = {10**15}"))
    with pytest.raises(ConfigError) as err:
        load_experiments(path)
    assert f"train.{key}" in str(err.value) and str(path) in str(err.value)
    path.write_text(GOOD)
    assert load_experiments(path).get("tiny").train.batch_size == 4


# ---------------------------------------------------------------------------- checkpoints
CFG = TINY_MODEL  # tests/tiny.py: the shared tiny model config


def hostile_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (file, words the refusal must contain)."""
    out: dict[str, tuple[Path, str]] = {}
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "pickle.pt"
    torch.save({"model_config": CFG, "model": Evil()}, p)
    out["pickle"] = (p, "refused")
    model = build_model(CFG)
    good = tmp_path / "good.safetensors"
    save_weights(good, model, model.config, {"data": {"tokenizer": "byte"}})
    p = tmp_path / "truncated.safetensors"
    p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    out["truncated"] = (p, "truncated or corrupt")
    p = tmp_path / "other-shape.safetensors"
    save_weights(p, build_model({**CFG, "d_model": 64}), CFG, {"data": {"tokenizer": "byte"}})
    out["other shape"] = (p, "do not match")
    p = tmp_path / "other-arch.safetensors"
    save_weights(p, build_model({**CFG, "kind": "deepseek", "q_lora_rank": 8, "kv_lora_rank": 8, "num_heads": 2}),
                 CFG, {"data": {"tokenizer": "byte"}})
    out["other architecture"] = (p, "do not match")
    nan_model = build_model(CFG)
    with torch.no_grad():
        nan_model.tok_emb.weight[3, 3] = float("nan")
    p = tmp_path / "nan.safetensors"
    save_weights(p, nan_model, nan_model.config, {"data": {"tokenizer": "byte"}})
    out["nan weights"] = (p, "non-finite")
    from safetensors.torch import save_file

    p = tmp_path / "no-config.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(p))
    out["missing config"] = (p, "no model config")
    p = tmp_path / "bad-config.safetensors"
    save_weights(p, model, {**CFG, "d_model": 30}, {"data": {"tokenizer": "byte"}})
    out["invalid config"] = (p, "model config is invalid")
    return out


def test_hostile_checkpoints_are_refused_by_the_cli(tmp_path):
    cases = hostile_checkpoints(tmp_path)
    for name, (path, words) in cases.items():
        r = subprocess.run([sys.executable, "-m", "tui_lab", "chat", str(path), "--prompt", "x", "--device", "cpu"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert words in r.stderr and str(path.name) in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
    assert not (tmp_path / "code-ran").exists()  # the pickle's payload never ran


async def test_hostile_checkpoints_in_the_chat_pane_keep_the_app_running(tmp_path):
    from textual.app import App

    from waits import wait_for

    from tui_lab.app.screens.chat import ChatPane, ChatScreen

    cases = hostile_checkpoints(tmp_path)

    class Host(App):
        pass

    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        for name, (path, words) in cases.items():
            await app.push_screen(ChatScreen(path, device="cpu"))
            pane = app.screen.query_one(ChatPane)
            await wait_for(pilot, lambda: "cannot load" in str(pane.query_one(".pane-stats").render()),
                             timeout=30, what=f"{name}: cannot load")
            shown = str(pane.query_one(".pane-stats").render())
            assert words in shown, (name, shown)
            await pilot.press("escape")
            await pilot.pause()
        assert app.is_running
    assert not (tmp_path / "code-ran").exists()

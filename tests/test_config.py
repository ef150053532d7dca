"""experiments.toml: the shipped file, validation messages, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_lab.config import ConfigError, default_experiments_text, load_experiments, parse_override

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[experiments.tiny.model]
kind = "gpt"
vocab_size = 256
max_seq_len = 32
d_model = 32
num_heads = 4
d_ff = 64
num_layers = 1

[experiments.tiny.data]
dataset = "pydoc"
tokenizer = "byte"

[experiments.tiny.train]
batch_size = 4
max_steps = 10
lr = 1e-3
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "experiments.toml"
    p.write_text(text)
    return p


def test_shipped_file_is_the_package_default_and_valid():
    assert (ROOT / "experiments.toml").read_text() == default_experiments_text()
    cfg = load_experiments(ROOT / "experiments.toml")
    assert cfg.names == ["demo", "exp1", "exp2", "exp3", "exp4", "exp5", "exp6", "exp7"]


def test_shipped_hyperparameters_follow_the_seed_logs():
    cfg = load_experiments(ROOT / "experiments.toml")
    e1, e2, e3, e6, e7 = (cfg.experiments[n] for n in ("exp1", "exp2", "exp3", "exp6", "exp7"))
    assert (e1.model.d_model, e1.model.num_heads, e1.model.d_ff, e1.model.num_layers, e1.model.dropout) == (16, 2, 64, 2, 0.3)
    assert (e1.train.batch_size, e1.train.epochs, e1.train.lr, e1.train.weight_decay, e1.train.grad_clip) == (8, 209, 3e-4, 0.1, 1.0)
    assert e1.data.config == "wikitext-2-raw-v1" and e2.data.config == "wikitext-103-raw-v1"
    assert (e3.model.d_model, e3.train.lr, e3.train.batch_size) == (128, 6e-4, 32)
    assert (e6.model.d_model, e6.model.num_layers, e6.train.batch_size, e6.train.patience) == (512, 12, 16, 5)
    assert e7.model.kind == "deepseek" and (e7.model.q_lora_rank, e7.model.kv_lora_rank, e7.model.max_seq_len) == (128, 128, 256)
    assert e7.data.dataset == "Salesforce/wikitext"


def test_valid_minimal_file(tmp_path):
    cfg = load_experiments(write(tmp_path, GOOD))
    exp = cfg.get("tiny")
    assert exp.seq_len == 32 and exp.train.lr_schedule == "constant"


@pytest.mark.parametrize(
    "edit, key, words",
    [
        (("d_model = 32", "d_model = 30"), "model", "divisible by num_heads"),
        (("lr = 1e-3", "lr = 0"), "train.lr", "greater than 0"),
        (("lr = 1e-3", "lr = -1e-3"), "train.lr", "greater than 0"),
        (("num_layers = 1", "num_layers = 1\ndropout = 1.0"), "model.dropout", "less than 1"),
        (("num_layers = 1", "num_layers = 1\ndropout = -0.1"), "model.dropout", "greater than or equal to 0"),
        (("batch_size = 4", 'batch_size = "4"'), "train.batch_size", "valid integer"),
        (("batch_size = 4", "batch_size = 4\nbatchsize = 4"), "train.batchsize", "unknown key"),
        (("max_steps = 10", ""), "train", "epochs or max_steps"),
        (('kind = "gpt"', 'kind = "rnn"'), "model.kind", "'gpt' or 'deepseek'"),
        (('kind = "gpt"\n', ""), "model.kind", "required key is missing"),
        (("max_seq_len = 32", "max_seq_len = 32\n[experiments.tiny.train2]"), "train2", "unknown key"),
    ],
)
def test_bad_values_name_file_experiment_and_key(tmp_path, edit, key, words):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_experiments(path)
    msg = str(err.value)
    assert str(path) in msg and "experiment 'tiny'" in msg and f"key '{key}" in msg and words in msg, msg


def test_toml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("lr = 1e-3", "lr = = 1e-3"))
    with pytest.raises(ConfigError, match=r"TOML syntax error.*line 18"):
        load_experiments(path)


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "a..b", "x" * 65])
def test_experiment_names_that_are_not_folder_names_are_refused(tmp_path, name):
    path = write(tmp_path, GOOD.replace("experiments.tiny.", f'experiments."{name}".'))
    with pytest.raises(ConfigError, match="experiment name"):
        load_experiments(path)


def test_overrides_apply_and_revalidate(tmp_path):
    cfg = load_experiments(write(tmp_path, GOOD))
    exp = cfg.get("tiny", ["train.lr=0.01", "data.path=/some/dir", "train.betas=[0.8, 0.9]"])
    assert exp.train.lr == 0.01 and exp.data.path == "/some/dir" and exp.train.betas == [0.8, 0.9]
    assert cfg.get("tiny").train.lr == 1e-3  # the file's own value is untouched
    with pytest.raises(ConfigError, match="key 'model.d_model'"):
        cfg.get("tiny", ["model.d_model=-4"])
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.get("tiny", ["train.nonsense=1"])
    with pytest.raises(ConfigError, match="no experiment named 'nope'"):
        cfg.get("nope")


def test_parse_override_types():
    assert parse_override("train.max_steps=200") == ("train.max_steps", 200)
    assert parse_override("data.path=../shared/data/wikitext-2-tokenized") == ("data.path", "../shared/data/wikitext-2-tokenized")
    assert parse_override("train.compile=true") == ("train.compile", True)
    for bad in ("novalue", "=3", "lr=3"):
        with pytest.raises(ConfigError):
            parse_override(bad)

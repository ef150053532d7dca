"""The compare view's arithmetic (tui_lab/results/compare.py): config diff, Δ from a baseline,
x axes, EMA smoothing, the perplexity the overlay uses across tokenizers."""

from __future__ import annotations


import pytest

from tui_lab.results.compare import (
    MISSING,
    SMOOTHING_STEPS,
    compare_table,
    config_diff,
    curve,
    delta,
    ema,
    flatten_config,
    format_value,
    perplexity_key,
    step_smoothing,
)


def test_flatten_nested_keys_with_dots():
    cfg = {"name": "demo", "train": {"lr": 1e-3, "betas": [0.9, 0.95], "opt": {"eps": 1e-8}}, "data": {}}
    assert flatten_config(cfg) == {"name": "demo", "train.lr": 1e-3, "train.betas": [0.9, 0.95],
                                   "train.opt.eps": 1e-8}


def test_config_diff_lists_only_differing_keys():
    a = {"name": "demo", "description": "x", "model": {"d_model": 32}, "train": {"lr": 1e-3, "seed": 0,
                                                                                "betas": [0.9, 0.95]}}
    b = {"name": "demo", "description": "x", "model": {"d_model": 32}, "train": {"lr": 2e-3, "seed": 0,
                                                                                "betas": [0.9, 0.95]}}
    c = {"name": "other", "description": "y", "sweep": {"id": "s1", "overrides": {"train.lr": 4e-3}},
         "model": {"d_model": 64}, "train": {"lr": 1e-3, "seed": 1, "betas": [0.9, 0.99], "compile": True}}
    diff = config_diff([a, b, c])
    assert [k for k, _ in diff] == ["model.d_model", "train.betas", "train.compile", "train.lr", "train.seed"]
    values = dict(diff)
    assert values["train.lr"] == [1e-3, 2e-3, 1e-3]
    assert values["train.compile"] == [MISSING, MISSING, True]
    assert [format_value(v) for v in values["train.compile"]] == ["-", "-", "true"]
    assert config_diff([a, a]) == [] and config_diff([a]) == [] and config_diff([]) == []
    assert [k for k, _ in config_diff([a, None])] == ["model.d_model", "train.betas", "train.lr", "train.seed"]


def test_delta_absolute_and_percent():
    assert delta(90.0, 100.0) == (-10.0, -10.0)
    d, pct = delta(125.5, 100.4)
    assert d == pytest.approx(25.1) and pct == pytest.approx(25.1 / 100.4 * 100)
    assert delta(5.0, 0.0) == (5.0, None)
    assert delta(None, 1.0) == (None, None) and delta(1.0, float("nan")) == (None, None)


def test_compare_table_against_a_baseline():
    recs = [{"best_val_ppl": 100.0, "best_val_word_ppl": 300.0, "tokens_per_s": 1000.0, "tokens_seen": 5000,
             "chinchilla_ratio": 0.5, "wall_time_s": 10.0, "cost_usd": None},
            {"best_val_ppl": 80.0, "best_val_word_ppl": 200.0, "tokens_per_s": 1500.0, "tokens_seen": 6000,
             "chinchilla_ratio": 0.6, "wall_time_s": 12.0, "cost_usd": 0.01}]
    t = compare_table(recs, ["a", "b"], baseline=0)
    assert t.values("delta") == [0.0, -20.0] and t.values("delta_pct") == [0.0, -20.0]
    assert t.values("run") == ["a", "b"] and t.values("tokens_per_s") == [1000.0, 1500.0]
    t = compare_table(recs, ["a", "b"], baseline=1, ppl="val_word_ppl")
    assert t.column("best_ppl").name == "Best word ppl"
    assert t.values("delta") == [100.0, 0.0] and t.values("delta_pct") == [50.0, 0.0]
    assert compare_table(recs, ["a", "b"], baseline=None).values("delta") == [None, None]
    with pytest.raises(ValueError):
        compare_table(recs, ["a"], baseline=0)
    with pytest.raises(ValueError):
        compare_table(recs, ["a", "b"], baseline=2)


def test_curve_against_step_tokens_and_time():
    events = [{"event": "train", "step": 10, "tokens_seen": 2560, "elapsed_s": 1.5, "train_loss": 5.0},
              {"event": "eval", "step": 10, "tokens_seen": 2560, "elapsed_s": 1.6, "val_loss": 5.1},
              {"event": "train", "step": 20, "tokens_seen": 5120, "elapsed_s": 3.0, "train_loss": 4.0},
              {"event": "train", "step": 30, "train_loss": float("nan")}]
    assert curve(events, "train", "train_loss") == ([10, 20], [5.0, 4.0])
    assert curve(events, "train", "train_loss", "tokens") == ([2560, 5120], [5.0, 4.0])
    assert curve(events, "train", "train_loss", "time") == ([1.5, 3.0], [5.0, 4.0])
    assert curve(events, "eval", "val_loss", "time") == ([1.6], [5.1])
    with pytest.raises(ValueError):
        curve(events, "train", "train_loss", "epoch")


def test_ema_debiased_like_tensorboard():
    ys = [4.0, 2.0, 3.0]
    assert ema(ys, 0.0) == ys
    w = 0.5
    m1 = (1 - w) * 4.0
    m2 = w * m1 + (1 - w) * 2.0
    m3 = w * m2 + (1 - w) * 3.0
    assert ema(ys, w) == pytest.approx([m1 / (1 - w), m2 / (1 - w ** 2), m3 / (1 - w ** 3)])
    assert ema(ys, w)[0] == 4.0  # de-biased: the first point is the first value
    assert ema([7.0] * 50, 0.99) == pytest.approx([7.0] * 50)  # a constant stays constant
    with pytest.raises(ValueError):
        ema(ys, 1.0)


def test_smoothing_steps():
    assert step_smoothing(0.0, +1) == SMOOTHING_STEPS[1]
    assert step_smoothing(0.0, -1) == 0.0
    assert step_smoothing(SMOOTHING_STEPS[-1], +1) == SMOOTHING_STEPS[-1]
    assert step_smoothing(0.9, -1) == 0.8


def test_perplexity_key_across_tokenizers():
    gpt2 = {"data": {"tokenizer": "gpt2"}}
    byte = {"data": {"tokenizer": "byte"}}
    assert perplexity_key([gpt2, gpt2]) == "val_ppl"
    assert perplexity_key([gpt2, byte]) == "val_word_ppl"
    assert perplexity_key([]) == "val_ppl"


def test_seed_groups_and_band():
    from tui_lab.results.compare import band, seed_groups

    def cfg(lr, seed, sweep="s"):
        return {"name": "demo", "sweep": {"id": sweep, "overrides": {"train.seed": seed}},
                "train": {"lr": lr, "seed": seed}}

    configs = [cfg(1e-3, 0), cfg(2e-3, 0), cfg(1e-3, 1), cfg(2e-3, 1), cfg(1e-3, 2)]
    assert seed_groups(["demo"] * 5, configs) == [[0, 2, 4], [1, 3]]
    assert seed_groups(["demo", "other"], [cfg(1e-3, 0), cfg(1e-3, 1)]) == [[0], [1]]
    xs, mean, lo, hi = band([([10, 20], [4.0, 3.0]), ([10, 20, 30], [6.0, 2.0, 1.0])])
    assert xs == [10, 20, 30] and mean == [5.0, 2.5, 1.0] and lo == [4.0, 2.0, 1.0] and hi == [6.0, 3.0, 1.0]

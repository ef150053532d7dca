"""Both model families: the seeds' exact parameter counts, causality, KV cache, init loss."""

from __future__ import annotations

import math

import pytest
import torch

from tui_lab.models import build_model, count_parameters
from tui_lab.models.counting import count_parameters_of_config
from tui_lab.train.sanity import check_causality

GPT = dict(kind="gpt", vocab_size=50257, max_seq_len=512, dropout=0.1)
EXP7 = dict(kind="deepseek", vocab_size=49152, max_seq_len=256, d_model=256, num_heads=4, d_ff=1024, num_layers=3,
            q_lora_rank=128, kv_lora_rank=128)
SMALL = {
    "gpt": dict(kind="gpt", vocab_size=300, max_seq_len=64, d_model=32, num_heads=4, d_ff=64, num_layers=2),
    "deepseek": dict(kind="deepseek", vocab_size=300, max_seq_len=64, d_model=64, num_heads=4, d_ff=96,
                     num_layers=2, q_lora_rank=16, kv_lora_rank=16),
}


@pytest.mark.parametrize(
    "shape, expected",
    [
        (dict(d_model=16, num_heads=2, d_ff=64, num_layers=2), 869_153),  # exp1, exp2
        (dict(d_model=128, num_heads=8, d_ff=512, num_layers=4), 7_342_033),  # exp3
        (dict(d_model=512, num_heads=8, d_ff=2048, num_layers=12), 63_873_617),  # exp6
    ],
)
def test_gpt_parameter_counts_match_the_seed_logs(shape, expected):
    assert count_parameters_of_config({**GPT, **shape}) == expected


def test_gpt_count_follows_the_field_notes_formula():
    V, T, d, dff, L = 50257, 512, 256, 1024, 8  # exp5
    formula = V * d + T * d + L * (4 * (d * d + d) + (2 * d * dff + dff + d) + 4 * d) + 2 * d + V
    assert count_parameters_of_config({**GPT, "d_model": d, "num_heads": 8, "d_ff": dff, "num_layers": L}) == formula


def test_deepseek_parameter_count_matches_the_exp7_report():
    assert count_parameters_of_config(EXP7) == 15_585_472
    model = build_model(EXP7)
    assert count_parameters(model) == 15_585_472
    # the head is tied: the embedding is the only vocab-sized matrix
    assert sum(p.numel() for p in model.parameters() if p.shape[0] == 49152) == 49152 * 256


def test_config_round_trips_through_build_model():
    model = build_model({**GPT, "d_model": 16, "num_heads": 2, "d_ff": 64, "num_layers": 2})
    again = build_model(model.config)
    assert count_parameters(again) == count_parameters(model) == 869_153


@pytest.mark.parametrize("bad", [dict(d_model=30), dict(kind="rnn"), dict(num_layers=0)])
def test_invalid_configs_raise_value_error(bad):
    with pytest.raises(ValueError, match="invalid model config"):
        build_model({**SMALL["gpt"], **bad})


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_models_are_causal(kind):
    torch.manual_seed(0)
    model = build_model(SMALL[kind])
    check = check_causality(model, 300, 64)
    assert check.ok, check.detail


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_causality_check_catches_a_model_that_sees_the_future(kind):
    """exp7's bug: attention without a causal mask. The same check must fail on it."""
    torch.manual_seed(0)
    model = build_model(SMALL[kind])
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def leaky(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        return real_sdpa(q, k, v, dropout_p=dropout_p)

    torch.nn.functional.scaled_dot_product_attention = leaky
    try:
        assert not check_causality(model, 300, 64).ok
    finally:
        torch.nn.functional.scaled_dot_product_attention = real_sdpa


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_kv_cache_decoding_matches_the_full_forward(kind):
    torch.manual_seed(0)
    model = build_model(SMALL[kind]).eval()
    x = torch.randint(0, 300, (2, 48))
    with torch.no_grad():
        full = model(x)
        cache = model.new_kv_cache(2)
        parts = [model(x[:, :20], kv_cache=cache)]  # prefill
        parts += [model(x[:, t : t + 1], kv_cache=cache) for t in range(20, 40)]  # one token at a time
        parts.append(model(x[:, 40:], kv_cache=cache))  # several new tokens after a prefix
    assert cache.length == 48
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4)


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_greedy_with_cache_equals_without(kind):
    torch.manual_seed(1)
    model = build_model(SMALL[kind]).eval()
    prompt = torch.randint(0, 300, (1, 5))
    with torch.no_grad():
        seq = prompt.clone()
        for _ in range(30):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], 1)
        cache = model.new_kv_cache(1)
        out = prompt.clone()
        logits = model(prompt, kv_cache=cache)
        for _ in range(30):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], 1)
            logits = model(nxt, kv_cache=cache)
    assert out.tolist() == seq.tolist()


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_positions_past_max_seq_len_raise(kind):
    model = build_model(SMALL[kind]).eval()
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))
    cache = model.new_kv_cache(1)
    model(torch.zeros(1, 64, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_loss_at_init_is_close_to_ln_vocab(kind):
    torch.manual_seed(0)
    model = build_model(SMALL[kind]).eval()
    x = torch.randint(0, 300, (4, 64))
    with torch.no_grad():
        logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 300), x[:, 1:].reshape(-1)).item()
    assert abs(loss - math.log(300)) < 0.5

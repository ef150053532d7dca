"""tui_lab.models: exact parameter counts, causality, the KV cache, init loss, config handling.

CPU only and small shapes, except the parameter counts (the 64M-parameter exp6 is built
on the ``meta`` device: no memory, no init).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tui_lab.config.schema import ModelConfig
from tui_lab.models import KVCache, build_model, config_dict, count_parameters, flops_per_token

V_GPT2, T_SEEDS = 50257, 512
EXP1 = dict(kind="gpt", vocab_size=V_GPT2, max_seq_len=T_SEEDS, d_model=16, num_heads=2, d_ff=64, num_layers=2)
EXP3 = {**EXP1, "d_model": 128, "num_heads": 8, "d_ff": 512, "num_layers": 4}
EXP6 = {**EXP1, "d_model": 512, "num_heads": 8, "d_ff": 2048, "num_layers": 12}
EXP7 = dict(kind="deepseek", vocab_size=49152, max_seq_len=256, d_model=256, num_heads=4, d_ff=1024,
            num_layers=3, q_lora_rank=128, kv_lora_rank=128)
SMALL = {
    "gpt": dict(kind="gpt", vocab_size=211, max_seq_len=48, d_model=32, num_heads=4, d_ff=64, num_layers=2),
    "deepseek": dict(kind="deepseek", vocab_size=211, max_seq_len=48, d_model=32, num_heads=4, d_ff=48,
                     num_layers=2, q_lora_rank=16, kv_lora_rank=12),
}
KINDS = ["gpt", "deepseek"]


def meta_count(cfg) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(cfg))


def small(kind: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({**SMALL[kind], **overrides}).eval()


def gpt_formula(V, T, d, dff, L) -> int:
    return V * d + T * d + L * (4 * (d * d + d) + (2 * d * dff + dff + d) + 4 * d) + 2 * d + V


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("cfg, expected", [(EXP1, 869_153), (EXP3, 7_342_033), (EXP6, 63_873_617)],
                         ids=["exp1", "exp3", "exp6"])
def test_gpt_parameter_counts_match_the_seed_logs(cfg, expected):
    assert meta_count(cfg) == expected
    assert gpt_formula(V_GPT2, T_SEEDS, cfg["d_model"], cfg["d_ff"], cfg["num_layers"]) == expected


def test_gpt_count_on_cpu_equals_meta_and_the_head_is_tied():
    model = build_model(EXP1)
    assert count_parameters(model) == meta_count(EXP1) == 869_153
    # the output projection reuses the embedding: the only vocab × d matrix is tok_emb.weight
    big = [name for name, p in model.named_parameters() if p.shape == (V_GPT2, 16)]
    assert big == ["tok_emb.weight"]
    assert model.out_bias.shape == (V_GPT2,)
    # every parameter in the state dict is distinct memory (safetensors can save it)
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(ptrs) == len(set(ptrs))


def test_deepseek_parameter_count_matches_the_exp7_report():
    d, r, hd, dff = 256, 128, 64, 1024
    attn = (d * r + r) + r + r * d + (d * (r + hd) + r + hd) + r + r * d + (d * d + d)
    assert attn == 213_824
    assert 3 * d * dff == 786_432
    assert 49152 * d + 3 * (attn + 3 * d * dff + 2 * d) + d == 15_585_472
    assert meta_count(EXP7) == 15_585_472
    with torch.device("meta"):
        model = build_model(EXP7)
    # tied head, no output bias: the embedding is the only vocab-sized parameter
    assert [n for n, p in model.named_parameters() if 49152 in p.shape] == ["tok_emb.weight"]


def test_flops_per_token_follows_6n_plus_12ldt():
    n_matmul = 869_153 - T_SEEDS * 16  # nanoGPT's N: all but the learned positions
    assert flops_per_token(EXP1, 512) == 6 * n_matmul + 12 * 2 * 16 * 512
    assert flops_per_token(EXP7, 256) == 6 * 15_585_472 + 12 * 3 * 256 * 256  # no positional table
    assert flops_per_token(EXP1, 128, num_params=1000) == 6 * 1000 + 12 * 2 * 16 * 128
    with pytest.raises(ValueError):
        flops_per_token(EXP1, 0)


# ---------------------------------------------------------------- config handling


@pytest.mark.parametrize("bad", [
    dict(d_model=30),  # not divisible by num_heads = 4
    dict(kind="rnn"),
    dict(num_layers=0),
    dict(vocab_size="big"),
    dict(n_embd=32),  # unknown key
    dict(q_lora_rank=16),  # deepseek-only key on a gpt model
])
def test_build_model_rejects_bad_configs_with_value_error(bad):
    with pytest.raises(ValueError, match="invalid model config"):
        build_model({**SMALL["gpt"], **bad})


def test_build_model_rejects_deepseek_without_ranks_and_non_mappings():
    with pytest.raises(ValueError, match="q_lora_rank"):
        build_model({k: v for k, v in SMALL["deepseek"].items() if k != "kv_lora_rank"})
    with pytest.raises(ValueError, match="invalid model config"):
        build_model(["gpt"])


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trips_through_json_and_build_model(kind):
    model = small(kind)
    assert isinstance(model.config, ModelConfig) and model.config.kind == kind
    cfg = json.loads(json.dumps(config_dict(model.config)))
    assert ModelConfig.model_validate(cfg) == model.config
    again = build_model(cfg)  # a checkpoint's stored dict builds the same architecture
    assert count_parameters(again) == count_parameters(model) and again.config == model.config
    # same architecture: the weights load one-to-one
    again.load_state_dict(model.state_dict())


# ---------------------------------------------------------------- forward, causality


@pytest.mark.parametrize("kind", KINDS)
def test_forward_shape_and_dtype(kind):
    model = small(kind)
    logits = model(torch.randint(0, 211, (3, 17)))
    assert logits.shape == (3, 17, 211) and logits.dtype == torch.float32
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("kind", KINDS)
def test_models_are_causal(kind):
    """Changing tokens after position t leaves the logits at 0..t alone and changes later ones."""
    model = small(kind)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 211, (2, 40), generator=g)
    t = 22
    y = x.clone()
    y[:, t + 1 :] = torch.randint(0, 211, (2, 40 - t - 1), generator=g)
    assert (y[:, t + 1 :] != x[:, t + 1 :]).any()
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6, rtol=0)
    later = (a[:, t + 1 :] - b[:, t + 1 :]).abs().amax(-1)  # [B, T - t - 1]
    assert (later > 1e-4).all(), "every later position sees the changed tokens"


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_is_active_in_training_only(kind):
    model = small(kind, dropout=0.5)
    x = torch.randint(0, 211, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # eval: deterministic
        model.train()
        assert not torch.allclose(model(x), model(x))


# ---------------------------------------------------------------- KV cache


@pytest.mark.parametrize("kind", KINDS)
def test_new_kv_cache_preallocates_and_resets(kind):
    model = small(kind)
    cache = model.new_kv_cache(2)
    assert isinstance(cache, KVCache) and cache.length == 0
    assert cache.k.size(0) == cache.v.size(0) == SMALL[kind]["num_layers"]  # [layers, batch, heads, max_seq_len, head_dim]
    assert cache.k.size(3) == cache.v.size(3) == SMALL[kind]["max_seq_len"]
    x = torch.randint(0, 211, (2, 10))
    with torch.no_grad():
        first = model(x, kv_cache=cache)
        assert cache.length == 10
        cache.reset()
        assert cache.length == 0
        assert torch.allclose(model(x, kv_cache=cache), first, atol=1e-5)
    with pytest.raises(ValueError, match="batch size"):
        model(torch.zeros(3, 1, dtype=torch.long), kv_cache=cache)


@pytest.mark.parametrize("kind", KINDS)
def test_incremental_decoding_matches_the_full_forward(kind):
    """Prefill, then one token at a time (no mask), then a chunk after a prefix (explicit mask)."""
    model = small(kind)
    x = torch.randint(0, 211, (2, 40))
    with torch.no_grad():
        full = model(x)
        cache = model.new_kv_cache(2)
        parts = [model(x[:, :12], kv_cache=cache)]
        parts += [model(x[:, t : t + 1], kv_cache=cache) for t in range(12, 30)]
        parts.append(model(x[:, 30:], kv_cache=cache))
    assert cache.length == 40
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4, rtol=1e-4)


def greedy(model, prompt: torch.Tensor, n: int, use_cache: bool) -> list[int]:
    with torch.no_grad():
        if not use_cache:
            seq = prompt
            for _ in range(n):
                seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], 1)
            return seq[0].tolist()
        cache = model.new_kv_cache(1)
        seq, logits = prompt, model(prompt, kv_cache=cache)
        for _ in range(n):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
            logits = model(nxt, kv_cache=cache)
        return seq[0].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generation_with_cache_equals_without(kind):
    model = small(kind, seed=3)
    with torch.no_grad():  # sharper than at init, so the next token depends on the whole context
        for name, p in model.named_parameters():
            if p.dim() == 2 and "emb" not in name:
                p.mul_(8)
    prompt = torch.randint(0, 211, (1, 6))
    with_cache = greedy(model, prompt, 20, use_cache=True)
    assert len(with_cache) == 26
    assert with_cache == greedy(model, prompt, 20, use_cache=False)


@pytest.mark.parametrize("kind", KINDS)
def test_positions_past_max_seq_len_raise(kind):
    model = small(kind)
    T = SMALL[kind]["max_seq_len"]
    with torch.no_grad():
        model(torch.zeros(1, T, dtype=torch.long))  # exactly full is fine
        with pytest.raises(ValueError, match="max_seq_len"):
            model(torch.zeros(1, T + 1, dtype=torch.long))
        cache = model.new_kv_cache(1)
        model(torch.zeros(1, T - 2, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match="max_seq_len"):
            model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)
        assert cache.length == T - 2  # a refused call changes nothing
        model(torch.zeros(1, 2, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match="max_seq_len"):
            model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


# ---------------------------------------------------------------- init


@pytest.mark.parametrize("cfg", [EXP1, {**EXP7, "num_layers": 1}], ids=["gpt-exp1", "deepseek-exp7-1layer"])
def test_loss_at_init_is_close_to_ln_vocab(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randint(0, cfg["vocab_size"], (2, 64))
    with torch.no_grad():
        logits = model(x)
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten()).item()
    assert abs(loss - math.log(cfg["vocab_size"])) < 0.5, loss


# ---------------------------------------------------------------- fused loss, vocabulary padding


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pad", [1, 64])
def test_fused_loss_equals_logits_then_cross_entropy_with_the_same_gradients(kind, pad):
    model = small(kind, pad_vocab_multiple=pad).train()
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 211, (3, 40), generator=g)
    y = torch.randint(0, 211, (3, 40), generator=g)
    torch.manual_seed(0)  # same dropout masks in both passes
    logits = model(x)
    assert logits.shape == (3, 40, 211)  # padding never reaches the logits
    ref = F.cross_entropy(logits.reshape(-1, 211), y.reshape(-1))
    ref.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    fused = model(x, targets=y)
    fused.backward()
    got = _grads(model)
    assert fused.dtype == torch.float32 and fused.item() == pytest.approx(ref.item(), rel=1e-6)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6, rtol=1e-4), name


def test_linear_cross_entropy_is_the_same_for_any_chunking_and_checks_shapes():
    from tui_lab.models.loss import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 37, 16, generator=g)
    w, b = torch.randn(100, 16, generator=g), torch.randn(100, generator=g)
    t = torch.randint(0, 90, (2, 37), generator=g)
    ref = F.cross_entropy(F.linear(h, w[:90], b[:90]).reshape(-1, 90), t.reshape(-1))
    for rows in (1, 7, 74, 1000):
        assert linear_cross_entropy(h, w, b, t, vocab_size=90, chunk_rows=rows).item() == pytest.approx(ref.item(), rel=1e-6)
    with pytest.raises(ValueError, match="targets"):
        linear_cross_entropy(h, w, b, t[:, :5])
    with pytest.raises(ValueError, match="vocab_size 101"):
        linear_cross_entropy(h, w, b, t, vocab_size=101)


def test_linear_cross_entropy_with_logits_spread_over_hundreds_of_nats():
    """The seeds' init (N(0, 1) embeddings tied to the head) gives logits far apart: most of a
    row sits below the exp floor (EXP_FLOOR). Loss and gradients still equal the float64
    reference, and the padding rows of the weight get exactly zero gradient."""
    from tui_lab.models.loss import EXP_FLOOR, linear_cross_entropy

    g = torch.Generator().manual_seed(1)
    h = (torch.randn(3, 29, 16, generator=g) * 12).requires_grad_()
    w = torch.randn(128, 16, generator=g).requires_grad_()
    b = torch.randn(128, generator=g).requires_grad_()
    t = torch.randint(0, 100, (3, 29), generator=g)
    z = F.linear(h.detach().double(), w.detach().double()[:100], b.detach().double()[:100])
    assert ((z - z.amax(-1, keepdim=True)) < EXP_FLOOR).float().mean() > 0.4  # much of each row below it
    h64, w64, b64 = (x.detach().double().requires_grad_() for x in (h, w, b))
    ref = F.cross_entropy(F.linear(h64, w64[:100], b64[:100]).reshape(-1, 100), t.reshape(-1))
    ref.backward()
    loss = linear_cross_entropy(h, w, b, t, vocab_size=100, chunk_rows=13)
    loss.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    for got, want in ((h.grad, h64.grad), (w.grad, w64.grad), (b.grad, b64.grad)):
        assert torch.allclose(got.double(), want, atol=1e-6, rtol=1e-4)
    assert torch.count_nonzero(w.grad[100:]) == 0 and torch.count_nonzero(b.grad[100:]) == 0


@pytest.mark.parametrize("cfg, real", [(EXP1, 869_153), (EXP7, 15_585_472)], ids=["exp1", "exp7"])
def test_vocab_padding_keeps_the_reported_parameter_count(cfg, real):
    padded = {**cfg, "pad_vocab_multiple": 64}
    assert meta_count(padded) == real
    with torch.device("meta"):
        model = build_model(padded)
    rows = model.tok_emb.weight.size(0)
    assert rows % 64 == 0 and 0 <= rows - cfg["vocab_size"] < 64
    assert flops_per_token(padded, 256) == flops_per_token(cfg, 256)


@pytest.mark.parametrize("kind", KINDS)
def test_a_padded_model_computes_what_the_unpadded_one_does_and_its_padding_stays_zero(kind):
    plain, padded = small(kind), small(kind, pad_vocab_multiple=64)
    assert padded.tok_emb.weight.shape[0] == 256
    assert torch.all(padded.tok_emb.weight[211:] == 0)
    state = {k: v.clone() for k, v in padded.state_dict().items()}
    for k, v in plain.state_dict().items():  # plain weights into the first rows
        state[k][tuple(slice(0, n) for n in v.shape)] = v
    padded.load_state_dict(state)
    x = torch.randint(0, 211, (2, 30))
    with torch.no_grad():
        assert torch.allclose(padded(x), plain(x), atol=1e-6)
    padded.train()
    padded(x, targets=x).backward()
    assert torch.all(padded.tok_emb.weight.grad[211:] == 0)  # no gradient: padding stays zero under AdamW

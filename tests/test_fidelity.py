"""Seed fidelity: with ``activation = "relu"``, ``dropout_layout = "seed"`` and
``init = "torch_default"``, tui-lab's ``gpt`` computes the seed scripts' ``LanguageModel``.

The reference below is written from the seed model's structure (FIELD_NOTES §1, issue 19),
with its module names, and shares no code with tui_lab.models: pre-norm blocks
``x + drop(attn(norm1(x)))`` and ``x + drop(ffn(norm2(x)))``, attention with dropout on its
softmax weights, ``ffn = linear1 → ReLU → dropout → linear2 → dropout``, no embedding dropout,
a final LayerNorm and ``lm_head`` tied to the token embedding with its own bias, PyTorch's
default initialisation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tui_lab.models import build_model, count_parameters
from tui_lab.models.seed_format import from_seed_state_dict, seed_shapes, to_seed_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]

V, T = 50257, 512
SEED = dict(activation="relu", dropout_layout="seed", init="torch_default")
EXP1 = dict(kind="gpt", vocab_size=V, max_seq_len=T, d_model=16, num_heads=2, d_ff=64, num_layers=2, dropout=0.3)
EXP3 = dict(kind="gpt", vocab_size=V, max_seq_len=T, d_model=128, num_heads=8, d_ff=512, num_layers=4, dropout=0.1)
TINY = dict(kind="gpt", vocab_size=97, max_seq_len=32, d_model=16, num_heads=2, d_ff=32, num_layers=2, dropout=0.2)


# ------------------------------------------------------------------ the reference (seed structure)


class RefEmbeddings(nn.Module):
    def __init__(self, vocab, max_len, d):
        super().__init__()
        self.token_embed = nn.Embedding(vocab, d)
        self.pos_embed = nn.Embedding(max_len, d)

    def forward(self, idx):
        return self.token_embed(idx) + self.pos_embed(torch.arange(idx.size(1)))


class RefAttention(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.dropout = nn.Dropout(p)

    def forward(self, x):
        B, L, d = x.shape
        hd = d // self.heads
        q, k, v = (p(x).reshape(B, L, self.heads, hd).permute(0, 2, 1, 3) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        future = torch.ones(L, L, dtype=torch.bool).triu(1)
        weights = self.dropout(scores.masked_fill(future, float("-inf")).softmax(-1))
        return self.out_proj((weights @ v).permute(0, 2, 1, 3).reshape(B, L, d))


class RefFFN(nn.Module):
    def __init__(self, d, d_ff, p):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.dropout = nn.Dropout(p)

    def forward(self, x):
        return self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(x)))))


class RefBlock(nn.Module):
    def __init__(self, d, heads, d_ff, p):
        super().__init__()
        self.attention, self.ffn = RefAttention(d, heads, p), RefFFN(d, d_ff, p)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = nn.Dropout(p)

    def forward(self, x):
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class LanguageModel(nn.Module):
    def __init__(self, vocab, max_len, d, heads, d_ff, layers, p):
        super().__init__()
        self.embeddings = RefEmbeddings(vocab, max_len, d)
        self.blocks = nn.ModuleList(RefBlock(d, heads, d_ff, p) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab)
        self.lm_head.weight = self.embeddings.token_embed.weight

    def forward(self, idx):
        x = self.embeddings(idx)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


def reference(cfg, seed=0) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(cfg["vocab_size"], cfg["max_seq_len"], cfg["d_model"], cfg["num_heads"], cfg["d_ff"],
                         cfg["num_layers"], cfg["dropout"])


def tui_lab_copy_of(ref: LanguageModel, cfg) -> nn.Module:
    model = build_model({**cfg, **SEED})
    model.load_state_dict(from_seed_state_dict(ref.state_dict()), strict=True)
    return model


# ------------------------------------------------------------------ the same function


@pytest.mark.parametrize("cfg, length, params", [(EXP1, 256, 869_153), (EXP3, 128, 7_342_033)], ids=["exp1", "exp3"])
def test_seed_weights_give_identical_logits_in_eval_mode(cfg, length, params):
    """Same function: equal to 1e-5 in float64 (no rounding left to hide a difference), and to
    float32 rounding (logits up to ~50 at PyTorch-default init) in float32."""
    ref = reference(cfg).eval()
    model = tui_lab_copy_of(ref, cfg).eval()
    assert count_parameters(model) == params == sum(p.numel() for p in ref.parameters())
    x = torch.randint(0, V, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), model(x)
        assert want.abs().max() > 5  # PyTorch-default init: large logits, not a near-uniform softmax
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
        ref.double(), model.double()
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=0)


def test_training_mode_applies_dropout_at_the_seed_places(monkeypatch):
    """Dropout replaced by a deterministic scaling (F.dropout and the attention-weight dropout
    inside scaled_dot_product_attention): the training-mode outputs agree only if every dropout
    sits where the seed model has it (the biases make a scaling before or after a linear
    differ, and the LayerNorms make a scaling of the embeddings visible)."""
    scale = 0.7

    def fake_dropout(x, p=0.5, training=True, inplace=False):
        return x * scale if training and p > 0 else x

    def fake_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale_=None, **kw):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        if is_causal:
            s = s.masked_fill(torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).triu(1), float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf"))
        w = s.softmax(-1)
        return (w * scale if dropout_p > 0 else w) @ v

    monkeypatch.setattr(F, "dropout", fake_dropout)
    monkeypatch.setattr(F, "scaled_dot_product_attention", fake_sdpa)
    ref = reference(TINY).train()
    model = tui_lab_copy_of(ref, TINY).train()
    x = torch.randint(0, TINY["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)
        gpt2 = build_model({**TINY, "activation": "relu"}).train()
        gpt2.load_state_dict(model.state_dict())
        assert not torch.allclose(gpt2(x), ref(x), atol=1e-3)  # the GPT-2 layout is another function


def _dropout_calls(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    calls: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
             for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return calls


def test_seed_layout_has_four_dropouts_per_block_none_on_the_embeddings_and_attention_weight_dropout(monkeypatch):
    model = build_model({**EXP1, **SEED}).train()
    x = torch.randint(0, V, (2, 16))
    calls = _dropout_calls(model, x)
    for i in range(EXP1["num_layers"]):
        assert sum(n for name, n in calls.items() if name.startswith(f"blocks.{i}.")) == 4
    assert sum(calls.values()) == 4 * EXP1["num_layers"]  # nothing outside the blocks: no embedding dropout
    # the block's input is the plain sum of the embeddings, in training mode too
    seen = {}
    hook = model.blocks[0].register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    with torch.no_grad():
        model(x)
        assert torch.equal(seen["x"], model.tok_emb(x) + model.pos_emb(torch.arange(16)))
    hook.remove()
    # and the attention weights get dropout p inside scaled_dot_product_attention
    ps = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, dropout_p=0.0, **kw: ps.append(dropout_p) or real(*a, dropout_p=dropout_p, **kw))
    with torch.no_grad():
        model(x)
        model.eval()
        model(x)
    assert ps == [0.3, 0.3, 0.0, 0.0]
    # the GPT-2 layout: attention output + FFN output per block, and the embeddings
    gpt2 = build_model(EXP1).train()
    calls = _dropout_calls(gpt2, x)
    assert calls.pop("drop") == 1 and sum(calls.values()) == 2 * EXP1["num_layers"]


def test_torch_default_init_matches_pytorchs_own_statistics():
    torch.manual_seed(0)
    model = build_model({**EXP3, **SEED})
    d = EXP3["d_model"]
    assert model.tok_emb.weight.std().item() == pytest.approx(1.0, abs=0.01)
    assert model.tok_emb.weight.mean().abs().item() < 0.01
    assert model.pos_emb.weight.std().item() == pytest.approx(1.0, abs=0.02)
    bound = 1 / math.sqrt(d)
    assert model.out_bias.abs().max().item() <= bound and model.out_bias.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 6 * EXP3["num_layers"]
    for m in linears:
        b = 1 / math.sqrt(m.in_features)  # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert m.weight.abs().max().item() <= b and m.bias.abs().max().item() <= b
        assert m.weight.std().item() == pytest.approx(b / math.sqrt(3), rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones(d)) and torch.equal(m.bias, torch.zeros(d))
            assert m.eps == 1e-5
    # GPT-2 init for contrast: N(0, 0.02), zero biases
    gpt2 = build_model(EXP3)
    assert gpt2.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert torch.count_nonzero(gpt2.out_bias) == 0


# ------------------------------------------------------------------ the machinery works in the seed layout


def test_fused_loss_equals_the_logits_path_in_the_seed_layout():
    torch.manual_seed(0)
    model = build_model({**TINY, **SEED}).train()
    g = torch.Generator().manual_seed(3)
    x, y = (torch.randint(0, TINY["vocab_size"], (3, 30), generator=g) for _ in range(2))
    torch.manual_seed(1)
    ref = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    ref.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout masks
    fused = model(x, targets=y)
    fused.backward()
    assert fused.item() == pytest.approx(ref.item(), rel=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], atol=1e-6, rtol=1e-4)


def test_greedy_decoding_with_the_kv_cache_equals_without_in_the_seed_layout():
    torch.manual_seed(4)
    model = build_model({**TINY, **SEED}).eval()
    with torch.no_grad():  # sharper blocks, so the next token depends on the context, not only the last token
        for name, p in model.named_parameters():
            if p.dim() == 2 and "emb" not in name:
                p.mul_(8)
    prompt = torch.randint(0, TINY["vocab_size"], (1, 5))
    with torch.no_grad():
        seq = prompt
        for _ in range(20):
            seq = torch.cat([seq, model(seq)[:, -1:].argmax(-1)], 1)
        cache = model.new_kv_cache(1)
        cached, logits = prompt, model(prompt, kv_cache=cache)
        for _ in range(20):
            nxt = logits[:, -1:].argmax(-1)
            cached = torch.cat([cached, nxt], 1)
            logits = model(nxt, kv_cache=cache)
    assert cached.tolist() == seq.tolist()
    assert len(set(seq[0, 5:].tolist())) > 1  # a real sequence, not one token repeated


def test_the_seed_layout_compiles_without_graph_breaks():
    torch.manual_seed(0)
    model = build_model({**TINY, **SEED}).train()
    x = torch.randint(0, TINY["vocab_size"], (2, 16))
    logits = torch.compile(model, backend="aot_eager", fullgraph=True)(x)  # the whole model, no graph break
    assert logits.shape == (2, 16, TINY["vocab_size"])
    # the training path: the fused loss is left out of the graph on purpose (torch.compiler.disable)
    loss = torch.compile(model, backend="aot_eager")(x, targets=x)
    loss.backward()
    assert math.isfinite(loss.item()) and model.blocks[0].ff_in.weight.grad is not None


# ------------------------------------------------------------------ key mapping, configs


def test_seed_key_mapping_round_trips_and_refuses_foreign_or_untied_dicts():
    ref = reference(TINY)
    sd = ref.state_dict()
    assert set(to_seed_state_dict(from_seed_state_dict(sd))) == set(sd)
    wrapped = {f"module.{k}": v for k, v in sd.items()}  # nn.DataParallel (exp4)
    assert from_seed_state_dict(wrapped).keys() == from_seed_state_dict(sd).keys()
    assert seed_shapes(sd) == dict(vocab_size=97, max_seq_len=32, d_model=16, d_ff=32, num_layers=2)
    with pytest.raises(ValueError, match="unknown keys blocks.0.attention.mask"):
        from_seed_state_dict({**sd, "blocks.0.attention.mask": torch.ones(1)})
    assert "blocks.0.attention.mask" not in from_seed_state_dict({**sd, "blocks.0.attention.mask": torch.ones(1)},
                                                                 strict=False)
    with pytest.raises(ValueError, match="tied head"):
        from_seed_state_dict({**sd, "lm_head.weight": torch.zeros_like(sd["lm_head.weight"])})


def test_seed_settings_are_exp1_to_exp6s_defaults_and_validated():
    from tui_lab.config import load_experiments
    from tui_lab.config.schema import ModelConfig

    cfg = load_experiments(ROOT / "experiments.toml")
    for n in range(1, 7):
        m = cfg.experiments[f"exp{n}"].model
        assert (m.activation, m.dropout_layout, m.init, m.layer_norm_eps) == ("relu", "seed", "torch_default", 1e-5)
    assert cfg.experiments["demo"].model.init == "gpt2"
    exp7 = cfg.experiments["exp7"].model
    assert (exp7.dropout, exp7.init) == (0.1, "torch_default")
    with pytest.raises(ValueError, match="dropout_layout"):
        ModelConfig.model_validate({**TINY, "dropout_layout": "nanogpt"})


# ------------------------------------------------------------------ evaluation, sanity


def test_evaluation_records_the_seed_scripts_mean_of_batch_means_beside_the_exact_loss():
    from tui_lab.train.evaluate import evaluate

    torch.manual_seed(0)
    model = build_model({**TINY, **SEED}).eval()
    seq, batch = 8, 3
    ids = np.random.default_rng(0).integers(0, 97, 7 * seq + 5).astype(np.int64)  # 7 full windows + a tail
    res = evaluate(model, ids, seq, batch, "cpu")
    windows = [ids[s : s + seq + 1] for s in range(0, len(ids) - seq, seq)]
    with torch.no_grad():
        losses = [F.cross_entropy(model(torch.tensor(w[None, :-1]))[0], torch.tensor(w[1:]), reduction="none")
                  for w in windows]
        tail = torch.tensor(ids[7 * seq :])
        tail_loss = F.cross_entropy(model(tail[None, :-1])[0], tail[1:], reduction="none")
    exact = torch.cat(losses + [tail_loss]).mean().item()
    batch_means = [torch.cat(losses[i : i + batch]).mean().item() for i in range(0, 7, batch)]  # 3 + 3 + 1 windows
    assert res.val_loss == pytest.approx(exact, rel=1e-6) and res.n_tokens == 7 * seq + 4
    assert res.val_loss_seed_style == pytest.approx(sum(batch_means) / 3, rel=1e-6)
    assert res.val_ppl_seed_style == pytest.approx(math.exp(res.val_loss_seed_style), rel=1e-9)
    assert abs(res.val_loss_seed_style - res.val_loss) > 1e-4  # the two definitions really differ here


@pytest.mark.parametrize("cfg", [EXP1, EXP3], ids=["exp1", "exp3"])
@pytest.mark.parametrize("init", ["torch_default", "gpt2"])
def test_sanity_init_check_names_the_init_that_explains_the_loss(init, cfg):
    from tui_lab.train.sanity import check_init_loss

    torch.manual_seed(0)
    model = build_model({**cfg, **SEED, "init": init})
    val = np.random.default_rng(0).integers(0, V, 2000)
    check = check_init_loss(model, val, V, T)
    assert check.ok, check.detail
    assert f"init = {init}" in check.detail and "ln(vocab_size) = 10.825" in check.detail
    if init == "torch_default":
        assert "explained by init = torch_default" in check.detail
    # a model that claims the other init is caught
    other = "gpt2" if init == "torch_default" else "torch_default"
    model.config = model.config.model_copy(update={"init": other})
    bad = check_init_loss(model, val, V, T)
    assert not bad.ok and f"init = {init}" in bad.detail


# ------------------------------------------------------------------ exp7 (deepseek): the points taken from its code

EXP7_SMALL = dict(kind="deepseek", vocab_size=97, max_seq_len=32, d_model=32, num_heads=4, d_ff=48, num_layers=2,
                  q_lora_rank=16, kv_lora_rank=12, dropout=0.1, init="torch_default")


def test_exp7_norm_eps_are_its_codes():
    """Block and final norms: torch.nn.RMSNorm's default eps; the latent norms: 1e-6. Inputs of
    root-mean-square 1e-4 make the eps decide the output."""
    torch.manual_seed(0)
    model = build_model(EXP7_SMALL)
    x = 1e-4 * torch.randn(3, 32)
    for norm in (model.blocks[0].attn_norm, model.blocks[1].mlp_norm, model.norm):
        torch.testing.assert_close(norm(x), nn.RMSNorm(32)(x))
    q = 1e-4 * torch.randn(3, 16)
    torch.testing.assert_close(model.blocks[0].attn.q_norm(q), q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_exp7_rope_pairs_give_the_same_scores_as_its_halves_layout():
    """exp7's attention (DeepSeek-V3's modelling code) regroups each head's pairs (2i, 2i+1)
    into halves and rotates with ``rotate_half``; tui-lab rotates the interleaved pairs in
    place. The vectors are permuted alike for queries and keys, so the scores agree."""
    from tui_lab.models.layers import apply_rope, rope_tables

    g = torch.Generator().manual_seed(0)
    B, H, L, D = 1, 2, 12, 8
    q, k = torch.randn(B, H, L, D, generator=g), torch.randn(B, 1, L, D, generator=g)
    freqs = torch.outer(torch.arange(L, dtype=torch.float32), 1.0 / 10_000 ** (torch.arange(0, D, 2).float() / D))
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()

    def halves(x):
        x = x.reshape(*x.shape[:-1], D // 2, 2).transpose(-1, -2).reshape(x.shape)
        rotated = torch.cat([-x[..., D // 2 :], x[..., : D // 2]], -1)
        return x * cos + rotated * sin

    c, s = rope_tables(D, L)
    torch.testing.assert_close(apply_rope(q, c, s) @ apply_rope(k, c, s).transpose(-1, -2),
                               halves(q) @ halves(k).transpose(-1, -2), atol=1e-5, rtol=1e-5)


def test_exp7_dropout_places_and_init_follow_its_code(monkeypatch):
    torch.manual_seed(0)
    model = build_model(EXP7_SMALL).train()
    calls = _dropout_calls(model, torch.randint(0, 97, (2, 16)))
    # scaled embedding, attention output and MLP branch per block, after the final norm
    assert calls == {"drop": 1, "out_drop": 1, **{f"blocks.{i}.{m}": 1 for i in range(2) for m in ("attn.resid_dropout", "drop")}}
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            b = 1 / math.sqrt(m.in_features)
            assert m.weight.abs().max().item() <= b and m.weight.std().item() == pytest.approx(b / math.sqrt(3), rel=0.1)
            assert m.bias is None or m.bias.abs().max().item() <= b

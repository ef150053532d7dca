"""The static KV cache: same greedy tokens as the sliced cache it replaced (both families,
across sliding windows), fixed shapes and no host syncs in a decode step (one graph,
captured once, reused at every position, as a CUDA graph needs)."""

from __future__ import annotations

import pytest
import torch

from tui_lab.data import load_tokenizer
from tui_lab.generate import Generator, SamplingParams
from tui_lab.models import KVCache, SlicedKVCache, build_model

CFG = {
    "gpt": dict(kind="gpt", vocab_size=256, max_seq_len=32, d_model=32, num_heads=4, d_ff=64, num_layers=2),
    "deepseek": dict(kind="deepseek", vocab_size=256, max_seq_len=32, d_model=32, num_heads=2, d_ff=64,
                     num_layers=2, q_lora_rank=16, kv_lora_rank=16),
}
KINDS = ["gpt", "deepseek"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_of(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(CFG[kind]).eval()


@pytest.mark.parametrize("kind", KINDS)
def test_static_cache_buffers_are_fixed_and_preallocated(kind):
    model = model_of(kind)
    cache = model.new_kv_cache(2)
    assert isinstance(cache, KVCache) and cache.length == 0
    heads = CFG[kind]["num_heads"]
    k_heads = 1 if kind == "deepseek" else heads  # MLA: one rotated key shared by the heads
    assert cache.k.shape == (2, 2, k_heads, 32, 32 // heads)
    assert cache.v.shape == (2, 2, heads, 32, 32 // heads)
    k_ptr = cache.k.data_ptr()
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 10)), kv_cache=cache)
        model(torch.randint(0, 256, (2, 1)), kv_cache=cache)
    assert cache.length == 11 and int(cache.pos) == 11
    assert cache.k.data_ptr() == k_ptr  # written in place
    assert isinstance(model.new_kv_cache(1, static=False), SlicedKVCache)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("capturable", [False, True])
def test_static_cache_logits_equal_the_full_forward(kind, capturable):
    model = model_of(kind)
    x = torch.randint(0, 256, (2, 30))
    with torch.no_grad():
        full = model(x)
        cache = model.new_kv_cache(2, capturable=capturable)
        parts = [model(x[:, :12], kv_cache=cache)]
        parts += [model(x[:, t : t + 1], kv_cache=cache) for t in range(12, 25)]
        parts.append(model(x[:, 25:], kv_cache=cache))
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-4, rtol=1e-4)


def test_eager_static_cache_attends_the_filled_slots_and_capturable_all():
    """Eager decoding reads keys [:length + T] (what the tokens so far cost); the capturable
    mode reads all max_seq_len slots with the same mask (fixed shapes for a graph)."""
    for capturable, expect in ((False, 11), (True, 32)):
        cache = KVCache(1, 1, 2, 32, 4, 4, "cpu", torch.float32, capturable=capturable)
        cache.positions(10)
        cache.update(0, torch.zeros(1, 2, 10, 4), torch.zeros(1, 2, 10, 4))
        cache.commit(10)
        cache.advance(10)
        cache.positions(1)
        k, v, mask = cache.update(0, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))
        assert k.shape[2] == v.shape[2] == expect and bool(k[0, 0, 10].eq(1).all())
        if capturable:  # the slots after position 10 are masked out
            assert bool(mask[0, :11].eq(0).all()) and bool(mask[0, 11:].eq(float("-inf")).all())
        else:
            assert mask is None  # one query over the filled slots sees every one


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prompt,n", [("hello", 25), ("0123456789", 80)])  # 80: slides in the 32-token window
def test_static_cache_gives_the_sliced_cache_tokens(kind, prompt, n):
    model = model_of(kind)
    tok = load_tokenizer("byte")
    params = SamplingParams(temperature=0, max_new_tokens=n)
    static = Generator(model, tok).complete(prompt, params)
    sliced = Generator(model, tok, static_kv_cache=False).complete(prompt, params)
    assert static.token_ids == sliced.token_ids and len(static.token_ids) == n
    assert static.slides == sliced.slides and (static.slides >= 2) == (n == 80)
    sampled = SamplingParams(temperature=1.0, top_k=20, repetition_penalty=1.2, max_new_tokens=n, seed=5)
    assert (Generator(model, tok).complete(prompt, sampled).token_ids
            == Generator(model, tok, static_kv_cache=False).complete(prompt, sampled).token_ids)


class GraphRecorder:
    """A torch.compile backend that records every graph it is given (and runs it eagerly)."""

    def __init__(self):
        self.graphs: list[list[tuple]] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs):
        self.graphs.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return gm.forward


@pytest.mark.parametrize("kind", KINDS)
def test_one_decode_step_is_one_graph_at_every_position(kind):
    """fullgraph=True fails on a host sync (.item(), int()) or data-dependent Python; a
    recompile would mean a shape or guard that changes with the position."""
    model = model_of(kind)
    rec = GraphRecorder()
    step = torch.compile(lambda tok, kv: model.step(tok, kv)[0, -1].argmax(), backend=rec, fullgraph=True)
    eager_cache, cache = model.new_kv_cache(1), model.new_kv_cache(1, capturable=True)
    prompt = torch.randint(0, 256, (1, 7))
    with torch.no_grad():
        model(prompt, kv_cache=cache)
        tok = model(prompt, kv_cache=eager_cache)[0, -1].argmax().view(1, 1)
        token = tok.clone()
        for _ in range(10):  # positions 7 … 16
            nxt = step(token, cache)
            token.copy_(nxt.view(1, 1))
            tok = model(tok, kv_cache=eager_cache)[0, -1].argmax().view(1, 1)
            assert int(nxt) == int(tok)
    assert len(rec.graphs) == 1  # captured once, reused at positions 7 … 16
    assert int(cache.pos) == 17


@pytest.mark.parametrize("kind", KINDS)
def test_generator_with_a_compiled_step_gives_the_same_tokens(kind, monkeypatch):
    rec = GraphRecorder()
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend=rec, fullgraph=True))
    model = model_of(kind)
    tok = load_tokenizer("byte")
    params = SamplingParams(temperature=0, max_new_tokens=60)  # slides in the 32-token window
    gen = Generator(model, tok, compile_step=True)
    compiled = gen.complete("abcdefghij", params)
    eager = Generator(model, tok, static_kv_cache=False).complete("abcdefghij", params)
    assert compiled.token_ids == eager.token_ids and compiled.slides >= 1
    again = gen.complete("abcdefghij", params)  # the same cache buffers, reset
    assert again.token_ids == eager.token_ids
    assert len(rec.graphs) == 1 and rec.graphs[0]  # one graph for every step, across slides and calls


@pytest.mark.parametrize("kind", KINDS)
def test_logits_to_keep_gives_the_last_positions_logits(kind):
    """A prompt's prefill computes the output layer for its last position only (the output
    layer is most of a small model's cost); the logits are those of the full forward."""
    model = model_of(kind)
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        full = model(x)
        last = model(x, logits_to_keep=1)
        cache = model.new_kv_cache(2)
        cached = model(x, kv_cache=cache, logits_to_keep=3)
    assert last.shape == (2, 1, 256) and torch.allclose(last, full[:, -1:], atol=1e-5)
    assert cached.shape == (2, 3, 256) and torch.allclose(cached, full[:, -3:], atol=1e-5)

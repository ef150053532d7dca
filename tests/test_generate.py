"""Generation: sampling filters, KV-cache equivalence, presets, sliding, the chat CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tui_lab.data import load_tokenizer
from tui_lab.generate import PRESETS, Generator, SamplingParams, fit_history
from tui_lab.generate.presets import after_bot, exp7_stop_rule
from tui_lab.generate.sampling import apply_repetition_penalty, top_k_filter, top_p_filter
from tui_lab.models import build_model
from tui_lab.train.checkpoint import save_weights

ROOT = Path(__file__).resolve().parents[1]
CFG = {
    "gpt": dict(kind="gpt", vocab_size=256, max_seq_len=32, d_model=32, num_heads=4, d_ff=64, num_layers=2),
    "deepseek": dict(kind="deepseek", vocab_size=256, max_seq_len=32, d_model=32, num_heads=2, d_ff=64,
                     num_layers=2, q_lora_rank=16, kv_lora_rank=16),
}


def generator(kind="gpt", **kw) -> Generator:
    torch.manual_seed(0)
    return Generator(build_model(CFG[kind]), load_tokenizer("byte"), "cpu", **kw)


def test_repetition_penalty_is_ctrl_style():
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = apply_repetition_penalty(logits, torch.tensor([0, 1, 1]), 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [False, False, True, True]
    assert torch.isinf(top_p_filter(logits, 0.7)).tolist() == [False, False, True, True]
    assert torch.isinf(top_p_filter(logits, 0.85)).tolist() == [False, False, False, True]
    assert torch.isinf(top_p_filter(logits, 0.1)).tolist() == [False, True, True, True]


def test_bad_sampling_values_are_refused():
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(max_new_tokens=0)):
        with pytest.raises(ValueError):
            SamplingParams(**bad).validate()


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_greedy_with_kv_cache_equals_without_token_for_token(kind):
    params = SamplingParams(temperature=0, max_new_tokens=25)
    a = generator(kind).complete("hello", params)
    b = generator(kind, use_kv_cache=False).complete("hello", params)
    assert a.token_ids == b.token_ids and len(a.token_ids) == 25


@pytest.mark.parametrize("kind", ["gpt", "deepseek"])
def test_generation_slides_past_max_seq_len_or_stops(kind):
    params = SamplingParams(temperature=1.0, max_new_tokens=100, seed=3)
    slid = generator(kind).complete("x" * 20, params)
    assert slid.n_tokens == 100 and slid.stop_reason == "max_new_tokens"  # 20 + 100 > 32 positions
    stopped = generator(kind, on_full="stop").complete("x" * 20, params)
    assert stopped.stop_reason == "max_seq_len" and stopped.n_tokens == 12


def test_seed_makes_sampling_reproducible():
    params = SamplingParams(temperature=1.0, top_k=20, max_new_tokens=30, seed=7)
    assert generator().complete("a", params).token_ids == generator().complete("a", params).token_ids
    other = generator().complete("a", params.with_(seed=8)).token_ids
    assert other != generator().complete("a", params).token_ids


def test_stream_yields_tokens_one_by_one_and_honours_should_stop():
    gen = generator()
    events = []
    for ev in gen.stream("hi", SamplingParams(temperature=1.0, max_new_tokens=50, seed=1),
                         should_stop=lambda: len(events) >= 5):
        events.append(ev)
    assert len(events) == 5 and gen.last_stats.stop_reason == "stopped"
    assert gen.last_stats.ttft_s is not None and gen.last_stats.tokens_per_s > 0


def test_stop_strings_cut_the_text():
    gen = generator()
    full = gen.complete("a", SamplingParams(temperature=0, max_new_tokens=20)).text
    stop = full[5:7]
    cut = gen.complete("a", SamplingParams(temperature=0, max_new_tokens=20, stop=(stop,)))
    assert cut.stop_reason == "stop string" and cut.text == full[: full.find(stop)]


def test_exp7_preset_rules():
    p = PRESETS["exp7"]
    assert p.prompt("hello there", [("old", "turn")]) == "Human: hello there"  # no history
    assert (p.params.temperature, p.params.top_p, p.params.repetition_penalty, p.params.max_new_tokens) == (0.3, 0.9, 1.1, 100)
    assert exp7_stop_rule([1, 2, 5, 5, 5]) == "same token 3 times"
    assert exp7_stop_rule([9, 1, 2, 3, 1, 2, 3]) == "repeated 3-token pattern"
    assert exp7_stop_rule([1, 2, 3, 4, 5, 6]) is None
    assert after_bot(" I am fine.\nBot: Hello! \n") == "Hello!"
    assert after_bot(" just text ") == "just text"


def test_chat_preset_keeps_history_within_the_window():
    p = PRESETS["chat"]
    history = [(f"question {i}", f"answer {i}") for i in range(50)]
    kept = fit_history(p, "now?", history, lambda s: list(s.encode()), max_seq_len=200, max_new_tokens=50)
    assert kept and kept[-1] == history[-1] and len(kept) < 50
    assert len(p.prompt("now?", kept).encode()) + 50 <= 200
    assert p.prompt("now?", kept).endswith("Human: now?\nBot:")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", "chat", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    model = build_model(CFG["gpt"])
    path = tmp_path / "run" / "checkpoints" / "best.safetensors"
    path.parent.mkdir(parents=True)
    save_weights(path, model, model.config, {"data": {"tokenizer": "byte"}, "experiment": "t"})
    return path


def test_chat_cli_json_answer_and_transcript(checkpoint):
    r = cli(str(checkpoint.parent.parent), "--prompt", "hello", "--json", "--seed", "1", "--max-new-tokens", "12",
            "--device", "cpu")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_tokens"] == 12 and out["tokens_per_s"] > 0 and out["ttft_s"] > 0
    assert set(out) >= {"text", "n_tokens", "tokens_per_s", "ttft_s"}
    chats = list((checkpoint.parent.parent / "chats").glob("*.jsonl"))
    assert len(chats) == 1 and json.loads(chats[0].read_text())["user"] == "hello"
    r2 = cli(str(checkpoint), "--prompt", "hello", "--json", "--temperature", "0", "--no-kv-cache", "--device", "cpu")
    r3 = cli(str(checkpoint), "--prompt", "hello", "--json", "--temperature", "0", "--device", "cpu")
    assert json.loads(r2.stdout)["text"] == json.loads(r3.stdout)["text"]


def test_chat_cli_streams_to_the_terminal(checkpoint):
    r = cli(str(checkpoint), "--prompt", "hello", "--max-new-tokens", "5", "--device", "cpu")
    assert r.returncode == 0 and r.stdout.startswith("hello") and "tokens/s" in r.stdout


def test_chat_cli_refuses_bad_checkpoints_without_running_them(tmp_path):
    r = cli(str(tmp_path / "absent.safetensors"), "--prompt", "x")
    assert r.returncode == 2 and "no such checkpoint" in r.stderr and "Traceback" not in r.stderr
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"model_config": CFG["gpt"], "model": Evil()}, evil)
    r = cli(str(evil), "--prompt", "x")
    assert r.returncode == 2 and "refused" in r.stderr and not marker.exists()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(b"\x00" * 5)
    r = cli(str(trunc), "--prompt", "x")
    assert r.returncode == 2 and "trunc.safetensors" in r.stderr and "Traceback" not in r.stderr
    r = cli(str(tmp_path), "--prompt", "x")
    assert r.returncode == 2 and "no checkpoint" in r.stderr

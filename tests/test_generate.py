"""Generation engine: KV-cache equivalence, sliding, sampling filters, seeds, streaming text,
presets, transcripts, checkpoint loading. Real models from ``build_model`` (random weights are
enough for the mechanics); a scripted stub model where the exact tokens matter."""

from __future__ import annotations

import json
from pathlib import Path

from types import SimpleNamespace

import pytest
import torch

from tui_lab.data import load_tokenizer
from tui_lab.chat import PRESETS, after_bot, fit_history
from tui_lab.chat.transcript import Transcript, Turn
from tui_lab.generate import GenerationError, Generator, SamplingParams, exp7_stop_rule, generate_text
from tui_lab.generate.engine import resolve_checkpoint
from tui_lab.generate.sampling import (apply_repetition_penalty, process_logits, sample_next, top_k_filter,
                                       top_p_filter)
from tui_lab.models import build_model
from tui_lab.models.checkpoint import CheckpointError, save_weights

CFG = {
    "gpt": dict(kind="gpt", vocab_size=256, max_seq_len=32, d_model=32, num_heads=4, d_ff=64, num_layers=2),
    "deepseek": dict(kind="deepseek", vocab_size=256, max_seq_len=32, d_model=32, num_heads=2, d_ff=64,
                     num_layers=2, q_lora_rank=16, kv_lora_rank=16),
}
KINDS = ["gpt", "deepseek"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def generator(kind="gpt", seed=0, **kw) -> Generator:
    torch.manual_seed(seed)
    return Generator(build_model(CFG[kind]), load_tokenizer("byte"), "cpu", **kw)


# --------------------------------------------------------------------------- a scripted model
class StubCache:
    def __init__(self):
        self.length = 0

    def reset(self):
        self.length = 0


class ScriptedModel(torch.nn.Module):
    """Predicts ``script[position + 1]`` at every position (a byte-level "model" whose greedy
    output is known); records the length of every forward pass."""

    def __init__(self, script: bytes, max_seq_len: int = 64):
        super().__init__()
        self.script = list(script)
        self.config = SimpleNamespace(max_seq_len=max_seq_len, vocab_size=256, kind="stub")
        self.calls: list[int] = []

    def new_kv_cache(self, batch_size, device=None, dtype=None):
        return StubCache()

    def forward(self, idx, kv_cache=None, logits_to_keep=0):
        B, T = idx.shape
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > self.config.max_seq_len:
            raise ValueError("past max_seq_len")
        self.calls.append(T)
        logits = torch.zeros(B, T, 256)
        for t in range(T):
            logits[:, t, self.script[(start + t + 1) % len(self.script)]] = 10.0
        if kv_cache is not None:
            kv_cache.length += T
        return logits[:, -logits_to_keep:] if logits_to_keep else logits


def scripted(script: str, **kw) -> Generator:
    return Generator(ScriptedModel(script.encode("utf-8")), load_tokenizer("byte"), "cpu", **kw)


# --------------------------------------------------------------------------- sampling
def test_repetition_penalty_is_ctrl_style():
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = apply_repetition_penalty(logits, torch.tensor([0, 1, 1]), 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]  # positive divided, negative multiplied, each id once
    assert logits.tolist() == [2.0, -2.0, 1.0, 0.5]  # the input is untouched
    assert apply_repetition_penalty(logits, [2], 1.0) is logits  # 1.0 = off
    # a penalty can change the greedy choice: token 0 was generated, token 2 wins now
    assert sample_next(torch.tensor([2.0, 0.0, 1.5]), SamplingParams(temperature=0, repetition_penalty=1.5), [0],
                       None) == 2


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [False, False, True, True]
    assert top_k_filter(logits, 0) is logits and top_k_filter(logits, 10) is logits
    assert torch.isinf(top_p_filter(logits, 0.7)).tolist() == [False, False, True, True]
    assert torch.isinf(top_p_filter(logits, 0.85)).tolist() == [False, False, False, True]
    assert torch.isinf(top_p_filter(logits, 0.1)).tolist() == [False, True, True, True]  # the top token stays
    assert not torch.isinf(top_p_filter(logits, 1.0)).any()
    shuffled = logits[[2, 0, 3, 1]]  # order in the vocabulary does not matter
    assert torch.isinf(top_p_filter(shuffled, 0.7)).tolist() == [True, False, True, False]


def test_temperature_sharpens_and_filters_compose():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    cold = torch.softmax(process_logits(logits, SamplingParams(temperature=0.5)), -1)
    hot = torch.softmax(process_logits(logits, SamplingParams(temperature=2.0)), -1)
    assert cold[0] > torch.softmax(logits, -1)[0] > hot[0]
    out = process_logits(logits, SamplingParams(temperature=1.0, top_k=3, top_p=0.5))
    assert torch.isinf(out).tolist() == [False, True, True, True]


def test_sampled_tokens_stay_inside_the_filters():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    gen = torch.Generator().manual_seed(0)
    drawn = {sample_next(logits, SamplingParams(temperature=1.0, top_p=0.65), [], gen) for _ in range(300)}
    assert drawn == {0, 1}
    drawn = {sample_next(logits, SamplingParams(temperature=1.0, top_k=3), [], gen) for _ in range(300)}
    assert drawn == {0, 1, 2}
    assert {sample_next(logits, SamplingParams(temperature=5.0, top_k=1), [], gen) for _ in range(50)} == {0}


def test_bad_sampling_values_are_refused():
    for bad in (dict(temperature=-1), dict(temperature=float("nan")), dict(top_p=0), dict(top_p=1.5),
                dict(top_k=-1), dict(repetition_penalty=0), dict(max_new_tokens=0)):
        with pytest.raises(ValueError):
            SamplingParams(**bad).validate()
    with pytest.raises(ValueError, match="on_full"):
        generator(on_full="wrap")


# --------------------------------------------------------------------------- KV cache and windows
@pytest.mark.parametrize("kind", KINDS)
def test_greedy_with_kv_cache_equals_without_token_for_token(kind):
    params = SamplingParams(temperature=0, max_new_tokens=25)
    a = generator(kind).complete("hello", params)
    b = generator(kind, use_kv_cache=False).complete("hello", params)
    assert a.token_ids == b.token_ids and len(a.token_ids) == 25


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_cache_equivalence_holds_across_slides(kind):
    params = SamplingParams(temperature=0, max_new_tokens=80)  # 10 + 80 tokens through a 32-token window
    a = generator(kind).complete("0123456789", params)
    b = generator(kind, use_kv_cache=False).complete("0123456789", params)
    assert a.slides >= 2 and a.slides == b.slides
    assert a.token_ids == b.token_ids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", KINDS)
def test_greedy_cache_equivalence_on_cuda(kind):
    params = SamplingParams(temperature=0, max_new_tokens=40)
    torch.manual_seed(0)
    model = build_model(CFG[kind]).cuda()
    a = Generator(model, load_tokenizer("byte"), "cuda").complete("hello", params)
    b = Generator(model, load_tokenizer("byte"), "cuda", use_kv_cache=False).complete("hello", params)
    assert a.token_ids == b.token_ids
    sampled = SamplingParams(temperature=1.0, top_p=0.9, repetition_penalty=1.1, max_new_tokens=20, seed=4)
    assert Generator(model, load_tokenizer("byte"), "cuda").complete("hi", sampled).n_tokens == 20


@pytest.mark.parametrize("kind", KINDS)
def test_generation_slides_past_max_seq_len_or_stops(kind):
    params = SamplingParams(temperature=1.0, max_new_tokens=100, seed=3)
    slid = generator(kind).complete("x" * 20, params)
    assert slid.n_tokens == 100 and slid.stop_reason == "max_new_tokens" and slid.slides > 0
    stopped = generator(kind, on_full="stop").complete("x" * 20, params)
    assert stopped.stop_reason == "max_seq_len" and stopped.n_tokens == 12  # 20 + 12 = 32 = max_seq_len
    long_prompt = generator(kind).complete("y" * 100, params.with_(max_new_tokens=5))  # prompt > window
    assert long_prompt.n_tokens == 5 and long_prompt.prompt_tokens == 31


def test_kv_cache_decodes_one_token_per_forward_pass():
    gen = scripted("abcdefghij" * 20)
    gen.complete("abc", SamplingParams(temperature=0, max_new_tokens=20))
    assert gen.model.calls == [3] + [1] * 19  # a prefill, then the newest token only
    gen = scripted("abcdefghij" * 20, use_kv_cache=False)
    gen.complete("abc", SamplingParams(temperature=0, max_new_tokens=20))
    assert gen.model.calls == list(range(3, 23))  # exp7's way: the whole sequence every time
    gen = scripted("abcdefghij" * 20)
    stats = gen.complete("abc", SamplingParams(temperature=0, max_new_tokens=100))  # 64-token window
    # slides at 65, 82 and 99 tokens, each a prefill of the last 48; every other step feeds one token
    assert stats.slides == 3 and gen.model.calls.count(48) == 3 and gen.model.calls.count(1) == 96


# --------------------------------------------------------------------------- seeds and streaming
def test_seed_makes_sampling_reproducible():
    params = SamplingParams(temperature=1.0, top_k=20, max_new_tokens=30, seed=7)
    first = generator().complete("a", params)
    assert first.seed == 7 and first.token_ids == generator().complete("a", params).token_ids
    assert generator().complete("a", params.with_(seed=8)).token_ids != first.token_ids
    unseeded = generator().complete("a", SamplingParams(temperature=1.0, max_new_tokens=30))
    again = generator().complete("a", SamplingParams(temperature=1.0, max_new_tokens=30, seed=unseeded.seed))
    assert unseeded.seed is not None and again.token_ids == unseeded.token_ids  # the seed used is reported


def test_stream_yields_tokens_one_by_one_and_honours_should_stop():
    gen = generator()
    events = []
    for ev in gen.stream("hi", SamplingParams(temperature=1.0, max_new_tokens=50, seed=1),
                         should_stop=lambda: len(events) >= 5):
        events.append(ev)
        assert gen.last_stats.n_tokens == len(events)  # live: the totals grow as tokens arrive
    assert len(events) == 5 and gen.last_stats.stop_reason == "stopped"
    assert [e.token_id for e in events] == gen.last_stats.token_ids
    assert gen.last_stats.ttft_s is not None and 0 < gen.last_stats.ttft_s <= gen.last_stats.elapsed_s
    assert gen.last_stats.tokens_per_s > 0


def test_a_stream_the_caller_abandons_reads_stopped():
    """A UI worker that dies mid-reply (its screen closed) must not leave the stats looking
    unfinished: closing the iterator, or leaving it on an exception, marks the reply stopped."""
    gen = generator()
    it = gen.stream("hi", SamplingParams(temperature=1.0, max_new_tokens=50, seed=1))
    next(it), next(it)
    assert gen.last_stats.stop_reason == ""  # still streaming
    it.close()
    assert gen.last_stats.stop_reason == "stopped" and gen.last_stats.n_tokens == 2
    with pytest.raises(RuntimeError):
        for _ in gen.stream("hi", SamplingParams(temperature=1.0, max_new_tokens=50, seed=1)):
            raise RuntimeError("the consumer failed")
    assert gen.last_stats.stop_reason == "stopped"


def test_stream_does_not_leave_grad_disabled_between_tokens():
    for _ in generator().stream("hi", SamplingParams(temperature=0, max_new_tokens=3)):
        assert torch.is_grad_enabled()


def test_utf8_characters_split_across_tokens_arrive_whole():
    text = "héllo wörld ✓ 日本"
    gen = scripted("." + text)
    events = list(gen.stream(".", SamplingParams(temperature=0, max_new_tokens=len(text.encode()))))
    assert len(events) == len(text.encode())  # one event per byte token
    assert "".join(e.text for e in events) == text == gen.last_stats.text
    assert "\ufffd" not in gen.last_stats.text
    assert [e.text for e in events[:3]] == ["h", "", "é"]  # the 2-byte é comes with its second byte


def test_a_cut_utf8_character_at_the_end_is_replaced():
    gen = scripted(".ab✓")
    stats = gen.complete(".", SamplingParams(temperature=0, max_new_tokens=3))  # a, b and the first byte of ✓
    assert stats.text == "ab\ufffd"


def test_stop_strings_cut_the_text_and_are_never_streamed():
    gen = scripted(".Hello there\nHuman: more\nBot: x")
    events = list(gen.stream(".", SamplingParams(temperature=0, max_new_tokens=40, stop=("\nHuman:",))))
    assert gen.last_stats.stop_reason == "stop string" and gen.last_stats.text == "Hello there"
    assert "".join(e.text for e in events) == "Hello there"  # the "\nHuman" prefix was held back, then dropped
    # held-back text that turns out not to be a stop string is released
    gen = scripted(".a\nHi\nHuman: x")
    events = list(gen.stream(".", SamplingParams(temperature=0, max_new_tokens=40, stop=("\nHuman:",))))
    pieces = [e.text for e in events]
    assert "".join(pieces) == "a\nHi" and pieces[:4] == ["a", "", "", "\nHi"]


def test_stop_strings_on_a_real_model():
    gen = generator()
    full = gen.complete("a", SamplingParams(temperature=0, max_new_tokens=20)).text
    stop = full[5:7]
    cut = gen.complete("a", SamplingParams(temperature=0, max_new_tokens=20, stop=(stop,)))
    assert cut.stop_reason == "stop string" and cut.text == full[: full.find(stop)]


def test_end_of_text_stops_and_is_not_shown():
    class Tok:
        eot_token = ord("!")

        def encode(self, s):
            return list(s.encode())

        def decode_bytes(self, ids):
            return bytes(ids)

    gen = Generator(ScriptedModel(b".abc!def"), Tok(), "cpu")
    stats = gen.complete(".", SamplingParams(temperature=0, max_new_tokens=20))
    assert stats.text == "abc" and stats.stop_reason == "eos" and stats.n_tokens == 3


def test_generate_text_for_the_trainer_restores_train_mode():
    torch.manual_seed(0)
    model = build_model(CFG["gpt"]).train()
    text = generate_text(model, load_tokenizer("byte"), "The cat", max_new_tokens=10, seed=1)
    assert isinstance(text, str) and model.training
    assert text == generate_text(model, load_tokenizer("byte"), "The cat", max_new_tokens=10, seed=1)


# --------------------------------------------------------------------------- presets
def test_exp7_preset_rules():
    p = PRESETS["exp7"]
    assert p.prompt("hello there", [("old", "turn")]) == "Human: hello there"  # no history
    assert not p.keeps_history and p.on_full == "stop"
    assert (p.params.temperature, p.params.top_p, p.params.repetition_penalty, p.params.max_new_tokens) == \
        (0.3, 0.9, 1.1, 100)
    assert exp7_stop_rule([1, 2, 5, 5, 5]) == "same token 3 times"
    assert exp7_stop_rule([5, 5]) is None and exp7_stop_rule([5, 5, 6, 5]) is None
    assert exp7_stop_rule([9, 1, 2, 3, 1, 2, 3]) == "repeated 3-token pattern"
    assert exp7_stop_rule([1, 2, 3, 4, 5, 6]) is None
    assert after_bot(" I am fine.\nBot: Hello! \n") == "Hello!"
    assert after_bot(" just text ") == "just text"


def test_exp7_stop_rules_end_a_real_generation():
    gen = scripted(".Bot: hi abcabcabc")  # 'abc' repeats: exp7 stops on the repeated 3-token pattern
    p = PRESETS["exp7"]
    stats = gen.complete(".", p.params.with_(temperature=0), stop_rule=p.stop_rule)
    assert stats.stop_reason == "repeated 3-token pattern" and stats.text == "Bot: hi abcabc"
    assert p.reply(stats.text) == "hi abcabc"
    gen = scripted(".ok zzzz")
    stats = gen.complete(".", p.params.with_(temperature=0), stop_rule=p.stop_rule)
    assert stats.stop_reason == "same token 3 times" and p.reply(stats.text) == "ok zzz"


def test_completion_preset_continues_the_prompt():
    p = PRESETS["completion"]
    assert p.prompt("The history of India is", [("a", "b")]) == "The history of India is"
    assert not p.keeps_history and p.reply(" is old") == " is old"


def test_chat_preset_keeps_history_within_the_window():
    p = PRESETS["chat"]
    history = [(f"question {i}", f"answer {i}") for i in range(50)]
    kept = fit_history(p, "now?", history, lambda s: list(s.encode()), max_seq_len=200, max_new_tokens=50)
    assert kept and kept[-1] == history[-1] and len(kept) < 50
    assert len(p.prompt("now?", kept).encode()) + 50 <= 200
    assert p.prompt("now?", kept).endswith("Human: now?\nBot:")
    assert "\nHuman:" in p.params.stop  # the model's own next "Human:" turn ends the reply


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture
def save(tiny_checkpoint):
    """``save(tmp_path, kind, data, seed, name)``: this module's ``CFG[kind]`` as a checkpoint in ``<name>/``."""
    def make(tmp_path: Path, kind="gpt", data=None, seed=0, name="run") -> Path:
        return tiny_checkpoint(name, seed=seed, config=CFG[kind],
                               meta={"data": data or {"tokenizer": "byte"}, "experiment": "t"})
    return make


@pytest.mark.parametrize("kind", KINDS)
def test_from_checkpoint_rebuilds_the_model_from_a_run_folder_or_a_file(tmp_path, kind, save):
    ckpt = save(tmp_path, kind)
    a = Generator.from_checkpoint(ckpt.parent.parent, "cpu")
    b = Generator.from_checkpoint(ckpt, "cpu")
    assert a.metadata["checkpoint"] == str(ckpt) and a.metadata["experiment"] == "t"
    assert a.model.config.kind == kind and a.tokenizer.name == "byte"
    params = SamplingParams(temperature=0, max_new_tokens=10)
    torch.manual_seed(0)
    direct = Generator(build_model(CFG[kind]), load_tokenizer("byte"), "cpu").complete("hi", params)
    assert a.complete("hi", params).token_ids == b.complete("hi", params).token_ids == direct.token_ids


def test_from_checkpoint_errors_are_clear(tmp_path, save):
    with pytest.raises(GenerationError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(GenerationError, match="no checkpoint in this folder"):
        Generator.from_checkpoint(tmp_path / "empty-run", "cpu")
    ckpt = save(tmp_path)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(ckpt.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        Generator.from_checkpoint(truncated, "cpu")


def test_a_tokenizer_larger_than_the_model_is_refused(tmp_path, gpt2_dir, save):
    ckpt = save(tmp_path, data={"tokenizer": "gpt2", "tokenizer_path": str(gpt2_dir)})  # vocab 256 model
    with pytest.raises(GenerationError, match="more than the model's vocab_size 256"):
        Generator.from_checkpoint(ckpt, "cpu")


def test_gpt2_checkpoint_streams_text_through_the_bpe(tmp_path, gpt2_dir):
    torch.manual_seed(0)
    cfg = dict(CFG["gpt"], vocab_size=50257, d_model=16, num_heads=2, max_seq_len=64)
    model = build_model(cfg)
    path = tmp_path / "gpt2run" / "checkpoints" / "best.safetensors"
    path.parent.mkdir(parents=True)
    save_weights(path, model, model.config, {"data": {"tokenizer": "gpt2", "tokenizer_path": "/moved/away"}})
    with pytest.raises(Exception, match="moved"):
        Generator.from_checkpoint(path, "cpu")
    gen = Generator.from_checkpoint(path, "cpu", tokenizer_path=str(gpt2_dir))  # --tokenizer-path
    assert gen.tokenizer.name == "gpt2" and gen.tokenizer.eot_token == 50256
    events = list(gen.stream("The history of India is", SamplingParams(temperature=0.8, top_k=50,
                                                                       max_new_tokens=20, seed=0)))
    assert gen.last_stats.prompt_tokens == 5
    assert "".join(e.text for e in events) == gen.last_stats.text and gen.last_stats.n_tokens <= 20


# --------------------------------------------------------------------------- transcripts
def test_transcript_saves_jsonl_in_the_run_and_exports_markdown(tmp_path, save):
    ckpt = save(tmp_path)
    t = Transcript(ckpt)
    assert t.folder == tmp_path / "run" / "chats"
    t.add(Turn("hello", "hi there", "chat", {"n_tokens": 3, "tokens_per_s": 12.5, "ttft_s": 0.01}, str(ckpt)))
    t.add(Turn("and?", "*bold* reply", "chat", {}, str(ckpt)))
    lines = [json.loads(x) for x in t.path.read_text().splitlines()]
    assert [x["user"] for x in lines] == ["hello", "and?"] and lines[0]["stats"]["n_tokens"] == 3
    back = Transcript.load(t.path)
    assert back.history() == [("hello", "hi there"), ("and?", "*bold* reply")] and back.checkpoint == ckpt
    md = t.export_markdown()
    assert md == t.path.with_suffix(".md")
    text = md.read_text()
    assert "**You** (chat):\n\n```text\nhello\n```" in text and "**Model**:\n\n```text\nhi there\n```" in text
    assert "```text\n*bold* reply\n```" in text and "12.5 tokens/s" in text  # model text is never Markdown
    assert Transcript(ckpt).path != t.path  # a second session gets its own file


def test_transcript_survives_a_read_only_folder(tmp_path):
    blocker = tmp_path / "chats"
    blocker.write_text("a file where the folder should be")
    t = Transcript(tmp_path / "model.safetensors")
    t.add(Turn("q", "a", "completion"))
    assert t.history() == [("q", "a")] and t.save_error

"""`tui-lab chat`: one answer (--prompt, --json), the REPL, presets, and clean errors for bad
checkpoints (missing, a pickle that would run code, truncated). Most tests run the command in
process (Typer's CliRunner); two run it as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import TINY_MODEL
from typer.testing import CliRunner

from tui_lab.cli import app
from tui_lab.models import build_model
from tui_lab.models.checkpoint import save_weights

ROOT = Path(__file__).resolve().parents[1]
CFG = TINY_MODEL


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint("run")


def chat(*args: str, input: str | None = None):
    device = [] if "--device" in args else ["--device", "cpu"]
    return CliRunner().invoke(app, ["chat", *args, *device], input=input)


def chat_json(*args: str) -> dict:
    r = chat(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def subprocess_chat(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_lab", "chat", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, input=input)


def test_json_answer_has_text_tokens_speed_and_ttft_and_is_saved_with_the_run(checkpoint):
    run = checkpoint.parent.parent
    out = chat_json(str(run), "--prompt", "hello", "--seed", "1", "--max-new-tokens", "12")
    assert {"text", "n_tokens", "tokens_per_s", "ttft_s", "reply", "stop_reason", "seed"} <= set(out)
    assert out["n_tokens"] == 12 and out["tokens_per_s"] > 0 and 0 < out["ttft_s"] < 60
    assert out["checkpoint"] == str(checkpoint) and out["kv_cache"] is True and out["seed"] == 1
    chats = list((run / "chats").glob("*.jsonl"))
    assert len(chats) == 1
    turn = json.loads(chats[0].read_text())
    assert turn["user"] == "hello" and turn["params"]["seed"] == 1 and turn["stats"]["n_tokens"] == 12
    assert chat_json(str(run), "--prompt", "hello", "--seed", "1", "--max-new-tokens", "12")["text"] == out["text"]


def test_no_kv_cache_gives_the_same_greedy_text(checkpoint):
    a = chat_json(str(checkpoint), "--prompt", "hello", "--temperature", "0", "--max-new-tokens", "90")
    b = chat_json(str(checkpoint), "--prompt", "hello", "--temperature", "0", "--max-new-tokens", "90",
                  "--no-kv-cache")
    assert b["kv_cache"] is False and a["text"] == b["text"] and a["n_tokens"] == 90  # past the 64-token window


def test_sampling_options_reach_the_sampler(checkpoint):
    greedy = chat_json(str(checkpoint), "--prompt", "abc", "--temperature", "0", "--max-new-tokens", "20")
    top1 = chat_json(str(checkpoint), "--prompt", "abc", "--temperature", "1.5", "--top-k", "1",
                     "--max-new-tokens", "20", "--seed", "5")
    assert top1["text"] == greedy["text"]  # top-k 1 is greedy whatever the temperature
    tight = chat_json(str(checkpoint), "--prompt", "abc", "--temperature", "1.5", "--top-p", "0.000001",
                      "--max-new-tokens", "20", "--seed", "5")
    assert tight["text"] == greedy["text"]  # so is a tiny nucleus
    pen = chat_json(str(checkpoint), "--prompt", "abc", "--temperature", "0", "--repetition-penalty", "5",
                    "--max-new-tokens", "20")
    assert pen["text"] != greedy["text"]
    stop_at = greedy["text"][4:6]
    cut = chat_json(str(checkpoint), "--prompt", "abc", "--temperature", "0", "--max-new-tokens", "20",
                    "--stop", stop_at)
    assert cut["stop_reason"] == "stop string" and cut["text"] == greedy["text"][: greedy["text"].find(stop_at)]


def test_exp7_preset_follows_its_rules(checkpoint):
    out = chat_json(str(checkpoint), "--prompt", "hello", "--preset", "exp7", "--seed", "0")
    assert out["prompt"] == "Human: hello" and out["preset"] == "exp7"
    assert out["n_tokens"] <= 100
    assert out["stop_reason"] in {"max_new_tokens", "same token 3 times", "repeated 3-token pattern", "max_seq_len"}
    expected = out["text"].split("Bot:", 1)[1].strip() if "Bot:" in out["text"] else out["text"].strip()
    assert out["reply"] == expected
    # exp7 stops at max_seq_len instead of sliding: 'Human: ' + 50 characters leave room for 7 tokens
    long = chat_json(str(checkpoint), "--prompt", "x" * 50, "--preset", "exp7", "--temperature", "1", "--seed", "0")
    assert long["n_tokens"] == 7 and long["stop_reason"] == "max_seq_len"


def test_plain_answer_streams_the_continuation_and_a_stats_line(checkpoint):
    r = chat(str(checkpoint), "--prompt", "The history of India is", "--max-new-tokens", "8", "--seed", "0")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("The history of India is")
    assert "8 tokens" in r.stdout and "tokens/s" in r.stdout and "time to first token" in r.stdout


def test_repl_streams_replies_and_keeps_chat_history(checkpoint):
    r = chat(str(checkpoint), "--preset", "chat", "--max-new-tokens", "5", "--seed", "0",
             input="hello\n\nhow are you?\n/reset\nagain\n/quit\n")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("you> ") == 6 and r.stdout.count("tokens/s") == 3
    assert "history cleared" in r.stdout and "transcript:" in r.stdout
    files = sorted((checkpoint.parent.parent / "chats").glob("*.jsonl"), key=lambda f: f.stat().st_mtime_ns)
    assert len(files) == 2  # /reset starts a new chat: a new transcript file, as ctrl+r in the app
    turns = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert [t["user"] for t in turns] == ["hello", "how are you?", "again"]
    assert [len(t["stats"]) > 0 for t in turns] == [True] * 3 and {t["format"] for t in turns} == {1}


@pytest.mark.parametrize("args, words", [
    (["--preset", "nope"], "known presets are exp7, completion, chat"),
    (["--temperature", "-1"], "temperature must be >= 0"),
    (["--top-p", "0"], "top_p must be in (0, 1]"),
    (["--max-new-tokens", "0"], "max_new_tokens must be >= 1"),
    (["--json"], "--json needs --prompt"),
])
def test_bad_options_exit_2_with_a_message(checkpoint, args, words):
    r = chat(str(checkpoint), *(["--prompt", "x"] if "--json" not in args else []), *args)
    assert r.exit_code == 2 and words in r.stderr, r.output


def test_bad_checkpoints_exit_2_without_running_anything(tmp_path):
    r = chat(str(tmp_path / "absent.safetensors"), "--prompt", "x")
    assert r.exit_code == 2 and "no such checkpoint" in r.stderr
    (tmp_path / "empty-run").mkdir()
    r = chat(str(tmp_path / "empty-run"), "--prompt", "x")
    assert r.exit_code == 2 and "no checkpoint in this folder" in r.stderr
    torch.manual_seed(0)
    model = build_model(CFG)
    good = tmp_path / "good.safetensors"
    save_weights(good, model, model.config, {"data": {"tokenizer": "byte"}})
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    r = chat(str(trunc), "--prompt", "x")
    assert r.exit_code == 2 and "trunc.safetensors" in r.stderr and "truncated or corrupt" in r.stderr
    r = chat(str(good), "--prompt", "x", "--device", "nonsense")
    assert r.exit_code == 2 and "not a device name" in r.stderr
    mismatched = tmp_path / "mismatched.safetensors"
    save_weights(mismatched, model, {**model.config.model_dump(), "num_layers": 3}, {"data": {"tokenizer": "byte"}})
    r = chat(str(mismatched), "--prompt", "x")
    assert r.exit_code == 2 and "do not match the stored model config" in r.stderr
    other_vocab = tmp_path / "gpt2.safetensors"
    save_weights(other_vocab, model, model.config, {"data": {"tokenizer": "unknown-tok"}})
    r = chat(str(other_vocab), "--prompt", "x")
    assert r.exit_code == 2 and "unknown tokenizer" in r.stderr


class Payload:
    """Unpickling this would run ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model_config": CFG, "model": {"w": torch.zeros(1)}, "x": Payload(marker)}, evil)
    r = subprocess_chat(str(evil), "--prompt", "x", "--device", "cpu")
    assert r.returncode == 2 and "refused" in r.stderr and "evil.pt" in r.stderr
    assert "Traceback" not in r.stderr
    assert not marker.exists()  # the payload never ran
    r = chat(str(evil), "--prompt", "x")  # nor in process
    assert r.exit_code == 2 and not marker.exists()


def test_a_real_terminal_session_streams(checkpoint):
    r = subprocess_chat(str(checkpoint), "--prompt", "hello", "--max-new-tokens", "5", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hello") and "5 tokens" in r.stdout and "tokens/s" in r.stdout


def transcript_users(run: Path) -> list[str]:
    files = sorted((run / "chats").glob("*.jsonl"), key=lambda f: f.stat().st_mtime_ns)
    return [json.loads(x)["user"] for f in files for x in f.read_text().splitlines()]


def test_repl_commands_change_settings_and_are_never_sent_to_the_model(checkpoint):
    lines = ["/help", "/set temperature 0", "/set top-k 7", "/set max_new_tokens 4", "/set seed 3",
             "/set temperature hot", "/set nope 1", "/set temperature", "/preset nope", "/frobnicate",
             "first", "/preset chat", "/set max_new_tokens 3", "second", "//slash", "/reset", "/quit", "never"]
    r = subprocess_chat(str(checkpoint), "--device", "cpu", "--max-new-tokens", "5", input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for cmd in ("/set KEY VALUE", "/preset NAME", "/reset", "/quit"):
        assert cmd in out  # /help lists them
    assert "completion · T 0.0 · top-k 7 · top-p 1.0 · penalty 1.0 · max 4 tokens · seed 3" in out
    assert "temperature: 'hot' is not a number" in out and "unknown setting 'nope'" in out
    assert "usage: /set KEY VALUE" in out and "'nope': known presets are exp7, completion, chat" in out
    assert "unknown command /frobnicate" in out
    assert "chat · T 0.7 · top-k 0 · top-p 0.9 · penalty 1.1 · max 3 tokens" in out  # /preset: its defaults
    assert out.count("tokens/s") == 3  # three messages reached the model
    assert "4 tokens" in out and "3 tokens" in out
    assert "new chat: history cleared" in out
    assert transcript_users(checkpoint.parent.parent) == ["first", "second", "/slash"]  # never a /command
    turns = [json.loads(x) for f in (checkpoint.parent.parent / "chats").glob("*.jsonl") for x in f.read_text().splitlines()]
    first = next(t for t in turns if t["user"] == "first")
    assert first["params"]["temperature"] == 0 and first["params"]["top_k"] == 7 and first["stats"]["n_tokens"] == 4
    assert next(t for t in turns if t["user"] == "second")["preset"] == "chat"


def test_a_missing_checkpoint_is_refused_before_torch_is_imported(tmp_path):
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "tui_lab", "chat", str(tmp_path / "demo" / "nope")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 2 and "no such checkpoint file or run folder" in r.stderr and "nope" in r.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "tui_lab.cli.chat" in imported and "torch" not in imported and "Traceback" not in r.stderr


def test_an_experiment_folder_chats_with_its_latest_run_that_has_a_checkpoint(tiny_checkpoint, tmp_path):
    old = tiny_checkpoint("runs/demo/20260101-000000-aaaa", seed=0)
    new = tiny_checkpoint("runs/demo/20260102-000000-bbbb", seed=1)
    (tmp_path / "runs/demo/20260103-000000-cccc").mkdir()  # the latest run, no checkpoint yet
    for ckpt, started in ((old, 1_000), (new, 2_000)):
        (ckpt.parent.parent / "run.json").write_text(json.dumps({"started_at": started}))
    r = subprocess_chat(str(tmp_path / "runs" / "demo"), "--prompt", "hi", "--max-new-tokens", "3", "--json",
                        "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["checkpoint"] == str(new)  # stdout stays one JSON object
    assert "experiment folder" in r.stderr and "20260102-000000-bbbb" in r.stderr
    (new.parent.parent / "run.json").write_text(json.dumps({"started_at": 500}))  # started first after all
    assert json.loads(chat(str(tmp_path / "runs" / "demo"), "--prompt", "hi", "--max-new-tokens", "2",
                           "--json").stdout)["checkpoint"] == str(old)

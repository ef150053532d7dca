"""The one chat turn (tui_lab.chat.session) that the CLI and the app share: request /
generate / record, reset, settings from text; presets as classes; transcript format
versions and fenced Markdown; experiment folders; the chat layer imports without torch."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from tui_lab.chat import (FORMAT, PRESETS, ChatError, ChatPreset, ChatSession, CompletionPreset, Exp7Preset, Preset,
                          Transcript, TranscriptError, Turn, check_checkpoint_path, parse_setting)
from tui_lab.chat.session import describe_settings
from tui_lab.generate import SamplingParams

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def session(tiny_checkpoint) -> ChatSession:
    return ChatSession.open(tiny_checkpoint("run"), "cpu", preset="chat",
                            params=PRESETS["chat"].params.with_(max_new_tokens=6, seed=0))


def test_presets_are_classes_that_override_what_differs():
    assert [type(p) for p in PRESETS.values()] == [Exp7Preset, CompletionPreset, ChatPreset]
    assert all(isinstance(p, Preset) for p in PRESETS.values())
    assert "self.name" not in inspect.getsource(Preset)  # no branching on the preset's name
    assert PRESETS["completion"].echoes_message and not PRESETS["chat"].echoes_message
    assert PRESETS["completion"].stop_rule([5, 5, 5]) is None and PRESETS["exp7"].stop_rule([5, 5, 5])
    assert PRESETS["exp7"].fit_history("m", [("a", "b")], list, 100, 10) == []  # exp7 keeps no history


def test_a_turn_is_generated_off_the_record_and_recorded_once(session):
    request = session.request("hello")
    pieces: list[str] = []
    result = session.generate(request, pieces.append)
    assert session.transcript.turns == [] and session.last is None  # generate changes no shared state
    assert "".join(pieces) == result.stats.text and result.prompt == "Human: hello\nBot:"
    assert result.reply == result.stats.text.strip() and result.stats.n_tokens <= 6
    session.record(result)
    assert session.history() == [("hello", result.reply)] and session.last is result
    second = session.turn("again")
    assert second.prompt.startswith(f"Human: hello\nBot: {result.reply}\nHuman: again")  # the history went in
    line = json.loads(session.transcript.path.read_text().splitlines()[-1])
    assert line["format"] == FORMAT and line["user"] == "again" and line["params"]["seed"] == 0
    assert line["params"]["stop"] == ["\nHuman:"]  # JSON types


def test_a_request_is_a_snapshot(session):
    request = session.request("one")
    session.record(session.generate(request))
    assert request.history == ()  # taken before the first turn was recorded
    assert session.request("two").history == (("one", session.last.reply),)
    assert session.request("two", preset="exp7").history == ()  # exp7 sends no history


def test_reset_means_a_new_chat_in_a_new_file(session):
    session.turn("one")
    first = session.transcript.path
    session.reset()
    assert session.history() == [] and session.last is None and session.transcript.path != first
    assert session.request("two").history == ()
    session.turn("two")
    assert [json.loads(x)["user"] for x in first.read_text().splitlines()] == ["one"]  # the old file keeps it
    assert [json.loads(x)["user"] for x in session.transcript.path.read_text().splitlines()] == ["two"]


def test_settings_from_text_name_the_key_and_value():
    p = SamplingParams()
    assert parse_setting("top-k", "7", p).top_k == 7 and parse_setting("top_p", "0.5", p).top_p == 0.5
    assert parse_setting("seed", "random", SamplingParams(seed=3)).seed is None
    for key, value, words in [("temperature", "hot", "temperature: 'hot' is not a number"),
                              ("top_k", "1.5", "top-k: '1.5' is not an integer"),
                              ("top_p", "2", "top_p must be in (0, 1]"),
                              ("colour", "red", "unknown setting 'colour'")]:
        with pytest.raises(ChatError, match=words.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
            parse_setting(key, value, p)
    assert describe_settings("exp7", PRESETS["exp7"].params) == \
        "exp7 · T 0.3 · top-k 0 · top-p 0.9 · penalty 1.1 · max 100 tokens"
    assert len(describe_settings("completion", PRESETS["completion"].params)) <= 78  # one line at 80 columns


def test_set_preset_takes_its_defaults(session):
    session.set("temperature", "0")
    session.set_preset("exp7")
    assert session.preset.name == "exp7" and session.params == PRESETS["exp7"].params
    with pytest.raises(ValueError, match="known presets are exp7, completion, chat"):
        session.set_preset("nope")


def test_transcripts_of_today_without_a_format_still_load(tmp_path):
    old = tmp_path / "chats" / "20260101-000000.jsonl"
    old.parent.mkdir()
    old.write_text(json.dumps({"user": "q", "reply": "a", "preset": "chat", "stats": {}, "checkpoint": "m.safetensors",
                               "params": {}, "time": "2026-01-01T00:00:00"}) + "\n" + '{"user": "cut by a cra')
    assert Transcript.load(old).history() == [("q", "a")]
    newer = tmp_path / "chats" / "newer.jsonl"
    newer.write_text(json.dumps({"format": FORMAT + 1, "user": "q", "reply": "a", "preset": "chat"}) + "\n")
    with pytest.raises(TranscriptError, match=f"newer.jsonl: transcript format {FORMAT + 1} is newer"):
        Transcript.load(newer)


def test_markdown_keeps_model_text_verbatim_inside_fences(tmp_path):
    t = Transcript(tmp_path / "m.safetensors")
    t.add(Turn("2 * 3 _x_", "**not bold** ``` a fence ````", "completion"))
    md = t.to_markdown()
    assert "```text\n2 * 3 _x_\n```" in md
    assert "`````text\n**not bold** ``` a fence ````\n`````" in md  # a longer fence than any inside


def test_check_checkpoint_path_is_cheap_and_names_the_path(tmp_path):
    with pytest.raises(ChatError, match="nope: no such checkpoint file or run folder"):
        check_checkpoint_path(tmp_path / "nope")
    assert check_checkpoint_path(tmp_path) == tmp_path


def test_an_experiment_folder_without_checkpoints_says_so(tmp_path):
    from tui_lab.generate import GenerationError, resolve_checkpoint

    (tmp_path / "demo" / "20260101-000000-aaaa").mkdir(parents=True)
    with pytest.raises(GenerationError, match="no checkpoint in this folder yet"):
        resolve_checkpoint(tmp_path / "demo")


def test_the_chat_layer_imports_without_torch():
    code = "import sys, tui_lab.chat, tui_lab.chat.session; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr

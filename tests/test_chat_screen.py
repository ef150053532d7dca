"""The chat screen, driven with Pilot in a tiny host App: replies stream into the pane in
batches, Esc stops a generation, the compare view answers from two checkpoints, settings,
copy, export, and picking a checkpoint. Real models saved as real checkpoints."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.app import App
from waits import wait_for

from tui_lab.app.screens.chat import ChatScreen, CompareScreen, PickCheckpoint, Reply, SettingsDialog
from tui_lab.generate import Generator, SamplingParams

SIZE = (140, 40)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def save(tiny_checkpoint):
    """``save(tmp_path, experiment, seed)``: a checkpoint in ``runs/<experiment>/run-1``."""
    def make(tmp_path: Path, name: str, seed: int) -> Path:
        return tiny_checkpoint(f"runs/{name}/run-1", seed=seed, meta={"data": {"tokenizer": "byte"}, "experiment": name})
    return make


def greedy(path: Path, prompt: str, n: int) -> str:
    return Generator.from_checkpoint(path, "cpu").complete(prompt, SamplingParams(temperature=0, max_new_tokens=n)).text


class Host(App):
    def __init__(self, runs_dir: Path | None = None):
        super().__init__()
        self.runs_dir = runs_dir


async def open_chat(pilot, app, screen: ChatScreen) -> ChatScreen:
    await app.push_screen(screen)
    await wait_for(pilot, lambda: all(p.generator is not None for p in screen.panes))
    return screen


async def send(pilot, screen: ChatScreen, message: str) -> None:
    screen.query_one("#message").value = message
    await pilot.press("enter")
    await pilot.pause()


@pytest.fixture
def updates(monkeypatch) -> list[tuple[int, str]]:
    """Every ``Reply.update``: ``(id of the widget, its text)``."""
    seen: list[tuple[int, str]] = []
    original = Reply.update

    def record(self, content="", *args, **kwargs):
        seen.append((id(self), str(content)))
        return original(self, content, *args, **kwargs)

    monkeypatch.setattr(Reply, "update", record)
    return seen


async def test_a_reply_streams_into_the_pane_then_renders_in_full(tmp_path, save, updates):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        pane = screen.panes[0]
        assert "ready" in str(pane.query_one(".pane-stats").render())
        screen.stream_interval_s = 0.0  # redraw on every token: each partial text is observable
        screen.params = SamplingParams(temperature=0, max_new_tokens=60)
        await send(pilot, screen, "The history of India is")
        await wait_for(pilot, lambda: not pane.busy)
        bot = pane.query(Reply).filter(".bot").last()
        final = "The history of India is" + greedy(ckpt, "The history of India is", 60)
        assert str(bot.render()) == final  # completion: the prompt and its continuation
        texts = [t for w, t in updates if w == id(bot) and t != "…"]
        assert len(texts) > 10 and texts[-1] == final  # streamed piece by piece, then the full render
        assert all(final.startswith(t) for t in texts)  # every partial view is a prefix of the reply
        stats = str(pane.query(".reply-stats").last().render())
        assert "60 tokens" in stats and "tokens/s" in stats and "time to first token" in stats
        assert pane.query(Reply).filter(".user").last().render().plain == "The history of India is"
        saved = list((ckpt.parent.parent / "chats").glob("*.jsonl"))
        assert len(saved) == 1 and "The history of India is" in saved[0].read_text()


async def test_redraws_are_batched_while_streaming(tmp_path, save, updates):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        pane = screen.panes[0]
        screen.params = SamplingParams(temperature=1.0, max_new_tokens=400, seed=0)
        await send(pilot, screen, "go")
        await wait_for(pilot, lambda: not pane.busy)
        stats = pane.last_stats
        bot = pane.query(Reply).filter(".bot").last()
        redraws = [t for w, t in updates if w == id(bot) and t != "…"]
        assert stats.n_tokens == 400
        assert len(redraws) <= stats.elapsed_s / screen.stream_interval_s + 3  # ~10 a second, not one per token
        assert len(redraws) < stats.n_tokens / 4


async def test_escape_stops_a_generation_then_leaves(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        pane = screen.panes[0]
        screen.params = SamplingParams(temperature=1.0, max_new_tokens=1_000_000, seed=1)  # slides forever
        await send(pilot, screen, "never ending")
        await wait_for(pilot, lambda: pane.generator.last_stats.n_tokens > 20)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not pane.busy, timeout=10)
        assert pane.last_stats.stop_reason == "stopped" and pane.last_stats.n_tokens < 1_000_000
        assert "stopped" in str(pane.query(".reply-stats").last().render())
        assert app.screen is screen  # the first Esc only stopped the reply
        screen.params = SamplingParams(temperature=0, max_new_tokens=5)
        await send(pilot, screen, "still usable")  # and the pane answers again
        await wait_for(pilot, lambda: not pane.busy)
        assert pane.last_stats.stop_reason == "max_new_tokens"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen  # the second Esc left


async def test_compare_view_answers_from_two_checkpoints_side_by_side(tmp_path, save):
    left, right = save(tmp_path, "exp3", 0), save(tmp_path, "exp6", 1)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, CompareScreen(left, right, device="cpu"))
        a, b = screen.panes
        assert (a.checkpoint, b.checkpoint) == (left, right)
        assert a.region.x < b.region.x and a.region.y == b.region.y  # side by side
        screen.params = SamplingParams(temperature=0, max_new_tokens=30)
        await send(pilot, screen, "Compare")
        await wait_for(pilot, lambda: not a.busy and not b.busy and a.last_stats and b.last_stats)
        assert a.last_reply == greedy(left, "Compare", 30) and b.last_reply == greedy(right, "Compare", 30)
        assert a.last_reply != b.last_reply
        for pane in (a, b):
            assert "tokens/s" in str(pane.query(".reply-stats").last().render())
        assert (left.parent.parent / "chats").is_dir() and (right.parent.parent / "chats").is_dir()


async def test_compare_key_adds_a_second_checkpoint_from_the_runs_list(tmp_path, save):
    left, right = save(tmp_path, "exp3", 0), save(tmp_path, "exp6", 1)
    app = Host(runs_dir=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(left, device="cpu"))
        await pilot.press("ctrl+t")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, PickCheckpoint)
        from textual.widgets import Select

        select = picker.query_one("#pick", Select)
        assert {v for _, v in select._options if isinstance(v, str)} == {str(left), str(right)}
        select.value = str(right)
        await pilot.click("#ok")
        await pilot.pause()
        assert app.screen is screen and len(screen.panes) == 2
        await wait_for(pilot, lambda: screen.panes[1].generator is not None)
        assert screen.panes[1].checkpoint == right


async def test_open_picks_any_checkpoint_by_path(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host(runs_dir=tmp_path / "nothing-here")
    async with app.run_test(size=SIZE) as pilot:
        screen = ChatScreen(None, device="cpu")
        await app.push_screen(screen)
        await pilot.pause()
        assert isinstance(app.screen, PickCheckpoint)  # no checkpoint given: ask for one
        app.screen.query_one("#pick-path").value = str(tmp_path / "missing")
        await pilot.click("#ok")
        assert isinstance(app.screen, PickCheckpoint)  # a path that does not exist is refused
        field = app.screen.query_one("#pick-path")
        field.value = str(ckpt.parent.parent)  # a run folder
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.panes and screen.panes[0].generator is not None)
        assert Path(screen.panes[0].generator.metadata["checkpoint"]) == ckpt


async def test_settings_dialog_edits_preset_and_sampling(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SettingsDialog)
        from textual.widgets import Select

        dialog.query_one("#preset", Select).value = "exp7"
        await pilot.pause()
        assert dialog.query_one("#temperature").value == "0.3" and dialog.query_one("#top_p").value == "0.9"
        dialog.query_one("#top_k").value = "abc"
        dialog.query_one("#top_k").focus()
        await pilot.press("enter")  # Enter in a field applies too
        assert app.screen is dialog  # refused: not a number
        dialog.query_one("#top_k").value = "7"
        dialog.query_one("#max_new_tokens").value = "12"
        dialog.query_one("#seed").value = "42"
        await pilot.click("#apply")
        await pilot.pause()
        assert app.screen is screen and screen.preset == "exp7"
        p = screen.params
        assert (p.temperature, p.top_k, p.top_p, p.repetition_penalty, p.max_new_tokens, p.seed) == \
            (0.3, 7, 0.9, 1.1, 12, 42)
        assert str(screen.query_one("#settings-line").render()).startswith("exp7 · T 0.3 · top-k 7")
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#preset", Select).value = "chat"
        await pilot.pause()
        app.screen.query_one("#apply").press()
        await pilot.pause()
        assert screen.preset == "chat" and "\nHuman:" in screen.params.stop  # the preset's stop strings came along


async def test_exp7_preset_in_the_pane_shows_the_reply_after_bot(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu", preset="exp7"))
        pane = screen.panes[0]
        screen.params = screen.params.with_(seed=3)
        await send(pilot, screen, "hello")
        await wait_for(pilot, lambda: not pane.busy)
        stats = pane.last_stats
        expected = stats.text.split("Bot:", 1)[1].strip() if "Bot:" in stats.text else stats.text.strip()
        assert pane.last_reply == expected and stats.n_tokens <= 100
        assert stats.stop_reason in {"max_new_tokens", "same token 3 times", "repeated 3-token pattern", "max_seq_len"}


async def test_copy_uses_the_terminal_clipboard_and_export_writes_markdown(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # OSC 52 goes to the terminal; record what was sent
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        pane = screen.panes[0]
        screen.params = SamplingParams(temperature=0, max_new_tokens=10)
        await send(pilot, screen, "abc")
        await wait_for(pilot, lambda: not pane.busy)
        await pilot.press("ctrl+y")
        assert copied == [pane.last_reply] and pane.last_reply
        await pilot.press("ctrl+g")
        await pilot.pause()
        md = pane.transcript.path.with_suffix(".md")
        assert md.is_file() and "**You** (completion):\n\n```text\nabc\n```" in md.read_text()
        assert f"```text\n{pane.last_reply}\n```" in md.read_text()


async def test_chat_history_resets_with_ctrl_r(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu", preset="chat"))
        pane = screen.panes[0]
        screen.params = screen.params.with_(max_new_tokens=5, seed=0)
        await send(pilot, screen, "one")
        await wait_for(pilot, lambda: not pane.busy)
        assert pane.transcript.history() == [("one", pane.last_reply)]
        first_file = pane.transcript.path
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert pane.transcript.history() == [] and not pane.query(Reply) and pane.transcript.path != first_file



async def test_leaving_while_a_reply_streams_stops_it_cleanly(tmp_path, save):
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        pane = screen.panes[0]
        screen.params = SamplingParams(temperature=1.0, max_new_tokens=1_000_000, seed=2)
        await send(pilot, screen, "go on")
        await wait_for(pilot, lambda: pane.generator.last_stats.n_tokens > 5)
        gen = pane.generator
        app.pop_screen()  # e.g. the app switching screens mid-reply
        await wait_for(pilot, lambda: gen.last_stats.stop_reason != "", timeout=10)
        assert gen.last_stats.stop_reason == "stopped"
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running and app.screen is not screen


def test_opening_the_chat_screen_does_not_import_torch_on_the_ui_thread():
    import subprocess
    import sys

    code = ("import sys\n"
            "from tui_lab.app.screens.chat import ChatScreen\n"
            "ChatScreen(None)\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr  # the load worker imports it


# --------------------------------------------------------------------------- issue 11: layout at 80×24
async def test_the_ui_thread_applies_every_change_the_worker_produces(tmp_path, save, monkeypatch):
    from tui_lab.app.screens.chat import ChatPane
    from tui_lab.chat import ChatSession, Transcript

    threads: list[str] = []
    for cls, name in ((ChatSession, "record"), (Transcript, "add"), (ChatPane, "show_reply")):
        original = getattr(cls, name)

        def spy(self, *args, _original=original, **kwargs):
            threads.append(threading.current_thread().name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)
    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot, app, ChatScreen(ckpt, device="cpu", preset="exp7"))
        pane = screen.panes[0]
        screen.stream_interval_s = 0.0
        await send(pilot, screen, "x" * 50)  # exp7 stops at max_seq_len without touching the generator
        await wait_for(pilot, lambda: not pane.busy)
        assert pane.last_stats.stop_reason in {"max_seq_len", "same token 3 times", "repeated 3-token pattern"}
        assert pane.generator.on_full == "slide"  # the preset's "stop" went with the request
    assert threads and set(threads) == {threading.main_thread().name}


async def test_compare_panes_follow_the_new_reply_and_show_each_stats_line_once(tmp_path, save):
    left, right = save(tmp_path, "exp3", 0), save(tmp_path, "exp6", 1)
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot, app, CompareScreen(left, right, device="cpu"))
        screen.params = SamplingParams(temperature=0, max_new_tokens=40)
        for i in range(3):
            await send(pilot, screen, f"message {i}")
            await wait_for(pilot, lambda: not any(p.busy for p in screen.panes))
        await pilot.pause()
        for pane in screen.panes:
            scroll = pane.messages
            assert scroll.max_scroll_y > 0 and scroll.scroll_y == scroll.max_scroll_y  # at the newest reply
            last = pane.query(".reply-stats").last()
            assert scroll.region.contains_region(last.region)  # the new reply's stats line is on screen
            assert len(pane.query(".reply-stats")) == 3  # one stats line per reply...
            assert "tokens/s" not in str(pane.query_one(".pane-stats").render())  # ...and not a second time
            title = pane.query_one(".pane-title")
            assert title.region.height == 1
            shown = str(title.render())
            assert shown.endswith("/run-1 · best.safetensors") and len(shown) <= title.content_size.width


async def test_the_footer_at_80_columns_shows_every_chat_key(tmp_path, save):
    from textual.widgets._footer import FooterKey

    ckpt = save(tmp_path, "exp3", 0)
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_chat(pilot, app, ChatScreen(ckpt, device="cpu"))
        await pilot.pause()
        keys = {k.key: k for k in app.screen.query(FooterKey)}
        for key in ("escape", "ctrl+s", "ctrl+o", "ctrl+t", "ctrl+y", "ctrl+g", "ctrl+r"):
            assert key in keys, key
            assert keys[key].region.width > 0 and keys[key].region.right <= 80, key
        ends = sorted((k.region.x, k.region.right) for k in keys.values())
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ends, ends[1:]))  # none overlaps another


def _snapshot_chat(tiny_checkpoint, monkeypatch, compare: bool):
    """A chat screen with one greedy reply; the stats figures are fixed (they are timings)."""
    from tui_lab.chat import TurnResult

    monkeypatch.setattr(TurnResult, "summary", lambda self: f"{self.stats.n_tokens} tokens · 123.4 tokens/s · "
                                                            f"time to first token 0.010 s · {self.stats.stop_reason}")
    paths = [tiny_checkpoint(f"runs/{name}/20260101-000000-aaaa", seed=seed,
                             meta={"data": {"tokenizer": "byte"}, "experiment": name})
             for name, seed in (("exp3", 0), ("exp6", 1))]

    class SnapHost(App):
        TITLE = "tui-lab"

        def on_mount(self) -> None:
            screen = CompareScreen(*paths, device="cpu") if compare else ChatScreen(paths[0], device="cpu")
            screen.params = SamplingParams(temperature=0, max_new_tokens=60)
            self.push_screen(screen)

    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        await wait_for(pilot, lambda: all(p.session is not None for p in screen.panes))
        await send(pilot, screen, "The history of India is")
        await wait_for(pilot, lambda: not any(p.busy for p in screen.panes))
        await pilot.app.workers.wait_for_complete()
        screen.query_one("#message").cursor_blink = False  # a steady cursor: the same picture every time
        await pilot.pause()

    return SnapHost(), run_before


def test_snapshot_chat_screen_80x24(snap_compare, tiny_checkpoint, monkeypatch):
    app, run_before = _snapshot_chat(tiny_checkpoint, monkeypatch, compare=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_compare_screen_80x24(snap_compare, tiny_checkpoint, monkeypatch):
    app, run_before = _snapshot_chat(tiny_checkpoint, monkeypatch, compare=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)

"""`tui-lab chat`: a streaming REPL, or one answer with --prompt (and --json).

The chat turn itself is :class:`tui_lab.chat.ChatSession`'s (the app's chat screen runs the
same one); this module parses options, prints, and reads the REPL's lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, err_console, fail

REPL_HELP = "/help lists the commands · Ctrl-D or /quit leaves · Ctrl-C stops a reply"
COMMANDS = (
    ("/help", "this list, and the current settings"),
    ("/set KEY VALUE", "change a setting: temperature, top_k, top_p, repetition_penalty, max_new_tokens, "
                       "seed (a number or 'random')"),
    ("/preset NAME", "switch preset (exp7, completion or chat) with its default settings"),
    ("/reset", "a new chat: forget the history; later turns go to a new transcript file"),
    ("/quit", "leave (also /exit, Ctrl-D)"),
    ("//text", "send '/text' to the model as a message"),
)


def chat_cmd(
    checkpoint: Path = typer.Argument(..., help="A checkpoint file (.safetensors, or a weights-only .pt: "
                                                "tui-lab's, the seed scripts' or exp7's), a run folder (its best "
                                                "checkpoint), an experiment folder (its latest run with a "
                                                "checkpoint), a Hugging Face GPT-2 folder, or hf:NAME."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Answer this once and exit."),
    preset: str = typer.Option("completion", "--preset", help="exp7, completion or chat."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="0 = greedy."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="0 = off."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="1 = off."),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty",
                                                       help="CTRL-style; 1 = off."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Same seed, same reply."),
    stop: Optional[list[str]] = typer.Option(None, "--stop", metavar="TEXT", help="Stop before this text (repeatable)."),
    no_kv_cache: bool = typer.Option(False, "--no-kv-cache", help="Recompute the whole window for every token."),
    as_json: bool = typer.Option(False, "--json", help="With --prompt: print one JSON object, no streaming."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    tokenizer_path: Optional[str] = typer.Option(None, "--tokenizer-path",
                                                 help="GPT-2 BPE folder (vocab.bpe, encoder.json) if the "
                                                      "checkpoint's one has moved; or a tokenizer.json / "
                                                      "its folder (exp7's SmolLM tokenizer)."),
    num_heads: Optional[int] = typer.Option(None, "--num-heads", min=1,
                                            help="Heads of a seed-script checkpoint (default: those of the "
                                                 "experiment in experiments.toml with its shape)."),
) -> None:
    """Talk to a checkpoint; tokens stream as they are generated.

    With --prompt: answer once and exit (--json prints the text, the token count, tokens/s
    and the time to first token as one JSON object). Without: an interactive REPL (/help
    lists its commands). Presets: completion (plain continuation), exp7 (exp7's chat
    interface: no history, 'Human: {message}', T 0.3, top-p 0.9, repetition penalty 1.1,
    its stop rules) and chat (multi-turn, history kept inside the context window).
    """
    from rich.text import Text

    from ..chat import PRESETS, ChatError, ChatSession, check_checkpoint_path
    from ..errors import TuiLabError

    if preset not in PRESETS:
        fail(f"--preset {preset!r}: known presets are {', '.join(PRESETS)}")
    p = PRESETS[preset]
    params = p.params.with_(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens, seed=seed,
                            stop=tuple(p.params.stop) + tuple(stop) if stop else None)
    try:
        params.validate()
    except ValueError as exc:
        fail(f"{exc} (see --help)")
    if as_json and prompt is None:
        fail("--json needs --prompt")
    try:
        check_checkpoint_path(checkpoint)  # before torch is imported: a typo answers at once
        session = ChatSession.open(checkpoint, device, tokenizer_path, use_kv_cache=not no_kv_cache,
                                   num_heads=num_heads, preset=preset, params=params)
    except (TuiLabError, ChatError) as exc:
        fail(str(exc))
    summary = session.generator.metadata.get("summary")
    if summary:  # a converted checkpoint: what it is and what it carries (stderr)
        err_console.print(Text(str(summary), style="dim"), highlight=False, soft_wrap=True)
    _say_which_run(checkpoint, session.checkpoint)
    try:
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass

    if prompt is not None:
        result = _answer(session, prompt, stream_out=not as_json)
        if as_json:
            print(json.dumps(session.result_dict(result)))
        else:
            print()
            _footer(result)
        return
    _repl(session)


def _say_which_run(given: Path, ckpt: Path) -> None:
    """For an experiment folder, name the run it picked (on stderr: --json keeps stdout)."""
    from rich.text import Text

    given = Path(given).expanduser()
    if given.is_dir() and ckpt.parent.parent != given:
        err_console.print(Text(f"{given} is an experiment folder: its latest run with a checkpoint is "
                               f"{ckpt.parent.parent.name}", style="dim"), highlight=False)


def _answer(session: Any, message: str, stream_out: bool) -> Any:
    """One turn (a ``TurnResult``); streams the text to stdout when ``stream_out``."""
    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    if stream_out and session.preset.echoes_message:
        write(message)
    try:
        return session.turn(message, on_text=write if stream_out else None)
    except (ValueError, RuntimeError) as exc:  # e.g. out of memory on the device
        fail(f"generation failed: {' '.join(str(exc).split())[:300]}")


def _footer(result: Any) -> None:
    """The reply when it differs from the streamed text (exp7: the text after "Bot:"), then
    the stats line."""
    from rich.text import Text

    if result.request.preset.name != "completion" and result.reply != result.stats.text.strip():
        console.print(Text.assemble(("reply: ", "bold"), result.reply), highlight=False, soft_wrap=True)
    console.print(Text(result.summary(), style="dim"), highlight=False)


def _repl(session: Any) -> None:
    """Read lines until Ctrl-D or /quit; a line starting with ``/`` is a command, never a message."""
    from rich.text import Text

    def dim(text: str) -> None:
        console.print(Text(text, style="dim"), highlight=False)

    gen = session.generator
    console.print(Text(str(session.checkpoint), style="bold"), highlight=False)
    dim(f"{'KV cache' if gen.use_kv_cache else 'no KV cache'} · {gen.device} · {session.settings_line()}")
    dim(REPL_HELP)
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if line.startswith("/") and not line.startswith("//"):
            if _command(session, line.strip(), dim) == "quit":
                break
            continue
        message = line[1:] if line.startswith("//") else line
        if not message.strip():
            continue
        try:
            result = _answer(session, message, stream_out=True)
        except KeyboardInterrupt:
            print("\n[stopped]")
            continue
        print()
        _footer(result)
    if session.transcript.turns and session.save_error is None:
        dim(f"transcript: {session.transcript.path}")


def _command(session: Any, line: str, dim: Any) -> str | None:
    """Run one REPL command; returns ``"quit"`` to leave."""
    from ..chat import ChatError

    name, _, rest = line.partition(" ")
    args = rest.split()
    if name in ("/quit", "/exit"):
        return "quit"
    if name == "/help":
        from rich.table import Table

        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold")
        grid.add_column(style="dim")
        for cmd, what in COMMANDS:
            grid.add_row(cmd, what)
        console.print(grid, highlight=False)
        dim(f"now: {session.settings_line()}")
    elif name == "/reset":
        session.reset()
        dim("new chat: history cleared")
    elif name == "/preset":
        if len(args) != 1:
            dim("usage: /preset NAME (exp7, completion or chat)")
            return None
        try:
            session.set_preset(args[0])
        except ValueError as exc:
            dim(f"/preset {exc}")
            return None
        dim(session.settings_line())
    elif name == "/set":
        if len(args) != 2:
            dim("usage: /set KEY VALUE, e.g. /set temperature 0.1")
            return None
        try:
            session.set(args[0], args[1])
        except ChatError as exc:
            dim(f"/set: {exc}")
            return None
        dim(session.settings_line())
    else:
        dim(f"unknown command {name}: /help lists the commands; //text sends '/text' as a message")
    return None

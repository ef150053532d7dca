"""`tui-lab chat`: a streaming REPL, or one answer with --prompt (and --json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, fail

REPL_HELP = "Ctrl-D or /quit to leave · /reset forgets the history · Ctrl-C stops a reply"


def chat_cmd(
    checkpoint: Path = typer.Argument(..., help="A run folder (its best checkpoint) or a checkpoint file "
                                                "(.safetensors, or a weights-only .pt)."),
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
                                                      "checkpoint's one has moved."),
) -> None:
    """Talk to a checkpoint; tokens stream as they are generated.

    With --prompt: answer once and exit (--json prints the text, the token count, tokens/s
    and the time to first token as one JSON object). Without: an interactive REPL.
    Presets: completion (plain continuation), exp7 (exp7's chat interface: no history,
    'Human: {message}', T 0.3, top-p 0.9, repetition penalty 1.1, its stop rules) and chat
    (multi-turn, history kept inside the context window).
    """
    from rich.text import Text

    from ..errors import TuiLabError
    from ..generate import PRESETS, Generator, fit_history
    from ..generate.transcript import Transcript, Turn

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
        gen = Generator.from_checkpoint(checkpoint, device, tokenizer_path, use_kv_cache=not no_kv_cache,
                                        on_full=p.on_full)
    except TuiLabError as exc:
        fail(str(exc))
    ckpt = str(gen.metadata["checkpoint"])
    transcript = Transcript(Path(ckpt))
    try:
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass

    def answer(message: str, stream_out: bool) -> dict[str, Any]:
        history = fit_history(p, message, transcript.history(), gen.tokenizer.encode, gen.max_len,
                              params.max_new_tokens) if p.keeps_history else []
        text = p.prompt(message, history)
        if stream_out and preset == "completion":
            sys.stdout.write(message)
        try:
            for ev in gen.stream(text, params, stop_rule=p.stop_rule):
                if stream_out and ev.text:
                    sys.stdout.write(ev.text)
                    sys.stdout.flush()
        except (ValueError, RuntimeError) as exc:  # e.g. out of memory on the device
            fail(f"generation failed: {' '.join(str(exc).split())[:300]}")
        stats = gen.last_stats
        reply = p.reply(stats.text)
        out = stats.as_dict() | {"reply": reply, "preset": preset, "prompt": text, "checkpoint": ckpt,
                                 "device": str(gen.device), "kv_cache": gen.use_kv_cache}
        transcript.add(Turn(message, reply, preset, stats.as_dict(), ckpt, _params_dict(params)))
        return out

    def footer(out: dict[str, Any]) -> None:
        if out["reply"] != out["text"].strip() and preset != "completion":  # exp7: the text after "Bot:"
            console.print(Text.assemble(("reply: ", "bold"), out["reply"]), highlight=False, soft_wrap=True)
        console.print(Text(f"{out['n_tokens']} tokens · {out['tokens_per_s']:.1f} tokens/s · time to first token "
                           f"{out['ttft_s'] or 0:.3f} s · {out['stop_reason']}", style="dim"), highlight=False)

    if prompt is not None:
        out = answer(prompt, stream_out=not as_json)
        if as_json:
            print(json.dumps(out))
        else:
            print()
            footer(out)
        return
    mode = "KV cache" if gen.use_kv_cache else "no KV cache"
    console.print(Text.assemble((ckpt, "bold"), f" · preset {preset} · {mode} · {gen.device}"), highlight=False,
                  soft_wrap=True)
    console.print(Text(REPL_HELP, style="dim"))
    while True:
        try:
            message = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if message.strip() in ("/quit", "/exit"):
            break
        if message.strip() == "/reset":
            transcript.clear()
            console.print(Text("history cleared", style="dim"))
            continue
        if not message.strip():
            continue
        try:
            out = answer(message, stream_out=True)
        except KeyboardInterrupt:
            print("\n[stopped]")
            continue
        print()
        footer(out)
    if transcript.turns and transcript.save_error is None:
        console.print(Text(f"transcript: {transcript.path}", style="dim"), highlight=False, soft_wrap=True)


def _params_dict(params: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(params)
    d["stop"] = list(d["stop"])
    return d

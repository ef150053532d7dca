"""`tui-lab chat`: a streaming REPL, or one answer with --prompt (and --json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import console, fail


def chat_cmd(
    checkpoint: Path = typer.Argument(..., help="A run folder (its best checkpoint) or a checkpoint file."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Answer this once and exit."),
    preset: str = typer.Option("completion", "--preset", help="exp7, completion or chat."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="0 = greedy."),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    no_kv_cache: bool = typer.Option(False, "--no-kv-cache", help="Recompute the whole window for every token."),
    as_json: bool = typer.Option(False, "--json", help="With --prompt: print one JSON object."),
    device: str = typer.Option("auto", "--device"),
    tokenizer_path: Optional[str] = typer.Option(None, "--tokenizer-path",
                                                 help="GPT-2 BPE folder if the checkpoint's one has moved."),
) -> None:
    """Talk to a checkpoint; tokens stream as they are generated."""
    from ..errors import TuiLabError
    from ..generate import PRESETS, Generator, fit_history
    from ..generate.transcript import Transcript, Turn

    if preset not in PRESETS:
        fail(f"--preset {preset!r}: known presets are {', '.join(PRESETS)}")
    p = PRESETS[preset]
    params = p.params.with_(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens, seed=seed)
    try:
        params.validate()
    except ValueError as exc:
        fail(str(exc))
    if as_json and prompt is None:
        fail("--json needs --prompt")
    try:
        gen = Generator.from_checkpoint(checkpoint, device, tokenizer_path, use_kv_cache=not no_kv_cache,
                                        on_full=p.on_full)
    except TuiLabError as exc:
        fail(str(exc))
    transcript = Transcript(Path(gen.metadata["checkpoint"]))

    def answer(message: str, stream_out: bool) -> dict:
        history = fit_history(p, message, transcript.history(), gen.tokenizer.encode, gen.max_len,
                              params.max_new_tokens) if p.keeps_history else []
        text = p.prompt(message, history)
        if stream_out and preset == "completion":
            sys.stdout.write(message)
        for ev in gen.stream(text, params, stop_rule=p.stop_rule):
            if stream_out:
                sys.stdout.write(ev.text)
                sys.stdout.flush()
        stats = gen.last_stats
        reply = p.reply(stats.text)
        out = stats.as_dict() | {"reply": reply, "preset": preset, "prompt": text}
        transcript.add(Turn(message, reply, preset, stats.as_dict(), str(gen.metadata["checkpoint"])))
        return out

    if prompt is not None:
        out = answer(prompt, stream_out=not as_json)
        if as_json:
            print(json.dumps(out))
        else:
            print()
            console.print(f"[dim]{out['n_tokens']} tokens, {out['tokens_per_s']:.1f} tokens/s, "
                          f"time to first token {out['ttft_s'] or 0:.3f} s ({out['stop_reason']})[/]")
        return
    console.print(f"[bold]{gen.metadata['checkpoint']}[/] · preset {preset} · "
                  f"{'KV cache' if not no_kv_cache else 'no KV cache'} · empty line or Ctrl-D to quit")
    while True:
        try:
            message = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if not message.strip():
            break
        try:
            out = answer(message, stream_out=True)
        except KeyboardInterrupt:
            print("\n[stopped]")
            continue
        print()
        console.print(f"[dim]{out['n_tokens']} tokens, {out['tokens_per_s']:.1f} tokens/s, "
                      f"TTFT {out['ttft_s'] or 0:.3f} s[/]")

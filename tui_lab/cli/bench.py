"""`tui-lab bench`: measured figures for this machine, side by side in one run."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, console, err_console, fail, load_config


def bench_cmd(
    experiment: str = typer.Option("exp3", "--experiment", "-e", help="Model shape (and data) to measure."),
    config: Optional[Path] = ConfigOption,
    device: str = typer.Option("auto", "--device"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="section.key=value for the experiment."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Default: the experiment's (at most 8 on a CPU)."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Default: model.max_seq_len."),
    steps: int = typer.Option(5, "--steps", min=1, help="Timed training steps per model and repetition (after 2 warm-up steps)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Alternating repetitions per figure (medians; start-up: at least 11 launches each)."),
    context: int = typer.Option(256, "--context", help="Prompt tokens before decoding."),
    new_tokens: int = typer.Option(64, "--new-tokens"),
    skip: Optional[list[str]] = typer.Option(None, "--skip", metavar="PART", help="train, decode, tokenize or startup (repeatable)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="torch CPU threads (default: torch's; 1 on a machine other jobs share)."),
    compile: bool = typer.Option(False, "--compile", help="Also time tui-lab's model under torch.compile (training, "
                                 "and each decode step with the static KV cache)."),
    as_json: bool = typer.Option(False, "--json", help="Print only one JSON line, every figure, on stdout (progress on stderr)."),
) -> None:
    """Training tokens/s and MFU vs transformers, decode tokens/s (static KV cache, the previous
    cache, no cache, transformers' generate), tokenization MB/s and cache reload, app start-up
    vs a bare Textual app. Every figure: the median of alternating repetitions, min and max beside it."""
    import json

    import torch

    from ..bench import STARTUP_REPEATS, bench_decode, bench_startup, bench_tokenize, bench_training
    from ..config import ConfigError
    from ..errors import TuiLabError
    from ..device import resolve_device

    cfg = load_config(config)
    try:
        exp = cfg.get(experiment, list(overrides or []))
        dev = resolve_device(device)
    except (ConfigError, TuiLabError) as exc:
        fail(str(exc))
    skip = set(skip or [])
    if threads:
        torch.set_num_threads(threads)
    say = err_console if as_json else console  # --json: stdout holds the JSON line only
    model_cfg = exp.model
    one = exp.train.batch_size or max(1, exp.train.global_batch_size // exp.train.grad_accum_steps)  # one process
    batch = batch_size or (one if dev.type != "cpu" else min(one, 8))
    seq = seq_len or exp.model.max_seq_len
    result: dict = {"experiment": experiment, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "machine": f"{platform.machine()} {torch.get_num_threads()} threads", "device": str(dev)}
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    if "train" not in skip:
        say.print(f"training: tui-lab vs transformers at the {experiment} shape, batch {batch} × {seq}, "
                  f"{repeats} × {steps} steps each …")
        result["train"] = bench_training(model_cfg, dev, batch, seq, steps, compile, exp.train.fused_cross_entropy,
                                         repeats)
        _show(say, result["train"])
    if "decode" not in skip:
        say.print(f"decoding: {new_tokens} tokens after a {context}-token context, {repeats} repetitions …")
        result["decode"] = bench_decode(model_cfg, dev, min(context, exp.model.max_seq_len - new_tokens), new_tokens,
                                        repeats, compile=compile)
        _show(say, result["decode"])
    if "tokenize" not in skip:
        try:
            result["tokenize"] = bench_tokenize(exp.data, repeats)
        except TuiLabError as exc:
            result["tokenize"] = {"error": str(exc)}
        _show(say, result["tokenize"])
    if "startup" not in skip:
        say.print("start-up: tui-lab vs a bare Textual app, alternating …")
        result["startup"] = bench_startup(str(cfg.path), max(STARTUP_REPEATS, repeats))
        _show(say, result["startup"])
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if as_json:
        print(json.dumps(result, sort_keys=True))


def _show(out, figures: dict) -> None:
    """One ``key: value`` line per figure (numbers with thousands separators)."""
    for key, value in figures.items():
        if isinstance(value, float):
            text = f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        out.print(f"  {key}: {text}", markup=False, highlight=False)

"""`tui-lab bench`: measured figures for this machine, side by side in one run."""

from __future__ import annotations

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
    steps: int = typer.Option(5, "--steps", min=1, help="Timed training steps per model (after 2 warm-up steps)."),
    context: int = typer.Option(256, "--context", help="Prompt tokens before decoding."),
    new_tokens: int = typer.Option(64, "--new-tokens"),
    skip: Optional[list[str]] = typer.Option(None, "--skip", metavar="PART", help="train, decode, tokenize or startup (repeatable)."),
    compile: bool = typer.Option(False, "--compile", help="Also time tui-lab's model under torch.compile."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line holding every figure."),
) -> None:
    """Training tokens/s and MFU vs transformers, decode tokens/s with and without the KV cache,
    tokenization MB/s and cache reload, app start-up time."""
    import json

    import torch

    from ..bench import bench_decode, bench_startup, bench_tokenize, bench_training
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
    out = err_console if as_json else console  # with --json, stdout holds the JSON alone
    model_cfg = exp.model
    one = exp.train.batch_size or max(1, exp.train.global_batch_size // exp.train.grad_accum_steps)  # one process
    batch = batch_size or (one if dev.type != "cpu" else min(one, 8))
    seq = seq_len or exp.model.max_seq_len
    result: dict = {"experiment": experiment, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                    "machine": f"{platform.machine()} {torch.get_num_threads()} threads", "device": str(dev)}
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    if "train" not in skip:
        out.print(f"training: tui-lab vs transformers at the {experiment} shape, batch {batch} × {seq} …")
        result["train"] = bench_training(model_cfg, dev, batch, seq, steps, compile, exp.train.fused_cross_entropy)
        _show(out, result["train"])
    if "decode" not in skip:
        out.print(f"decoding: {new_tokens} tokens after a {context}-token context …")
        result["decode"] = bench_decode(model_cfg, dev, min(context, exp.model.max_seq_len - new_tokens), new_tokens)
        _show(out, result["decode"])
    if "tokenize" not in skip:
        try:
            result["tokenize"] = bench_tokenize(exp.data)
        except TuiLabError as exc:
            result["tokenize"] = {"error": str(exc)}
        _show(out, result["tokenize"])
    if "startup" not in skip:
        result["startup"] = bench_startup(str(cfg.path))
        _show(out, result["startup"])
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

"""Checkpoints from outside tui-lab, converted to tui-lab's model families on load.

* the seed scripts' ``.pt`` files (exp1-exp6 ``LanguageModel``) → ``gpt`` (:mod:`.seed`);
* exp7's ``.pt`` files (DeepSeek-V3 attention + MLP) → ``deepseek`` (:mod:`.exp7`);
* Hugging Face ``GPT2LMHeadModel`` folders, or ``hf:NAME`` from the Hub → ``gpt`` (:mod:`.hf_gpt2`).

:func:`read_any_checkpoint` is the one entry point: it reads tui-lab's own checkpoints
unchanged and converts the others. No code from a file ever runs: ``.pt`` / ``.bin`` files
are read with ``torch.load(weights_only=True)`` and everything else is safetensors or JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, read_checkpoint
from . import exp7, hf_gpt2, seed
from .common import Converted, load_torch_file, tensor_state

FORMATS = {seed.MARKER: seed, exp7.MARKER: exp7}
HF_MARKERS = ("transformer.wte.weight", "wte.weight")


def _state_of(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The model state dict inside a loaded file, and where it was."""
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return tensor_state(obj[key], path, repr(key)), key
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return tensor_state(obj, path, "the file"), ""
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        raise CheckpointError(f"{path}: no model state dict in it (no 'model_state_dict' key; keys: {keys})")
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict or state dict")


def convert_object(obj: Any, path: Path, num_heads: int | None = None,
                   experiments_file: Path | None = None) -> Converted:
    """Convert a loaded foreign checkpoint (a state dict, or a dict holding one).

    Raises:
        CheckpointError: a format tui-lab does not know, or a bad state dict (named key).
    """
    state, _ = _state_of(obj, path)
    for marker, module in FORMATS.items():
        if marker in state:
            return module.convert(obj, state, path, num_heads, experiments_file)
    if any(m in state for m in HF_MARKERS):
        raise CheckpointError(f"{path}: a Hugging Face GPT-2 state dict: give the folder holding it with its "
                              "config.json (and model.safetensors or pytorch_model.bin)")
    first = ", ".join(repr(k) for k in list(state)[:4])
    raise CheckpointError(f"{path}: not a checkpoint tui-lab knows: a seed (exp1-exp6) state dict has "
                          f"{seed.MARKER!r}, an exp7 one {exp7.MARKER!r}, a Hugging Face GPT-2 one "
                          f"'transformer.wte.weight'; this one starts with {first}")


def _describe(conv: Converted, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta = dict(conv.meta)
    meta["model_config"] = conv.model_config
    meta["source"] = str(path)
    return conv.state, meta


def read_any_checkpoint(path: Path | str, num_heads: int | None = None,
                        experiments_file: Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, metadata)`` in tui-lab's layout from any supported checkpoint.

    tui-lab files come back as :func:`~tui_lab.models.checkpoint.read_checkpoint` gives
    them. Converted ones carry ``metadata["model_config"]``, ``source_format`` (``seed``,
    ``exp7``, ``hf-gpt2``), ``source`` (the path), what the file records (``epoch``,
    ``step``, ``train_loss``, ``val_loss``, ``val_ppl``: the file's own figures, computed
    by its own code), ``notes`` and a tokenizer hint (``data`` or ``tokenizer_hint``).
    ``num_heads`` is used by formats whose weights do not give it (the seeds');
    ``experiments_file`` is where a seed checkpoint's shape is looked up otherwise.

    Raises:
        CheckpointError: unreadable, unsafe (a pickle needing code), unknown format, or
            missing / extra / wrong-shape keys — the message names the file and the key.
    """
    path = Path(path)
    if path.is_dir():
        if hf_gpt2.is_hf_folder(path):
            return _describe(hf_gpt2.convert_folder(path), path)
        if (path / "config.json").is_file() and not (path / "run.json").is_file():
            hf_gpt2.read_config(path)  # an unsupported model_type is named first
            raise CheckpointError(f"{path}: config.json but no model.safetensors or pytorch_model.bin")
        raise CheckpointError(f"{path}: is a folder; give a run folder, a Hugging Face GPT-2 folder "
                              "(config.json + model.safetensors) or a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        obj = load_torch_file(path)
        if isinstance(obj, dict) and isinstance(obj.get("model_config"), dict) and isinstance(obj.get("model"), dict):
            return obj["model"], {k: v for k, v in obj.items() if k != "model"}  # tui-lab's own .pt layout
        if path.name == "pytorch_model.bin" and hf_gpt2.is_hf_folder(path.parent):
            return _describe(hf_gpt2.convert_folder(path.parent), path.parent)
        return _describe(convert_object(obj, path, num_heads, experiments_file), path)
    if path.name == "model.safetensors" and hf_gpt2.is_hf_folder(path.parent):
        return _describe(hf_gpt2.convert_folder(path.parent), path.parent)
    try:
        return read_checkpoint(path)
    except CheckpointError as exc:
        if "has no model config" not in str(exc):
            raise
        from safetensors.torch import load

        state = load(path.read_bytes())  # readable: read_checkpoint got as far as the metadata
        if not any(m in state for m in (*FORMATS, *HF_MARKERS)):
            raise
    return _describe(convert_object(state, path, num_heads, experiments_file), path)


def is_foreign(meta: dict[str, Any]) -> bool:
    """Whether ``meta`` (from :func:`read_any_checkpoint`) describes a converted checkpoint."""
    return "source_format" in meta


def summary(meta: dict[str, Any]) -> str:
    """One line for the user: the format and what the file carries (epoch / step, val loss,
    val perplexity as the file records them), then the notes on how it was read."""
    if not is_foreign(meta):
        return ""
    names = {"seed": "seed-script checkpoint (exp1-exp6)", "exp7": "exp7 checkpoint",
             "hf-gpt2": "Hugging Face GPT-2"}
    parts = [names.get(meta["source_format"], str(meta["source_format"]))]
    if meta.get("epoch") is not None:
        parts.append(f"epoch {meta['epoch']}")
    if meta.get("step") is not None:
        parts.append(f"step {meta['step']}")
    if meta.get("val_loss") is not None:
        parts.append(f"val loss {meta['val_loss']:.4f}")
    if meta.get("val_ppl") is not None:
        parts.append(f"val ppl {meta['val_ppl']:.2f} (as the file records it)")
    notes = meta.get("notes") or []
    return " · ".join(parts) + ("; " + "; ".join(notes) if notes else "")


__all__ = ["Converted", "convert_object", "is_foreign", "read_any_checkpoint", "summary"]

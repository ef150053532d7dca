"""Shared by the foreign-format readers: safe file reading and an exact key mapping.

A foreign checkpoint is converted by a **mapping**: one entry per tui-lab state-dict key,
naming the source key it comes from and an optional transform (a transpose, a slice of a
fused tensor). :func:`apply_mapping` then checks, naming the file and the source key,
that every source key is used (or deliberately ignored), that none is missing and that
every converted tensor has the shape tui-lab's model expects. Nothing is guessed.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import CheckpointError

WRAPPER_PREFIXES = ("_orig_mod.", "module.")
"""Prefixes ``torch.compile`` and DDP / DataParallel add to state-dict keys."""


@dataclass
class Source:
    """One tui-lab tensor's origin: ``key`` in the foreign state dict, then ``transform``."""

    key: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    why: str = ""


@dataclass
class Converted:
    """A foreign checkpoint converted to tui-lab: ``state`` (tui-lab keys), ``model_config``
    (a plain dict, validated by :func:`tui_lab.models.model_config`) and ``meta``: what the
    file carries (``source_format``, ``epoch``, ``step``, ``train_loss``, ``val_loss``,
    ``val_ppl``), ``notes`` (how the shape was found, where the mapping is inexact) and a
    tokenizer hint (``data``: ``tokenizer`` / ``tokenizer_path``, or ``tokenizer_hint``)."""

    state: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


def load_torch_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of ``path`` on the CPU: plain containers, numbers,
    strings and tensors only — a pickle that would import or call code is refused.

    Raises:
        CheckpointError: refused (names the global the pickle wanted), truncated or corrupt.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = " ".join(str(exc).split())
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise CheckpointError(
                f"{path}: refused: its pickle needs code ({found.group(1)}); tui-lab loads .pt files "
                "with torch.load(weights_only=True), which allows tensors, numbers, strings and containers "
                "only, because unpickling code can run anything. Re-save the file as a plain state dict "
                "where you trust it") from None
        raise CheckpointError(f"{path}: refused: not a weights-only PyTorch file ({text[:200]})") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as exc:
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {first}") from None


def strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with ``_orig_mod.`` / ``module.`` prefixes removed from its keys."""
    out = {}
    for key, value in state.items():
        k = str(key)
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        out[k] = value
    return out


def tensor_state(obj: Any, path: Path, where: str) -> dict[str, torch.Tensor]:
    """``obj`` as a state dict of tensors (string keys), wrapper prefixes stripped.

    Raises:
        CheckpointError: not a mapping of tensors (names the first offending key).
    """
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: {where} is not a non-empty state dict (got {type(obj).__name__})")
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {where}: key {key!r} holds a {type(value).__name__}, not a tensor")
    return strip_prefixes(obj)


def need(state: dict[str, torch.Tensor], key: str, path: Path, ndim: int, fmt: str) -> torch.Tensor:
    """``state[key]``, a tensor with ``ndim`` dimensions, for reading the model's shape.

    Raises:
        CheckpointError: the key is missing or has another number of dimensions.
    """
    if key not in state:
        raise CheckpointError(f"{path}: {fmt} checkpoint without key {key!r} (missing)")
    t = state[key]
    if t.dim() != ndim:
        raise CheckpointError(f"{path}: key {key!r} has shape {list(t.shape)}; a {fmt} checkpoint has "
                              f"{ndim} dimensions there (wrong shape)")
    return t


def count_layers(state: dict[str, torch.Tensor], prefix: str, path: Path, fmt: str) -> int:
    """Number of blocks ``prefix{i}.`` in ``state`` (indices must run 0..L-1).

    Raises:
        CheckpointError: no block, or a gap in the indices.
    """
    idx = set()
    for key in state:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                idx.add(int(head))
    if not idx:
        raise CheckpointError(f"{path}: {fmt} checkpoint without any {prefix}0.* keys (missing)")
    missing = sorted(set(range(max(idx) + 1)) - idx)
    if missing:
        raise CheckpointError(f"{path}: {fmt} checkpoint has no {prefix}{missing[0]}.* keys (missing layer)")
    return max(idx) + 1


def apply_mapping(state: dict[str, torch.Tensor], mapping: dict[str, Source], expected: dict[str, torch.Size],
                  path: Path, fmt: str, ignore: Callable[[str], bool] = lambda k: False,
                  consumed_elsewhere: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Build tui-lab's state dict from ``state`` through ``mapping`` (tui-lab key → source).

    ``expected`` holds the shapes of tui-lab's model for the inferred config (every key must
    be in ``mapping``); ``ignore(key)`` marks source keys that carry nothing (buffers such as
    a causal-mask); ``consumed_elsewhere`` are source keys the caller checked itself (a tied
    head). Tensors are returned as contiguous float32 copies.

    Raises:
        CheckpointError: a source key missing, left unused (extra), or of the wrong shape —
            the message names the file, the source key and both shapes.
    """
    used = set(consumed_elsewhere)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        src = mapping.get(key)
        if src is None:  # a tui-lab key the mapping does not fill: a bug in this module, not the file
            raise CheckpointError(f"{path}: cannot fill tui-lab key {key!r} from a {fmt} checkpoint")
        if src.key not in state:
            raise CheckpointError(f"{path}: {fmt} checkpoint without key {src.key!r} (missing; "
                                  f"tui-lab's {key} comes from it)")
        used.add(src.key)
        tensor = state[src.key]
        try:
            value = src.transform(tensor) if src.transform else tensor
        except (RuntimeError, IndexError, ValueError):
            value = None
        if value is None or tuple(value.shape) != tuple(shape):
            got = list(tensor.shape)
            raise CheckpointError(f"{path}: key {src.key!r} has shape {got}, which does not give tui-lab's "
                                  f"{key} of shape {list(shape)}{' (' + src.why + ')' if src.why else ''} "
                                  "(wrong shape)")
        if not value.is_floating_point():
            raise CheckpointError(f"{path}: key {src.key!r} holds {value.dtype} values, not floating point")
        out[key] = value.detach().to(torch.float32).contiguous().clone()
    extra = [k for k in state if k not in used and not ignore(k)]
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise CheckpointError(f"{path}: {fmt} checkpoint has unexpected key(s) {', '.join(repr(k) for k in extra[:3])}"
                              f"{more} (extra: not part of the architecture tui-lab maps it to)")
    return out


def expected_shapes(model_config: dict[str, Any]) -> dict[str, torch.Size]:
    """The state-dict shapes of tui-lab's model for ``model_config`` (built on the meta
    device: no memory, no init).

    Raises:
        CheckpointError: the config builds no model (message from the validator).
    """
    from .. import build_model

    try:
        with torch.device("meta"):
            model = build_model(model_config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"the inferred model config is invalid: {exc}") from None
    return {k: v.shape for k, v in model.state_dict().items()}


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same values (a tied weight saved twice)."""
    return a.shape == b.shape and bool(torch.equal(a, b))


def number(value: Any) -> float | None:
    """A plain float from a number or a one-element tensor, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, float)):
        return float(value)
    return None

"""Checkpoint weights: safetensors files holding a model's weights with its model config.

Loading never executes code from a file: weights come from safetensors (or from a
``.pt`` file through ``torch.load(weights_only=True)``), the model is rebuilt from the
config stored beside them, and a corrupt, truncated, mismatched or non-finite file is
refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..errors import TuiLabError

FORMAT = "tui-lab/1"


class CheckpointError(TuiLabError):
    """A checkpoint that cannot be used; ``str(err)`` names the file and the reason."""


def clean_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights with wrapper prefixes removed (``torch.compile``'s ``_orig_mod.``,
    DDP's ``module.``), contiguous and on the CPU."""
    out = {}
    for key, tensor in model.state_dict().items():
        for prefix in ("_orig_mod.", "module."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = tensor.detach().to("cpu").contiguous()
    return out


def save_weights(path: Path, model: torch.nn.Module, model_config: Any = None,
                 extra: dict[str, Any] | None = None) -> None:
    """Save weights + ``model_config`` (+ ``extra``: experiment, data config, step, ...) as
    one safetensors file, atomically: a failed write leaves the previous file intact.

    ``model_config`` is a :class:`~tui_lab.config.schema.ModelConfig` or its dict; by
    default the model's own ``.config`` (through compile / DDP wrappers).

    Raises:
        OSError: the write failed (e.g. disk full).
    """
    from safetensors.torch import save

    if model_config is None:
        inner = getattr(model, "_orig_mod", model)
        model_config = getattr(inner, "module", inner).config
    if hasattr(model_config, "model_dump"):
        model_config = model_config.model_dump(mode="json", exclude_none=True)
    meta = {"format": FORMAT, "model_config": json.dumps(model_config, sort_keys=True)}
    for k, v in (extra or {}).items():
        meta[k] = json.dumps(v, sort_keys=True)
    atomic_write(Path(path), save(clean_state_dict(model), metadata=meta))


def read_checkpoint(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(state_dict, metadata)`` from a ``.safetensors`` or ``.pt`` file without
    running any code from it. ``metadata["model_config"]`` is the model table.

    Raises:
        CheckpointError: missing, truncated, corrupt, unsafe (a pickle with code), or no
            model config.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a run folder to `tui-lab chat` or a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix in (".pt", ".pth", ".bin"):
        return _read_torch(path)
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        raw = path.read_bytes()
        state = load(raw)
        from safetensors import safe_open  # metadata lives in the header

        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (truncated or corrupt?): {exc}") from None
    meta: dict[str, Any] = {}
    for k, v in header.items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    if not isinstance(meta.get("model_config"), dict):
        raise CheckpointError(f"{path}: has no model config in its metadata: not a tui-lab checkpoint")
    return state, meta


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        obj = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: not a weights-only PyTorch file (it may try to run code, or be "
            f"truncated): {first}"
        ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("model_config"), dict) or not isinstance(obj.get("model"), dict):
        raise CheckpointError(f"{path}: expected a dict with 'model_config' and 'model' (a state dict)")
    meta = {k: v for k, v in obj.items() if k != "model"}
    return obj["model"], meta


def load_model(path: Path | str, device: torch.device | str = "cpu", *, num_heads: int | None = None,
               experiments_file: Path | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from a checkpoint's stored config and load its weights (eval mode).

    Besides tui-lab's own files this reads the seed scripts' and exp7's ``.pt`` files and
    Hugging Face GPT-2 folders, converted on the way (:mod:`.foreign`; ``num_heads`` and
    ``experiments_file`` help a seed checkpoint, whose weights do not give its heads).

    Returns:
        ``(model, metadata)``; metadata holds ``model_config`` and whatever the trainer
        stored (``experiment``, ``data``, ``step``, ``val_loss``...), or for a converted
        checkpoint what the file carries (see :func:`.foreign.read_any_checkpoint`).
    Raises:
        CheckpointError: unreadable file, config that builds no model, weights of another
            architecture or shape, or non-finite weights.
    """
    from . import build_model

    from .foreign import read_any_checkpoint

    state, meta = read_any_checkpoint(path, num_heads=num_heads, experiments_file=experiments_file)
    try:
        model = build_model(meta["model_config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its model config is invalid: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{path}: weights do not match the stored model config: {detail}") from None
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite (NaN/inf) weights in {', '.join(bad[:3])}")
    return model.to(device).eval(), meta

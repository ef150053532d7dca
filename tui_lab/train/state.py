"""The training state beside a run's last weights: optimizer, data position, RNG, progress.

Saved as plain tensors and numbers, so it loads with ``torch.load(weights_only=True)``;
written atomically like every other file of a run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..models.checkpoint import CheckpointError

def save_train_state(path: Path, state: dict[str, Any]) -> None:
    """Save optimizer + progress state for ``--resume`` (plain tensors and numbers, so it
    loads with ``weights_only=True``), atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(Path(path), buf.getvalue())


def load_train_state(path: Path) -> dict[str, Any]:
    """Raises:
        CheckpointError: missing, truncated or unsafe file."""
    try:
        return torch.load(io.BytesIO(Path(path).read_bytes()), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no training state to resume from") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable training state: {str(exc).splitlines()[0] if str(exc) else exc}") from None

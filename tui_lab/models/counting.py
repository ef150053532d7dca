"""Exact parameter counts of a model config without allocating its weights."""

from __future__ import annotations

from typing import Any


def count_parameters_of_config(model_cfg: Any) -> int:
    """Build the model on PyTorch's ``meta`` device (no memory, no init) and count its
    unique parameters — exact for any shape, e.g. 63,873,617 for exp6 in milliseconds."""
    import torch

    from . import build_model, count_parameters

    with torch.device("meta"):
        model = build_model(model_cfg)
    return count_parameters(model)

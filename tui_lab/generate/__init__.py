"""Generation: sampling, presets (exp7 / completion / chat), streaming with a KV cache.

``SamplingParams``, ``PRESETS`` and the transcripts import without torch (the app's chat
screen builds its settings from them on the UI thread); the engine's names load torch on
first use.
"""

from __future__ import annotations

from typing import Any

from .presets import PRESETS, Preset, fit_history
from .sampling import SamplingParams

_ENGINE = ("GenerationError", "GenerationStats", "Generator", "TokenEvent", "generate_text", "resolve_checkpoint")

__all__ = ["PRESETS", "GenerationError", "GenerationStats", "Generator", "Preset", "SamplingParams", "TokenEvent",
           "fit_history", "generate_text", "resolve_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

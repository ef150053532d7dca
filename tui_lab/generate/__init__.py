"""Generation: token sampling, stop rules, streaming with a KV cache (token ids and text; no chat).

``SamplingParams`` and the stop rules import without torch (the app's chat screen builds
its settings from them on the UI thread); the engine's names load torch on first use.
Chat presets, sessions and transcripts are one layer up, in :mod:`tui_lab.chat`.
"""

from __future__ import annotations

from typing import Any

from .sampling import SamplingParams
from .stops import exp7_stop_rule

_ENGINE = ("GenerationError", "GenerationStats", "Generator", "TokenEvent", "generate_text", "resolve_checkpoint")

__all__ = ["GenerationError", "GenerationStats", "Generator", "SamplingParams", "TokenEvent", "exp7_stop_rule",
           "generate_text", "resolve_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

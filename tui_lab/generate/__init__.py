"""Generation: sampling, presets (exp7 / completion / chat), streaming with a KV cache."""

from .engine import GenerationError, GenerationStats, Generator, TokenEvent, generate_text, resolve_checkpoint
from .presets import PRESETS, Preset, fit_history
from .sampling import SamplingParams

__all__ = ["PRESETS", "GenerationError", "GenerationStats", "Generator", "Preset", "SamplingParams", "TokenEvent",
           "fit_history", "generate_text", "resolve_checkpoint"]

"""Chat: one chat turn for the CLI and the app (:mod:`.session`), presets as classes
(:mod:`.presets`), transcripts (:mod:`.transcript`). Imports without torch; loading a
checkpoint (``ChatSession.open``) imports it."""

from __future__ import annotations

from .presets import PRESETS, ChatPreset, CompletionPreset, Exp7Preset, Preset, after_bot, fit_history, get_preset
from .session import (SETTINGS, ChatError, ChatSession, TurnRequest, TurnResult, check_checkpoint_path, parse_setting,
                      restore_cpu_threads, stats_line)
from .transcript import FORMAT, Transcript, TranscriptError, Turn

__all__ = ["FORMAT", "PRESETS", "SETTINGS", "ChatError", "ChatPreset", "ChatSession", "CompletionPreset",
           "Exp7Preset", "Preset", "Transcript", "TranscriptError", "Turn", "TurnRequest", "TurnResult", "after_bot",
           "check_checkpoint_path", "fit_history", "get_preset", "parse_setting", "restore_cpu_threads",
           "stats_line"]

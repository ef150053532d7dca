"""The chat screen (:mod:`.screen`), its panes (:mod:`.pane`) and dialogs (:mod:`.dialogs`).

Imports without torch: checkpoints load, and generate, in thread workers.
"""

from __future__ import annotations

from .dialogs import PickCheckpoint, SettingsDialog, find_checkpoints
from .pane import ChatPane, PathLabel, Reply
from .screen import ChatScreen, CompareScreen, PaneLoaded, ReplyDone, ReplyFailed, ReplyProgress

__all__ = ["ChatPane", "ChatScreen", "CompareScreen", "PaneLoaded", "PathLabel", "PickCheckpoint", "Reply",
           "ReplyDone", "ReplyFailed", "ReplyProgress", "SettingsDialog", "find_checkpoints"]

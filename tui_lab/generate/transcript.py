"""Chat transcripts: saved as JSON lines next to the checkpoint's run, exportable as Markdown."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..runs.store import write_atomic


@dataclass
class Turn:
    user: str
    reply: str
    preset: str
    stats: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""


def chats_dir_for(checkpoint: Path) -> Path:
    """``<run>/chats/`` for a checkpoint inside a run folder, else a ``chats/`` beside the file."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "chats"
    return checkpoint.parent / "chats"


class Transcript:
    """Turns of one chat session, appended to ``chats/<start time>.jsonl`` as they happen."""

    def __init__(self, checkpoint: Path, folder: Path | None = None):
        self.checkpoint = Path(checkpoint)
        self.folder = folder or chats_dir_for(self.checkpoint)
        self.path = self.folder / (time.strftime("%Y%m%d-%H%M%S") + ".jsonl")
        self.turns: list[Turn] = []

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(turn)) + "\n")
        except OSError:
            pass  # a read-only run folder must not break the chat; export still works

    def history(self) -> list[tuple[str, str]]:
        return [(t.user, t.reply) for t in self.turns]

    def to_markdown(self) -> str:
        lines = [f"# Chat with `{self.checkpoint}`", ""]
        for t in self.turns:
            lines += [f"**You** ({t.preset}): {t.user}", "", f"**Model**: {t.reply}", ""]
            if t.stats:
                lines += [f"*{t.stats.get('n_tokens', 0)} tokens, {t.stats.get('tokens_per_s', 0):.1f} tokens/s, "
                          f"time to first token {t.stats.get('ttft_s') or 0:.3f} s*", ""]
        return "\n".join(lines)

    def export_markdown(self, path: Path) -> Path:
        write_atomic(Path(path), self.to_markdown())
        return Path(path)

"""Chat transcripts: saved as JSON lines in the run folder's ``chats/``, exportable as Markdown.

One file per chat session, ``<run>/chats/<start time>.jsonl``, one JSON object per turn
(appended as each reply finishes, so a crash loses at most the reply being generated):
``user``, ``reply``, ``preset``, ``stats`` (tokens, tokens/s, time to first token, stop
reason, seed), ``params`` (the sampling settings) and ``checkpoint``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_write


@dataclass
class Turn:
    user: str
    reply: str
    preset: str
    stats: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))


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
        self.folder = Path(folder) if folder else chats_dir_for(self.checkpoint)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = self.folder / f"{stamp}.jsonl"
        n = 1
        while self.path.exists():  # two sessions in the same second (e.g. compare, or CLI calls)
            n += 1
            self.path = self.folder / f"{stamp}-{n}.jsonl"
        self.turns: list[Turn] = []
        self.save_error: str | None = None

    def add(self, turn: Turn) -> None:
        """Keep ``turn`` and append it to the file; a failed write (read-only run folder)
        is remembered in :attr:`save_error` and does not break the chat."""
        self.turns.append(turn)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(turn), ensure_ascii=False) + "\n")
            self.save_error = None
        except OSError as exc:
            self.save_error = f"{self.path}: {exc.strerror or exc}"

    def clear(self) -> None:
        """Forget the history (the file keeps what was said)."""
        self.turns.clear()

    def history(self) -> list[tuple[str, str]]:
        return [(t.user, t.reply) for t in self.turns]

    @classmethod
    def load(cls, path: Path) -> "Transcript":
        """Read a saved ``.jsonl`` transcript back (lines that are not turns are skipped)."""
        path = Path(path)
        names = {f.name for f in fields(Turn)}
        turns = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(obj, dict) and {"user", "reply", "preset"} <= set(obj):
                turns.append(Turn(**{k: v for k, v in obj.items() if k in names}))
        out = cls(Path(turns[0].checkpoint) if turns and turns[0].checkpoint else path, folder=path.parent)
        out.path, out.turns = path, turns
        return out

    def to_markdown(self) -> str:
        lines = [f"# Chat with `{self.checkpoint}`", ""]
        for t in self.turns:
            lines += [f"**You** ({t.preset}): {t.user}", "", f"**Model**: {t.reply}", ""]
            if t.stats:
                lines += [f"*{t.stats.get('n_tokens', 0)} tokens, {t.stats.get('tokens_per_s') or 0:.1f} tokens/s, "
                          f"time to first token {t.stats.get('ttft_s') or 0:.3f} s*", ""]
        return "\n".join(lines)

    def export_markdown(self, path: Path | None = None) -> Path:
        """Write the Markdown (default: beside the ``.jsonl``, as ``.md``); returns the path.

        Raises:
            OSError: the file could not be written.
        """
        path = Path(path) if path else self.path.with_suffix(".md")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.to_markdown())
        return path

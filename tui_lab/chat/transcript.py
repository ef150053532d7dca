"""Chat transcripts: saved as JSON lines in the run folder's ``chats/``, exportable as Markdown.

One file per chat session, ``<run>/chats/<start time>.jsonl``, one JSON object per turn
(appended as each reply finishes, so a crash loses at most the reply being generated):
``format`` (:data:`FORMAT`), ``user``, ``reply``, ``preset``, ``stats`` (tokens, tokens/s,
time to first token, stop reason, seed), ``params`` (the sampling settings),
``checkpoint`` and ``time``. Lines written before the ``format`` field existed read as
format 1 (the same keys); a line from a newer format is refused with a message.

The Markdown export puts every message and reply inside code fences: a small model's
output is not Markdown, and ``*``, ``_`` or ``= = Heading = =`` must show as generated.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import TuiLabError

FORMAT = 1  # the version of a turn line; bump it (and read the old one) when the keys change


class TranscriptError(TuiLabError):
    """A transcript this version of tui-lab cannot read."""


@dataclass
class Turn:
    """One message and its reply, as saved (one JSON line)."""

    user: str
    reply: str
    preset: str
    stats: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Turn | None":
        """The turn in a decoded line; None for a line that is not a turn.

        Raises:
            TranscriptError: a ``format`` newer than :data:`FORMAT`.
        """
        if not isinstance(obj, dict) or not {"user", "reply", "preset"} <= set(obj):
            return None
        version = obj.get("format", 1)
        if not isinstance(version, int) or version > FORMAT:
            raise TranscriptError(f"transcript format {version!r} is newer than this tui-lab reads ({FORMAT})")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})


def chats_dir_for(checkpoint: Path) -> Path:
    """``<run>/chats/`` for a checkpoint inside a run folder, else a ``chats/`` beside the file."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "chats"
    return checkpoint.parent / "chats"


def fenced(text: str, info: str = "text") -> list[str]:
    """``text`` as a Markdown code block whose fence is longer than any backtick run inside it."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


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
                fh.write(turn.to_json() + "\n")
            self.save_error = None
        except OSError as exc:
            self.save_error = f"{self.path}: {exc.strerror or exc}"

    def history(self) -> list[tuple[str, str]]:
        """``(user, reply)`` of every turn, oldest first."""
        return [(t.user, t.reply) for t in self.turns]

    @classmethod
    def load(cls, path: Path) -> "Transcript":
        """Read a saved ``.jsonl`` transcript back (lines that are not turns are skipped).

        Raises:
            OSError: the file cannot be read.
            TranscriptError: a line in a newer format.
        """
        path = Path(path)
        turns = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            try:
                turn = Turn.from_json(obj)
            except TranscriptError as exc:
                raise TranscriptError(f"{path}: {exc}") from None
            if turn is not None:
                turns.append(turn)
        out = cls(Path(turns[0].checkpoint) if turns and turns[0].checkpoint else path, folder=path.parent)
        out.path, out.turns = path, turns
        return out

    def to_markdown(self) -> str:
        """The session as Markdown: a heading, then each message and reply in code fences,
        with the reply's tokens, tokens/s and time to first token."""
        lines = [f"# Chat with `{self.checkpoint}`", ""]
        for t in self.turns:
            lines += [f"**You** ({t.preset}):", "", *fenced(t.user), "", "**Model**:", "", *fenced(t.reply), ""]
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

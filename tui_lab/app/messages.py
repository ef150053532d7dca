"""The messages the watcher threads' callbacks post to the screens (dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..runs.follow import RunSnapshot, StoreScan
from ..runs.store import RunDir


@dataclass
class RunUpdated(Message):
    """New data for the followed run (both None: no run selected)."""

    run: RunDir | None
    snapshot: RunSnapshot | None


@dataclass
class StoreScanned(Message):
    """A new scan of every run's ``run.json`` and the queue."""

    scan: StoreScan


@dataclass
class ResultsLoaded(Message):
    """The results screen's table, built in a worker (``error``: why it could not be)."""

    table: object
    error: str | None = None


@dataclass
class ProgressionLoaded(Message):
    """A run's perplexity progression as Markdown, built in a worker."""

    key: str
    markdown: str

"""TensorBoard event files from a run's metrics events (no torch: tensorboardX's writer).

``metrics.jsonl`` stays the source of truth; these files are a copy for ``tensorboard
--logdir runs``, under ``runs/<exp>/<run-id>/tensorboard/``. The trainer writes them live
(:class:`TensorBoardWriter` as an event consumer, rank 0 only, ``train.tensorboard``);
:func:`export_run` (``tui-lab export --format tensorboard``) writes them for existing runs.

Scalars (tag ← event key; step = the event's optimizer step, wall time = its ``time``):

=====================  ================================  ========================
tag                    metrics event key                 unit
=====================  ================================  ========================
``train/loss``         ``train.train_loss``              nats / token
``train/lr``           ``train.lr``                      per optimizer step
``train/tokens_per_s`` ``train.tokens_per_s``            tokens / s (all ranks)
``val/loss``           ``eval.val_loss``                 nats / token
``val/ppl``            ``eval.val_ppl``                  exp(val loss), capped
``val/accuracy``       ``eval.val_acc``                  next-token top-1, 0..1
``val/word_ppl``       ``eval.val_word_ppl``             per word of the split
=====================  ================================  ========================

Generation samples go in as text (tag ``samples/<prompt>``). TensorBoard stores scalars as
float32. A resumed run's writer passes ``purge_step`` so TensorBoard drops the points the
resume superseded, as :func:`~tui_lab.runs.store.collapse_resumes` does for the app.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..runs.store import RunDir, read_jsonl

TB_DIR = "tensorboard"

SCALARS: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("train_loss", "train/loss"), ("lr", "train/lr"), ("tokens_per_s", "train/tokens_per_s")),
    "eval": (("val_loss", "val/loss"), ("val_ppl", "val/ppl"), ("val_acc", "val/accuracy"),
             ("val_word_ppl", "val/word_ppl")),
}
"""event kind → (metrics key, TensorBoard tag) pairs."""


def tensorboard_dir(run: RunDir) -> Path:
    return run.path / TB_DIR


def sample_tag(prompt: str) -> str:
    """``samples/<prompt>`` with characters TensorBoard tags do not like replaced by ``_``."""
    return "samples/" + (re.sub(r"[^A-Za-z0-9_.\- ]", "_", prompt).strip()[:60] or "prompt")


def _quiet_writer_thread_errors() -> None:
    """An error that kills tensorboardX's writer thread (a full disk) prints one line on stderr
    instead of a traceback; every other thread keeps Python's default report. Installed once."""
    import sys
    import threading

    if getattr(threading.excepthook, "_tui_lab", False):
        return
    default = threading.excepthook

    def hook(args: "threading.ExceptHookArgs") -> None:
        if type(args.thread).__module__.startswith("tensorboardX"):
            print(f"warning: TensorBoard event files stopped: {args.exc_type.__name__}: {args.exc_value}",
                  file=sys.stderr, flush=True)
            return
        default(args)

    hook._tui_lab = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class TensorBoardWriter:
    """Writes metrics events into TensorBoard event files in ``logdir``.

    Call it with each event dict (as :meth:`~tui_lab.runs.store.MetricsWriter.write` returns
    it); :meth:`close` flushes. Raises ImportError when tensorboardX is not installed.
    """

    def __init__(self, logdir: Path, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        Path(logdir).mkdir(parents=True, exist_ok=True)
        _quiet_writer_thread_errors()
        self._w = SummaryWriter(logdir=str(logdir), purge_step=purge_step, flush_secs=10)

    def _check_alive(self) -> None:
        """tensorboardX writes from a background thread into a bounded queue: once that thread
        has died (a full disk: ENOSPC), every further event would block the trainer forever on
        the full queue. Raise instead, so the caller turns TensorBoard off for this run.

        Raises:
            OSError: the writer thread has stopped.
        """
        worker = getattr(getattr(getattr(self._w, "file_writer", None), "event_writer", None), "_worker", None)
        if worker is not None and not worker.is_alive():
            raise OSError("the TensorBoard event writer stopped (disk full?); no more events are written")

    def __call__(self, event: dict[str, Any]) -> None:
        kind, step, wall = event.get("event"), event.get("step"), event.get("time")
        if not isinstance(step, int):
            return
        self._check_alive()
        for key, tag in SCALARS.get(kind, ()):
            value = event.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self._w.add_scalar(tag, float(value), step, walltime=wall)
        if kind == "sample" and isinstance(event.get("text"), str):
            prompt = str(event.get("prompt", ""))
            self._w.add_text(sample_tag(prompt), f"**{prompt}**{event['text']}", step, walltime=wall)

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        """Flush and close; skipped when the writer thread has died (closing would block)."""
        try:
            self._check_alive()
        except OSError:
            return
        self._w.close()


def export_run(run: RunDir) -> Path:
    """(Re)write ``run``'s TensorBoard files from its ``metrics.jsonl`` (resumes collapsed);
    the old folder is replaced only once the new one is complete. Returns the folder.

    Raises:
        ImportError: tensorboardX is not installed.
        OSError: the run folder cannot be written.
    """
    from ..runs.store import collapse_resumes

    events, _ = read_jsonl(run.metrics_path)
    target = tensorboard_dir(run)
    tmp = Path(tempfile.mkdtemp(prefix=".tensorboard-", dir=run.path))
    try:
        writer = TensorBoardWriter(tmp)
        for e in collapse_resumes(events):
            writer(e)
        writer.close()
        if target.exists():
            old = run.path / f".tensorboard-old-{tmp.name}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target

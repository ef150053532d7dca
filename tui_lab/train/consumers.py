"""What else hears the trainer's metrics events besides ``metrics.jsonl`` (rank 0 only).

:func:`event_consumers` builds them for one run: the TensorBoard writer
(``train.tensorboard``, :mod:`tui_lab.results.tensorboard`) and the end-state alerts
(``[settings.alerts]``, :mod:`tui_lab.runs.alerts`). Each is wrapped so that its failure
(a full disk under the event files, tensorboardX missing) is reported once on stderr
(the run's ``train.log`` for detached runs) and then ignored: a consumer never changes a
run's outcome.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from ..config import Experiment
from ..runs.alerts import AlertTargets, EndAlerter, save_targets
from ..runs.store import RunDir


class Consumer:
    """``consumer(event)`` for each metrics event, ``consumer.close()`` once at the end
    (after ``run.json`` holds the final status). Exceptions are caught and logged once."""

    def __init__(self, name: str, on_event: Callable[[dict[str, Any]], None], on_close: Callable[[], None]):
        self.name = name
        self._on_event = on_event
        self._on_close = on_close
        self.broken = False

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        if self.broken:
            return
        try:
            fn(*args)
        except Exception as exc:
            self.broken = True
            print(f"warning: {self.name} turned off for this run: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)

    def __call__(self, event: dict[str, Any]) -> None:
        self._guard(self._on_event, event)

    def close(self) -> None:
        self._guard(self._on_close)
        self.broken = True


class _LazyTensorBoard:
    """Opens the event file at the first step event: a resumed run's first event is
    ``resume`` at step S, and the writer then purges the older points after S."""

    def __init__(self, run: RunDir):
        self.run = run
        self.writer: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        if self.writer is None:
            if event.get("event") == "end":
                return
            from ..results.tensorboard import TensorBoardWriter, tensorboard_dir

            purge = event["step"] + 1 if event.get("event") == "resume" else None
            self.writer = TensorBoardWriter(tensorboard_dir(self.run), purge_step=purge)
        self.writer(event)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def event_consumers(exp: Experiment, run: RunDir, alerts: Any | None) -> list[Consumer]:
    """The consumers for this run (call on rank 0 only).

    Args:
        alerts: the experiments file's ``settings.alerts`` (``AlertSettings``), or None.
    """
    out: list[Consumer] = []
    if exp.train.tensorboard:
        tb = _LazyTensorBoard(run)
        out.append(Consumer("TensorBoard event files", tb, tb.close))
    if alerts is not None:
        targets = AlertTargets.from_settings(alerts)
        if targets.active:
            try:
                save_targets(run, targets)  # the app and the queue runner raise "stalled" with these
            except OSError as exc:
                print(f"warning: cannot save {run.path}/alerts.json: {exc}", file=sys.stderr, flush=True)
            end = EndAlerter(run, targets)
            out.append(Consumer("alerts", end, end.close))
    return out

"""The errors of training, and the exit codes the CLI gives them."""

from __future__ import annotations

from ..errors import TuiLabError


class TrainingError(TuiLabError):
    """Training could not start or go on (bad resume folder, data too small for one batch,
    wrong process count): ``str(err)`` is the user message; the CLI exits 2."""


class RunFailed(TrainingError):
    """A run that started and then failed (out of memory, disk full while writing a
    checkpoint or ``metrics.jsonl``): the run is marked ``failed``; the CLI exits 1."""

    exit_code = 1

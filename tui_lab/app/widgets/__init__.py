"""The main screen's widgets, one module each; they are fed snapshots and scans from
:mod:`tui_lab.app.watch` and never read files themselves.

:class:`CurvePlot` is imported on first use (``tui_lab.app.widgets.CurvePlot``): it pulls
textual-plotext, which the app's first frame does not need (the main screen mounts its
plots right after that frame).
"""

from typing import Any

from .detail import ExperimentDetail
from .experiments import ExperimentTable
from .logtail import LogTail
from .runs import RunsTable
from .samples import SamplesView
from .stats import RunStats

__all__ = ["CurvePlot", "ExperimentDetail", "ExperimentTable", "LogTail", "RunStats", "RunsTable", "SamplesView"]


def __getattr__(name: str) -> Any:  # PEP 562: the plotting widget on first use
    if name == "CurvePlot":
        from .plots import CurvePlot

        return CurvePlot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The main screen's widgets, one module each; they are fed snapshots and scans from
:mod:`tui_lab.app.watch` and never read files themselves."""

from .detail import ExperimentDetail
from .experiments import ExperimentTable
from .logtail import LogTail
from .plots import CurvePlot
from .runs import RunsTable
from .samples import SamplesView
from .stats import RunStats

__all__ = ["CurvePlot", "ExperimentDetail", "ExperimentTable", "LogTail", "RunStats", "RunsTable", "SamplesView"]

"""The run store on disk (no torch): run folders, ``run.json``, ``metrics.jsonl``, the queue.

Modules, each with one job:

- :mod:`.store`: the folder layout and file formats — :class:`Status`, :class:`RunDir`
  (paths and ``run.json``), :class:`RunSummary`, :class:`MetricsWriter`, :func:`create_run`
  (the one place run folders are made);
- :mod:`.process`: process liveness (psutil, pid-reuse check) and the git commit;
- :mod:`.find`: :func:`list_runs`, :func:`resolve_run`, :func:`first_start`,
  :func:`order_runs`, :func:`all_runs`;
- :mod:`.follow`: incremental readers and the live figures (:class:`RunFollower`,
  :class:`RunSnapshot`, :class:`StoreScan`);
- :mod:`.metrics`: the definitions of perplexity and tokens/s;
- :mod:`.launcher`, :mod:`.queue`: detached training processes and the run queue.

The run types: :class:`RunDir` (a folder), :class:`RunSummary` (a folder and its
``run.json``), :class:`RunSnapshot` (a summary plus the history, for the live panels);
:class:`RunFollower` makes snapshots, :class:`StoreScan` groups summaries.
"""

from .find import all_runs, first_start, list_runs, order_runs, resolve_run
from .process import create_time, git_commit, pid_alive
from .store import (
    METRICS_FORMAT,
    RUN_FORMAT,
    STATUSES,
    MetricsWriter,
    RunDir,
    RunSummary,
    Status,
    collapse_resumes,
    create_run,
    file_format,
    is_live,
    load_history,
    process_alive,
    read_json,
    read_jsonl,
)

__all__ = [
    "METRICS_FORMAT",
    "RUN_FORMAT",
    "STATUSES",
    "MetricsWriter",
    "RunDir",
    "RunSummary",
    "Status",
    "all_runs",
    "collapse_resumes",
    "create_run",
    "create_time",
    "file_format",
    "first_start",
    "git_commit",
    "is_live",
    "list_runs",
    "load_history",
    "order_runs",
    "pid_alive",
    "process_alive",
    "read_json",
    "read_jsonl",
    "resolve_run",
]

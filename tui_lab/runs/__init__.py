"""The run store on disk (no torch): run folders, ``run.json``, ``metrics.jsonl``."""

from .store import (
    STATUSES,
    MetricsWriter,
    RunDir,
    RunSummary,
    collapse_resumes,
    create_run,
    git_commit,
    list_runs,
    load_history,
    pid_alive,
    read_json,
    read_jsonl,
)

__all__ = [
    "STATUSES",
    "MetricsWriter",
    "RunDir",
    "RunSummary",
    "collapse_resumes",
    "create_run",
    "git_commit",
    "list_runs",
    "load_history",
    "pid_alive",
    "read_json",
    "read_jsonl",
]

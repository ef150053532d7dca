"""Result tables from run folders and their export (no torch here)."""

from .formats import FORMATS, render
from .tables import Column, Table, all_runs, comparison_table, progression_table, resolve_run, run_record, runs_table

__all__ = ["FORMATS", "Column", "Table", "all_runs", "comparison_table", "progression_table", "render", "resolve_run",
           "run_record", "runs_table"]

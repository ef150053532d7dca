"""Result tables from run folders and their export (no torch here; matplotlib only when a
plot is drawn).

- tables: :func:`runs_table`, :func:`progression_table`, :func:`comparison_table` build a
  :class:`Table` (typed :class:`Column` s, rows of values) from run folders;
- formats: :func:`render` turns a table into Markdown, CSV, LaTeX (booktabs) or JSON;
- plot: :func:`tui_lab.results.plot.plot_runs` draws loss / perplexity curves (PNG, SVG).
"""

from .formats import FORMATS, format_cell, format_for_path, normalize_format, render, write_output
from .tables import (
    RUN_COLUMNS,
    Column,
    Table,
    all_runs,
    comparison_table,
    first_start,
    order_runs,
    progression_table,
    resolve_run,
    run_record,
    runs_table,
)

__all__ = [
    "FORMATS",
    "RUN_COLUMNS",
    "Column",
    "Table",
    "all_runs",
    "comparison_table",
    "first_start",
    "format_cell",
    "format_for_path",
    "normalize_format",
    "order_runs",
    "progression_table",
    "render",
    "resolve_run",
    "run_record",
    "runs_table",
    "write_output",
]

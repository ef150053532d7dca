"""Render a :class:`~tui_lab.results.tables.Table` as Markdown (GitHub), CSV, LaTeX
(booktabs) or JSON.

Deterministic: the same table gives the same bytes (no "now" anywhere). Numbers:

- Markdown, LaTeX (and the app): integers with thousands separators, floats to the
  column's decimals, a git commit shortened to 10 characters, ``-`` (Markdown) or ``--``
  (LaTeX) for a missing value;
- CSV: one header row of column keys, numbers unquoted and raw (integers as integers,
  floats to 10 significant digits), an empty cell for a missing value — so pandas reads
  numeric columns with numeric dtypes;
- JSON: an array of objects keyed by column keys (the units are in the keys), numbers as
  numbers (floats to 10 significant digits), ``null`` for a missing value.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from .tables import Column, Table

FORMATS = ("md", "csv", "latex", "json")
"""The output formats, by the name ``--format`` takes."""

ALIASES = {"markdown": "md", "tex": "latex"}
"""Other names :func:`render` accepts for a format."""

EXTENSIONS = {"md": ".md", "csv": ".csv", "latex": ".tex", "json": ".json"}
"""The usual file extension of each format."""

SHORT_HASH = 10


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _float(v: float) -> float:
    """``v`` to 10 significant digits: stable text, no binary noise (0.30000000000000004)."""
    return float(f"{v:.10g}") + 0.0  # + 0.0: no "-0.0"


def format_cell(col: Column, v: Any) -> str:
    """``v`` as people read it in column ``col`` (Markdown, LaTeX, the app): ``-`` when missing."""
    if _missing(v):
        return "-"
    if col.kind == "int" and _is_number(v):
        return f"{int(round(v)):,}"
    if col.kind == "float" and _is_number(v):
        text = f"{v:,.{col.decimals}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # never "-0.0"
    if col.kind == "hash":
        return str(v)[:SHORT_HASH]
    return str(v)


def _plain(col: Column, v: Any) -> str:
    """``v`` as a CSV cell: raw numbers, empty when missing."""
    value = _typed(col, v)
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _typed(col: Column, v: Any) -> Any:
    """``v`` as a JSON value for column ``col`` (None when missing)."""
    if _missing(v):
        return None
    if col.kind == "int" and _is_number(v):
        return int(round(v))
    if col.kind == "float" and _is_number(v):
        return _float(float(v))
    if col.kind in ("str", "hash") and not isinstance(v, str):
        return str(v)
    return v


def _md_cell(text: str) -> str:
    """A Markdown cell: ``|`` escaped, line breaks and runs of spaces made one space."""
    return " ".join(text.replace("|", "\\|").split())


def to_markdown(t: Table) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned), no title line."""
    head = "| " + " | ".join(_md_cell(c.name) for c in t.columns) + " |"
    rule = "| " + " | ".join("---:" if c.numeric else "---" for c in t.columns) + " |"
    body = ["| " + " | ".join(_md_cell(format_cell(c, r.get(c.key))) for c in t.columns) + " |" for r in t.rows]
    return "\n".join([head, rule, *body]) + "\n"


def to_csv(t: Table) -> str:
    """CSV with a header row of column keys; numbers raw and unquoted, missing values empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in t.columns])
    for r in t.rows:
        w.writerow([_plain(c, r.get(c.key)) for c in t.columns])
    return buf.getvalue()


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "Δ": r"\ensuremath{\Delta}", "×": r"\ensuremath{\times}", "→": r"\ensuremath{\to}",
    "µ": r"\ensuremath{\mu}", "±": r"\ensuremath{\pm}", "–": "--", "—": "---",
}
"""Characters that are not themselves in LaTeX text mode, and what stands for them."""


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX tabular cell or caption (line breaks become spaces:
    a blank line would end the paragraph inside a cell)."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in " ".join(str(text).split()))


def _latex_cell(col: Column, v: Any) -> str:
    if _missing(v):
        return "--"
    text = format_cell(col, v)
    if col.numeric and _is_number(v):
        return latex_escape(text).replace(",", "{,}")
    return latex_escape(text)


def to_latex(t: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``);
    numeric columns right-aligned, text left-aligned, every special character escaped."""
    spec = "".join("r" if c.numeric else "l" for c in t.columns)
    lines = [r"% requires \usepackage{booktabs}", r"\begin{table}[ht]", r"\centering", r"\small",
             f"\\caption{{{latex_escape(t.title)}}}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c.name) for c in t.columns) + r" \\", r"\midrule"]
    for r in t.rows:
        lines.append(" & ".join(_latex_cell(c, r.get(c.key)) for c in t.columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_json(t: Table) -> str:
    """A JSON array with one object per row, keyed by column key (units in the keys)."""
    rows = [{c.key: _typed(c, r.get(c.key)) for c in t.columns} for r in t.rows]
    return json.dumps(rows, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


_RENDERERS = {"md": to_markdown, "csv": to_csv, "latex": to_latex, "json": to_json}


def normalize_format(fmt: str) -> str:
    """The canonical name (one of :data:`FORMATS`) of ``fmt`` or an alias (``tex``, ``markdown``).

    Raises:
        ValueError: unknown format.
    """
    name = ALIASES.get(str(fmt).lower(), str(fmt).lower())
    if name not in _RENDERERS:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return name


def format_for_path(path: Path | str) -> str | None:
    """The format a file name's extension asks for (``.md``, ``.csv``, ``.tex``, ``.json``), or None."""
    suffix = Path(path).suffix.lower()
    for fmt, ext in EXTENSIONS.items():
        if suffix == ext:
            return fmt
    return {".markdown": "md", ".latex": "latex"}.get(suffix)


def render(t: Table, fmt: str) -> str:
    """The table as text in ``fmt`` (``md``, ``csv``, ``latex`` or ``json``; or an alias).

    Raises:
        ValueError: unknown format.
    """
    return _RENDERERS[normalize_format(fmt)](t)


def write_output(path: Path | str, data: str | bytes) -> None:
    """Write an export file atomically (:func:`tui_lab.atomic.atomic_write`: readers see
    the old file or the new one, never half; nothing is left behind on failure; a new file
    gets the usual permissions under the umask).

    Raises:
        OSError: the file cannot be written.
    """
    atomic_write(path, data)

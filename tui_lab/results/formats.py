"""Render a :class:`Table` as Markdown (GitHub), CSV, LaTeX (booktabs) or JSON.

Deterministic: the same runs give the same bytes. Numbers: integers with thousands
separators in Markdown and LaTeX, raw in CSV and JSON; floats to the column's decimals
(JSON keeps full precision); missing values are ``-`` (Markdown, LaTeX), empty (CSV) or
``null`` (JSON).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .tables import Column, Table

FORMATS = ("md", "csv", "latex", "json")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _human(col: Column, v: Any) -> str:
    if _missing(v):
        return "-"
    if col.kind == "int" and isinstance(v, (int, float)):
        return f"{int(round(v)):,}"
    if col.kind == "float" and isinstance(v, (int, float)):
        return f"{v:,.{col.decimals}f}"
    return str(v)


def _plain(col: Column, v: Any) -> str:
    if _missing(v):
        return ""
    if col.kind == "int" and isinstance(v, (int, float)):
        return str(int(round(v)))
    if col.kind == "float" and isinstance(v, (int, float)):
        return repr(round(float(v), 6))
    return str(v)


def to_markdown(t: Table) -> str:
    head = "| " + " | ".join(c.header for c in t.columns) + " |"
    rule = "| " + " | ".join("---:" if c.kind in ("int", "float") else "---" for c in t.columns) + " |"
    body = ["| " + " | ".join(_human(c, r.get(c.key)).replace("|", "\\|") for c in t.columns) + " |" for r in t.rows]
    return "\n".join([head, rule, *body]) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in t.columns])
    for r in t.rows:
        w.writerow([_plain(c, r.get(c.key)) for c in t.columns])
    return buf.getvalue()


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(t: Table) -> str:
    spec = "".join("r" if c.kind in ("int", "float") else "l" for c in t.columns)
    lines = [r"% requires \usepackage{booktabs}", r"\begin{table}[ht]", r"\centering", r"\small",
             f"\\caption{{{latex_escape(t.title)}}}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c.header) for c in t.columns) + r" \\", r"\midrule"]
    for r in t.rows:
        cells = [latex_escape(_human(c, r.get(c.key))).replace(",", "{,}") if c.kind in ("int", "float")
                 else latex_escape(_human(c, r.get(c.key))) for c in t.columns]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_json(t: Table) -> str:
    def value(c: Column, v: Any) -> Any:
        if _missing(v):
            return None
        if c.kind == "int" and isinstance(v, (int, float)):
            return int(round(v))
        if c.kind == "float" and isinstance(v, (int, float)):
            return round(float(v), 6)
        return v

    return json.dumps([{c.key: value(c, r.get(c.key)) for c in t.columns} for r in t.rows], indent=2) + "\n"


def render(t: Table, fmt: str) -> str:
    """The table as text in ``fmt`` (md, csv, latex, json).

    Raises:
        ValueError: unknown format.
    """
    try:
        return {"md": to_markdown, "csv": to_csv, "latex": to_latex, "json": to_json}[fmt](t)
    except KeyError:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})") from None

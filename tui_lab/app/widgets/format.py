"""Number and status formatting shared by the widgets."""

from __future__ import annotations

import math
import re
from typing import Any

STATUS_STYLE = {
    "running": "bold green", "starting": "green", "finished": "cyan", "stopped": "yellow",
    "failed": "bold red", "diverged": "bold magenta", "interrupted": "red", "never run": "dim", "unreadable": "red",
    "resuming": "bold yellow",
}


def status_style(status: str) -> str:
    return STATUS_STYLE.get(status, "")


def fmt_int(n: Any, missing: str = "-") -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else missing


def fmt_count(n: Any, missing: str = "-") -> str:
    """A compact count: 31.3K, 869K, 63.9M, 1.2B."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return missing
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return str(int(n))


def fmt_float(v: Any, spec: str = ".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def fmt_ppl(v: Any) -> str:
    """Perplexity with 4 significant figures at most: 11.84, 120.7, 1,090, 50,505."""
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_duration(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
_CONTROLS = {c: "\N{REPLACEMENT CHARACTER}" for c in [*range(0, 9), *range(11, 32), 127, *range(128, 160)]}


def printable(text: str) -> str:
    """``text`` safe to put on a terminal: escape sequences dropped, other control characters
    (a byte-level model's samples are full of them) shown as U+FFFD; newlines and tabs kept."""
    return _ANSI.sub("", text).translate(_CONTROLS)

"""``train.log``: the human-readable lines of a run, written however the run was started.

A detached run (the app, the queue) has its stdout and stderr redirected into
``train.log`` already; a foreground ``tui-lab train`` appends the same lines itself. So
that no line is written twice, :class:`RunLog` writes nothing when this process's stdout
is that file.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import Any, TextIO

from ..runs.store import RunDir


def stdout_is(path: os.PathLike | str) -> bool:
    """True when this process's stdout is the file ``path`` (same device and inode)."""
    try:
        out, target = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (out.st_dev, out.st_ino) == (target.st_dev, target.st_ino)


def printable(text: str, indent: str = "    ") -> str:
    """``text`` as a terminal shows it safely: control and format characters (``\\u200e``,
    escape sequences) dropped, tabs as spaces, line breaks followed by ``indent``."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\n" + indent)
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def event_line(e: dict[str, Any]) -> str | None:
    """The ``train.log`` / ``--quiet`` line of a metrics event (evaluations, samples, resumes), or None."""
    ev = e.get("event")
    if ev == "eval":
        return (f"step {e['step']} val_loss {e['val_loss']:.4f} val_ppl {e['val_ppl']:.2f} "
                f"acc {e['val_acc']:.3f} eval_s {e.get('eval_s', 0):.1f}" + (" best" if e.get("is_best") else ""))
    if ev == "sample":
        return f"  sample at step {e['step']}: {printable(e['prompt'])} → {printable(e['text'])}"
    if ev == "resume":
        return f"resumed at step {e['step']}"
    return None


class RunLog:
    """Appends lines to ``run``'s ``train.log`` (unless stdout already goes there)."""

    def __init__(self, run: RunDir):
        self._fh: TextIO | None = None
        if not stdout_is(run.log_path):
            try:
                self._fh = open(run.log_path, "a", encoding="utf-8")
            except OSError:
                self._fh = None

    @property
    def active(self) -> bool:
        return self._fh is not None

    def write(self, line: str) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(line.rstrip("\n") + "\n")
            self._fh.flush()
        except OSError:  # a full disk must not stop training over a log line
            pass

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None

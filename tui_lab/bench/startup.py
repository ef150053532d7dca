"""App start-up: launch → first frame of ``tui-lab`` and of a bare Textual app, alternating.

Both run headless in a fresh interpreter (``App.run_test(size=(120, 40))``); the first
frame is the first screen update Textual displays (its ``post_display_hook``) of a screen
with widgets on it — what a terminal would show. ``*_idle_s``: until the first
``pilot.pause()`` returns (the app has also handled what it queued after that frame,
e.g. tui-lab's deferred config validation). The tui-lab side goes
the way ``tui-lab`` with no command goes (:mod:`tui_lab.launch`): pause the garbage
collector, read the experiments file (validated right after the first frame), import the
app, open it (the background ``tui-lab list --json`` count is
off, it never blocks the first frame). The bare app is the framework's floor: a Header, a
DataTable with one row, a Static and a Footer.

Figures: ``first_frame_s`` = seconds from ``subprocess`` start (interpreter start-up
included) to the line the child prints at its first frame; ``in_process_s`` = the same
moment from the child's first line of code. Medians of ``repeats`` alternating runs, after
one untimed launch of each with bytecode writing on (warm ``.pyc`` and file caches: what
every launch after a user's first finds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from .stats import alternate, put, ratio

STARTUP_REPEATS = 11
"""Launches of each app at least: a launch takes ≈ 0.3 s, and with 5 the median of the bare
app alone moved by ±15 % between runs on the project's 2-core machine (ratios 1.40–1.64 for
the same code); 11 cost ≈ 7 s more."""

_FRAME_HOOK = """\
def post_display_hook(self):  # Textual calls it after every screen update it displays
    app_hook(self)  # the app's own hook first (tui-lab's mounts its panels after the first frame)
    if not getattr(self, "_bench_seen", False) and self.screen.children:
        self._bench_seen = True
        print("FRAME", time.perf_counter() - t0, "torch" in sys.modules, "pydantic" in sys.modules, flush=True)
"""

_TUI_LAB = """\
import time; t0 = time.perf_counter()
import asyncio, gc, sys
gc.disable()  # as tui_lab.launch.main does on the way to the app (its first frame turns it back on)
from pathlib import Path
import tui_lab.launch
from tui_lab.config import load_experiments
cfg = load_experiments(Path(CONFIG_PATH), validate=False)
from tui_lab.app.app import TuiLabApp
import tui_lab.app.counts as _counts
async def _no_counts(path): return {}
_counts.experiment_counts = _no_counts  # the `tui-lab list --json` subprocess is not start-up
app_hook = TuiLabApp.post_display_hook
""" + _FRAME_HOOK + """\
TuiLabApp.post_display_hook = post_display_hook
async def main():
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        print("IDLE", time.perf_counter() - t0, flush=True)
asyncio.run(main())
"""

_BARE = """\
import time; t0 = time.perf_counter()
import asyncio, sys
from textual.app import App
from textual.widgets import DataTable, Footer, Header, Static
app_hook = App.post_display_hook
""" + _FRAME_HOOK + """\
class Bare(App):
    post_display_hook = post_display_hook
    def compose(self):
        yield Header(); yield DataTable(); yield Static("bare Textual app"); yield Footer()
    def on_mount(self):
        table = self.query_one(DataTable); table.add_columns("name", "status"); table.add_row("exp1", "never run")
async def main():
    app = Bare()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        print("IDLE", time.perf_counter() - t0, flush=True)
asyncio.run(main())
"""


def _child_env() -> dict[str, str]:
    """This environment, with bytecode writing on: a user's second launch finds its ``.pyc``
    files (an editable install's are written at the first launch; a wheel's at install), so
    a ``PYTHONDONTWRITEBYTECODE`` here would time compiling tui-lab from source every launch
    against a framework whose bytecode is already there."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _launch(script: str, info: dict[str, Any], pythonpath: str | None = None) -> float:
    """Run ``script`` in a fresh interpreter (``pythonpath``: a tree to import tui_lab from);
    seconds from start to its FRAME line."""
    env = _child_env()
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    line = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("FRAME"):
            break
    first = time.perf_counter() - t
    rest, err = proc.communicate(timeout=120)
    if not line.startswith("FRAME") or "IDLE" not in rest:
        raise RuntimeError(f"the app did not start: {(err or '')[-300:]}")
    _, in_process, torch_loaded, pydantic_loaded = line.split()
    info.setdefault("in_process", []).append(float(in_process))
    info.setdefault("idle", []).append(float(rest.split("IDLE")[1].split()[0]))
    info["torch"], info["pydantic"] = torch_loaded == "True", pydantic_loaded == "True"
    return first


def bench_startup(config_path: str, repeats: int = STARTUP_REPEATS) -> dict[str, Any]:
    """``tui-lab`` vs a bare Textual app, ``repeats`` (:data:`STARTUP_REPEATS` by default) alternating launches each.

    Returns ``startup_first_frame_s`` / ``bare_textual_first_frame_s`` (medians, ``_min``,
    ``_max``, ``_runs``), the same from inside the process (``*_in_process_s``), their ratio
    ``startup_ratio_vs_bare`` (target ≤ 1.5) and whether torch / pydantic were imported
    before tui-lab's first frame; ``startup_error`` if an app did not start.
    """
    ours: dict[str, Any] = {}
    bare: dict[str, Any] = {}
    measures = {"tui_lab": lambda: _launch(_TUI_LAB.replace("CONFIG_PATH", repr(config_path)), ours),
                "bare": lambda: _launch(_BARE, bare)}
    try:
        alternate(measures, 1)  # untimed: warm bytecode and file caches, as a user's second launch finds them
        ours.clear()
        bare.clear()
        runs = alternate(measures, repeats)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return {"startup_error": str(exc)[-300:]}
    out: dict[str, Any] = {"startup_repeats": repeats, "startup_caches": "warm (one untimed launch of each first)"}
    put(out, "startup_first_frame_s", runs["tui_lab"], 3)
    put(out, "bare_textual_first_frame_s", runs["bare"], 3)
    put(out, "startup_in_process_s", ours["in_process"], 3)
    put(out, "bare_textual_in_process_s", bare["in_process"], 3)
    put(out, "startup_idle_s", ours["idle"], 3)
    put(out, "bare_textual_idle_s", bare["idle"], 3)
    ratio(out, "startup_ratio_vs_bare", runs["tui_lab"], runs["bare"], 2)
    out["startup_imports_torch"] = ours["torch"]
    out["startup_imports_pydantic_before_first_frame"] = ours["pydantic"]
    return out

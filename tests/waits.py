"""Waits on conditions (never fixed sleeps): return as soon as the condition holds."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition",
               poll_s: float = 0.05) -> None:
    """Return as soon as ``predicate()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition",
                   poll_s: float = 0.05) -> None:
    """The same inside a Textual ``run_test()``: let the app run (``pilot.pause``) until
    ``predicate()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(poll_s)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

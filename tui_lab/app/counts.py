"""Exact parameter counts and cached token counts of every experiment, for the main screen.

They come from a ``tui-lab list --json`` subprocess, so the app's own process never imports
torch (building a model is what counts its parameters exactly).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


async def experiment_counts(config: Path) -> dict[str, dict[str, Any]]:
    """``{name: row of tui-lab list --json}`` for the experiments file ``config``. Cancelled
    (the app quits before the counts come), the subprocess is killed and reaped.

    Raises:
        OSError: the subprocess could not start.
        ValueError: its output is not the expected JSON list.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui_lab", "list", "--json", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:  # the app is closing (or asked again): leave no process behind
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    rows = json.loads(out or b"[]")
    if not isinstance(rows, list):
        raise ValueError("tui-lab list --json did not print a list")
    return {row["name"]: row for row in rows if isinstance(row, dict) and "name" in row}

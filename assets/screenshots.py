"""Regenerate the README's screenshots from real runs: `python assets/screenshots.py RUNS_DIR`.

RUNS_DIR holds real run folders (e.g. after `tui-lab train demo`); the pictures are the app at
120×40 on ./experiments.toml with that runs folder: main screen, results, chat with one reply.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tui_lab.app.app import TuiLabApp
from tui_lab.config import load_experiments

HERE = Path(__file__).resolve().parent


async def main(runs_dir: Path) -> None:
    app = TuiLabApp(load_experiments(HERE.parent / "experiments.toml"), runs_dir=runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(4.0)  # parameter counts arrive from the `tui-lab list` subprocess
        app.save_screenshot(str(HERE / "main.svg"))
        await pilot.press("r")
        await pilot.pause(0.5)
        app.save_screenshot(str(HERE / "results.svg"))
        await pilot.press("escape")
        await pilot.press("c")
        await pilot.pause(3.0)
        await pilot.press(*"The return statement")
        await pilot.press("enter")
        await pilot.pause(4.0)
        app.save_screenshot(str(HERE / "chat.svg"))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

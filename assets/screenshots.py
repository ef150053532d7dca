"""Regenerate the README's screenshots from real runs: `python assets/screenshots.py RUNS_DIR`.

RUNS_DIR holds real run folders (e.g. after `tui-lab train demo`); the pictures are the app at
120×40 on ./experiments.toml with that runs folder: main screen, results, chat with one reply.

`python assets/screenshots.py RUNS_DIR compare` draws only the compare view (`compare.svg`):
every run of `demo` in RUNS_DIR marked with space, `v`, the oldest pinned with `b`
(e.g. three `tui-lab train demo --set train.max_steps=60 --set train.lr=...` runs).
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


async def compare(runs_dir: Path, experiment: str = "demo") -> None:
    from tui_lab.app.screens.compare import CompareScreen

    app = TuiLabApp(load_experiments(HERE.parent / "experiments.toml"), runs_dir=runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(2.0)
        screen = app.main
        experiments = screen.query_one("#experiments")
        experiments.move_cursor(row=list(app.cfg.experiments).index(experiment))
        await pilot.pause(1.0)
        screen.query_one("#runs").focus()
        n = len(screen.runs_of(experiment))
        for i in range(n):
            await pilot.press("space")
            if i < n - 1:
                await pilot.press("down")
                await pilot.pause(0.5)
        await pilot.press("v")
        await pilot.pause(3.0)
        assert isinstance(app.screen, CompareScreen)
        await pilot.press(*["down"] * (n - 1), "b")  # the oldest run (marked last) is the baseline
        await pilot.pause(1.0)
        app.save_screenshot(str(HERE / "compare.svg"))


if __name__ == "__main__":
    if sys.argv[2:] == ["compare"]:
        asyncio.run(compare(Path(sys.argv[1])))
    else:
        asyncio.run(main(Path(sys.argv[1])))

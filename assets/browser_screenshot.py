"""Regenerate assets/browser.png: `tui-lab serve` in headless Chromium, the demo training live.

Usage: python assets/browser_screenshot.py [WORK_DIR [MIN_STEP]]   (Debian's chromium + Playwright)

It writes the repository's experiments.toml into WORK_DIR (a temp folder by default), serves the
app there, presses `t` on the demo in the page (unless a demo run is training there already: the
page then reattaches to it), waits until the run has evaluated at MIN_STEP (default 100) or
later, takes the picture, then presses `s` in the page to stop the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tui_lab.runs import RunDir

    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tui-lab-browser-"))
    min_step = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "experiments.toml", work / "experiments.toml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "tui_lab", "serve", "--port", str(port)], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(str(work / "chromium-profile"), executable_path="/usr/bin/chromium",
                                                        headless=True, args=ARGS, viewport={"width": 1100, "height": 640})
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.body.classList.contains('-first-byte')", timeout=120_000)
            page.wait_for_timeout(1500)
            page.locator(".xterm-helper-textarea").focus()
            demo = work / "runs" / "demo"
            if not (demo.is_dir() and any(RunDir(p).read_run().get("status") == "running" for p in demo.iterdir())):
                page.keyboard.press("t")
            while not (demo.is_dir() and any((p / "run.json").exists() for p in demo.iterdir())):
                time.sleep(0.5)
            run = RunDir(max((p for p in demo.iterdir() if (p / "run.json").exists()), key=lambda p: p.name))
            while (run.read_run().get("step") or 0) < min_step and run.read_run().get("status") in ("starting", "running"):
                time.sleep(1)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(ROOT / "assets" / "browser.png"))
            page.keyboard.press("s")
            while run.read_run().get("status") == "running":
                time.sleep(0.5)
            print(f"wrote assets/browser.png; the run ended {run.read_run().get('status')}")
            ctx.close()
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

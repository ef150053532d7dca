"""`tui-lab serve` in a real browser: Debian's headless Chromium driven by Playwright for Python
(no downloaded browser build). A key pressed in the page starts a real, detached training run.
Also the loopback-only default, checked without a browser."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tui_lab.runs import RunDir, pid_alive

from tiny import tiny_toml

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_non_loopback_host_is_refused_without_public(tmp_path):
    (tmp_path / "experiments.toml").write_text(tiny_toml("demo"))
    r = subprocess.run([sys.executable, "-m", "tui_lab", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--host 0.0.0.0: not a loopback address" in r.stderr and "--public" in r.stderr
    assert "ssh -L" in r.stderr and "Traceback" not in r.stderr


def test_loopback_hosts():
    from tui_lab.cli.serve import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "gpubox", ""))


def test_port_in_use_is_a_clean_error(tmp_path):
    (tmp_path / "experiments.toml").write_text(tiny_toml("demo"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tui_lab", "serve", "--port", str(port)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"--port {port}: cannot listen" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_public_host_serves_with_a_warning(tmp_path):
    (tmp_path / "experiments.toml").write_text(tiny_toml("demo"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui_lab", "serve", "--host", "0.0.0.0", "--port", str(port),
                             "--public"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_until(lambda: serving(f"http://127.0.0.1:{port}/"), 60, "the server")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "warning:" in err and "anyone who can reach this port can start and stop training" in err


@pytest.mark.slow
def test_browser_page_starts_a_real_run(tmp_path):
    """Open the served page in headless Chromium, wait for the app to render, press t on the
    highlighted demo experiment, and see its run folder appear and say running on disk."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                   "(pip install playwright; the browser is Debian's chromium, never downloaded)")
    (tmp_path / "experiments.toml").write_text(
        '[settings]\nruns_dir = "runs"\n\n' + tiny_toml("demo", max_steps=100000, eval_every=20, log_every=2))
    runs = tmp_path / "runs"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tui_lab", "serve", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    run: RunDir | None = None
    try:
        wait_until(lambda: serving(f"http://127.0.0.1:{port}/"), 60, "tui-lab serve to listen")
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1200, "height": 720})
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                # textual-serve marks the page once the app's first frame has arrived
                page.wait_for_function("document.body.classList.contains('-first-byte')", timeout=120_000)
                page.wait_for_timeout(1500)  # the main screen mounts and focuses the experiments table
                page.locator(".xterm-helper-textarea").focus()

                def new_runs() -> list[Path]:
                    return [p for p in (runs / "demo").iterdir()] if (runs / "demo").is_dir() else []

                page.keyboard.press("t")
                wait_until(lambda: len(new_runs()) == 1, 60, "the run folder")
                run = RunDir(new_runs()[0])
                wait_until(lambda: run.read_run().get("status") == "running", 180, "the run to say running")
                wait_until(lambda: b'"event":"train"' in run.metrics_path.read_bytes(), 120, "training steps")
                page.wait_for_timeout(2000)  # the live panels catch up
                page.screenshot(path=str(tmp_path / "browser.png"))
            finally:
                browser.close()
        assert (tmp_path / "browser.png").stat().st_size > 10_000
        info = run.read_run()
        assert info["experiment"] == "demo" and pid_alive(info["pid"], info.get("proc_start"))
        assert len(new_runs()) == 1  # one key press, one run
    finally:
        if run is not None:  # the run is detached (its own session): stop it like the app's s key
            pid = run.read_run().get("pid")
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
                try:
                    wait_until(lambda: not pid_alive(pid), 60, "the run to stop")
                except AssertionError:
                    os.kill(pid, signal.SIGKILL)
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()

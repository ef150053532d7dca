"""The app's notifications when any run changes state (selected or not), the terminal bell,
and the app raising a "stalled" alert for a running run that writes nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_lab.app.app import TuiLabApp
from tui_lab.atomic import atomic_write_json
from tui_lab.config import load_experiments
from tui_lab.runs import RunDir

from test_alerts import Webhook
from tiny import tiny_toml
from waits import wait_for


def run_folder(runs: Path, name: str, run_id: str, status: str, pid: int) -> RunDir:
    run = RunDir(runs / name / run_id)
    run.path.mkdir(parents=True)
    atomic_write_json(run.run_path, {"experiment": name, "run_id": run_id, "status": status, "pid": pid,
                                     "host": socket.gethostname(), "started_at": time.time(), "total_steps": 100})
    return run


def messages(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.slow
async def test_state_changes_of_any_run_notify_and_ring_and_a_silent_run_is_stalled(tmp_path, no_counts):
    hook = Webhook()
    cfg_path = tmp_path / "experiments.toml"
    cfg_path.write_text('[settings]\nbell = true\n[settings.alerts]\nstall_minutes = 0.05\n\n'
                        + tiny_toml("a") + tiny_toml("b"))
    runs = tmp_path / "runs"
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        silent = run_folder(runs, "b", "r-silent", "running", worker.pid)
        # a run started with alerts: the app raises its "stalled" alert with the run's own settings
        atomic_write_json(silent.path / "alerts.json", {"on": ["stalled"], "command": None, "webhook": hook.url,
                                                        "stall_minutes": 0.05})
        ending = run_folder(runs, "a", "r-ending", "running", os.getpid())
        app = TuiLabApp(load_experiments(cfg_path))
        bells = []
        app.bell = lambda: bells.append(time.monotonic())
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: any("b/r-silent: stalled" in m for m in messages(app)), 60, "stalled")
            assert any("no new metrics" in m for m in messages(app))
            await wait_for(pilot, lambda: hook.of("r-silent"), 30, "the stalled alert")
            ending.update_run(status="finished", message="reached 100 steps")  # not the selected run
            await wait_for(pilot, lambda: any("a/r-ending: finished" in m for m in messages(app)), 30, "finished")
            assert "a/r-ending: finished (reached 100 steps)" in messages(app)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            await wait_for(pilot, lambda: any("b/r-silent: interrupted" in m for m in messages(app)), 30,
                           "the dead process")
            # the process gone without an end event: a new stall of the run, alerted once more
            await wait_for(pilot, lambda: len(hook.of("r-silent")) >= 2, 30, "the second stalled alert")
            await pilot.pause(1.0)
        assert len(bells) >= 3  # settings.bell = true: one ring per notification
        posts = hook.of("r-silent")
        assert [p["status"] for p in posts] == ["stalled", "stalled"]
        assert "no new metrics" in posts[0]["message"] and "gone without an end event" in posts[1]["message"]
        assert "alert: stalled: sent to the webhook" in (silent.path / "train.log").read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
        hook.server.shutdown()

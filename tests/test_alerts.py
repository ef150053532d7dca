"""Alerts of real runs: a webhook server on 127.0.0.1 gets one POST per end state (finished,
diverged through the NaN fault, stopped by SIGINT, failed); a hanging alert command is cut at
its timeout and the run still ends finished; a paused (SIGSTOP) training process is reported
stalled by the queue runner, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tui_lab.runs import RunDir, pid_alive
from tui_lab.runs.alerts import COMMAND_TIMEOUT_S, AlertTargets, send_alert

from waits import wait_until
from tiny import tiny_toml


class Webhook:
    """An HTTP server on 127.0.0.1 that records every POST's JSON body."""

    def __init__(self) -> None:
        posts: list[dict] = []
        self.posts = posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append({"content_type": self.headers.get("Content-Type"), **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, run_id: str) -> list[dict]:
        return [p for p in self.posts if p.get("run_id") == run_id]


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def write_config(folder: Path, alerts: str, **train) -> Path:
    path = folder / "experiments.toml"
    path.write_text(f"[settings.alerts]\n{alerts}\n\n" + tiny_toml(**{"eval_max_tokens": 1024, **train}))
    return path


def train_proc(cfg: Path, runs: Path, run_id: str, *extra: str, nan_step: int | None = None) -> subprocess.Popen:
    """``tui-lab train`` in its own session; ``nan_step``: through tests/fault_entry.py, the
    loss of that step is NaN (a real divergence)."""
    entry = ([str(Path(__file__).resolve().parent / "fault_entry.py"), "--nan-step", str(nan_step)]
             if nan_step is not None else ["-m", "tui_lab"])
    return subprocess.Popen(
        [sys.executable, *entry, "train", "tiny", "--config", str(cfg), "--runs-dir", str(runs),
         "--run-id", run_id, "--quiet", "--device", "cpu", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_webhook_gets_one_post_per_end_state_of_real_runs(tmp_path, webhook):
    cfg = write_config(tmp_path, f'webhook = "{webhook.url}"', max_steps=20, eval_every=10)
    runs = tmp_path / "runs"
    (tmp_path / "empty").mkdir()
    procs = {
        "finished": train_proc(cfg, runs, "fin"),
        "diverged": train_proc(cfg, runs, "div", nan_step=7),
        "failed": train_proc(cfg, runs, "fail", "--set", f"data.path={tmp_path / 'empty'}"),
        "stopped": train_proc(cfg, runs, "stop", "--set", "train.max_steps=100000"),
    }
    stop_run = RunDir(runs / "tiny" / "stop")
    wait_until(lambda: (stop_run.checkpoint_dir / "last.state.pt").exists(), 180, "a first checkpoint")
    os.kill(procs["stopped"].pid, signal.SIGINT)
    for p in procs.values():
        p.communicate(timeout=300)
    ids = {"finished": "fin", "diverged": "div", "failed": "fail", "stopped": "stop"}
    for status, run_id in ids.items():
        run = RunDir(runs / "tiny" / run_id)
        assert run.read_run()["status"] == status
        posts = webhook.of(run_id)
        assert len(posts) == 1, (status, posts)  # exactly one POST per end state
        post = posts[0]
        assert post["content_type"] == "application/json"
        assert post["status"] == status and post["experiment"] == "tiny"
        assert post["run_dir"] == str(run.path.resolve())
        assert post["message"] == run.read_run()["message"]
        assert post["text"].startswith(f"tui-lab: tiny/{run_id} {status}")
        assert "alert: " + status + ": sent to the webhook" in (run.path / "train.log").read_text()
    assert webhook.of("fin")[0]["best_val_ppl"] == pytest.approx(RunDir(runs / "tiny" / "fin").read_run()["best_val_ppl"])
    assert webhook.of("fin")[0]["step"] == 20
    assert "non-finite training loss" in webhook.of("div")[0]["message"]
    assert "stopped by signal" in webhook.of("stop")[0]["message"]
    assert str(tmp_path / "empty") in webhook.of("fail")[0]["message"]
    assert len(webhook.posts) == 4


@pytest.mark.slow
def test_hanging_command_and_unreachable_webhook_never_change_the_outcome(tmp_path):
    marker = tmp_path / "command-ran"
    cfg = write_config(tmp_path, f'command = "touch {marker}; exec sleep 600"\nwebhook = "http://127.0.0.1:1/nothing"',
                       max_steps=10, eval_every=10)
    runs = tmp_path / "runs"
    p = train_proc(cfg, runs, "r")
    out, err = p.communicate(timeout=300)  # the hanging command (sleep 600) did not hold the run
    assert p.returncode == 0, err
    run = RunDir(runs / "tiny" / "r")
    assert run.read_run()["status"] == "finished"
    assert marker.exists()
    log = (run.path / "train.log").read_text()
    assert f"finished: command failed: timed out after {COMMAND_TIMEOUT_S:g} s (killed)" in log
    assert "finished: webhook failed: unreachable" in log
    assert "Traceback" not in err


def test_command_gets_the_alert_as_json_on_stdin_and_in_tui_lab_variables(tmp_path):
    run = RunDir(tmp_path / "runs" / "exp" / "r1")
    run.path.mkdir(parents=True)
    run.update_run(experiment="exp", run_id="r1", status="finished", best_val_ppl=12.5, message="reached 9 steps")
    out = tmp_path / "out"
    targets = AlertTargets(command=f"cat > {out}.json; env | grep ^TUI_LAB_ | sort > {out}.env; exit 3")
    failures = send_alert(run, targets, "finished")
    assert failures == ["command: exit code 3"]  # a non-zero exit is reported and logged, never raised
    assert "finished: command failed: exit code 3" in (run.path / "train.log").read_text()
    payload = json.loads(Path(f"{out}.json").read_text())
    assert payload["status"] == "finished" and payload["best_val_ppl"] == 12.5 and payload["run_id"] == "r1"
    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines())
    assert env["TUI_LAB_EXPERIMENT"] == "exp" and env["TUI_LAB_RUN_ID"] == "r1"
    assert env["TUI_LAB_STATUS"] == "finished" and env["TUI_LAB_BEST_VAL_PPL"] == "12.5"
    assert env["TUI_LAB_MESSAGE"] == "reached 9 steps"
    assert send_alert(run, AlertTargets(on=("failed",), command=f"touch {out}.no"), "finished") == []
    assert not Path(f"{out}.no").exists()  # states not in `on` send nothing


@pytest.mark.slow
def test_queue_runner_reports_a_paused_training_process_as_stalled_once(tmp_path, webhook):
    cfg = write_config(tmp_path, f'webhook = "{webhook.url}"\nstall_minutes = 0.05', max_steps=80, eval_every=40)
    runs = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "tui_lab", "queue", "add", "tiny", "--config", str(cfg),
                        "--runs-dir", str(runs), "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    pid = None
    try:
        def running_with_metrics() -> bool:
            runs_ = [p for p in (runs / "tiny").glob("*") if (p / "run.json").exists()] if (runs / "tiny").is_dir() else []
            if not runs_:
                return False
            info = RunDir(runs_[0]).read_run()
            return info.get("status") == "running" and b'"event":"train"' in (runs_[0] / "metrics.jsonl").read_bytes()

        wait_until(running_with_metrics, 240, "the queued run to train")
        run = RunDir(next(p for p in (runs / "tiny").iterdir() if (p / "run.json").exists()))
        pid = run.read_run()["pid"]
        before = len(webhook.of(run.run_id))  # a loaded machine may already have paused > 3 s once
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: len(webhook.of(run.run_id)) > before, 120, "a stalled alert")
        time.sleep(4)  # several more checks of the runner: still one alert for this one stall
        posts = webhook.of(run.run_id)
        assert len(posts) == before + 1 and {p["status"] for p in posts} == {"stalled"}
        assert "no new metrics" in posts[-1]["message"] and "stall_minutes 0.05" in posts[-1]["message"]
        assert run.read_run()["status"] == "running"
        os.kill(pid, signal.SIGCONT)
        wait_until(lambda: run.read_run().get("status") == "finished", 300, "the run to finish")
        wait_until(lambda: any(p["status"] == "finished" for p in webhook.of(run.run_id)), 30, "the finished alert")
        time.sleep(1)
        statuses = [p["status"] for p in webhook.of(run.run_id)]
        # (a loaded machine may pause > 3 s again after SIGCONT: more "stalled" alerts are right)
        assert statuses[-1] == "finished" and statuses.count("finished") == 1
        assert "stalled: no new metrics" in (runs / "queue.log").read_text()
        wait_until(lambda: not pid_alive(pid), 60, "the training process to exit")
        pid = None
    finally:
        if pid is not None:  # the test failed midway: leave no paused process behind
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

"""Alerts when a run ends or stalls: a shell command and/or a webhook (no torch, no config here).

Who raises what:

- the training process (rank 0) raises its own end state — ``finished``, ``failed``,
  ``diverged``, ``stopped`` — after ``run.json`` holds it (:class:`EndAlerter`), so alerts
  work with the app closed;
- the app and the queue runner raise ``stalled`` (:func:`check_stall`): a run whose
  ``run.json`` says running but whose ``metrics.jsonl`` / ``run.json`` have not changed for
  ``stall_minutes``, or whose process is gone without an end event. A marker in the run
  folder (``alerts.sent.json``, under ``flock``) makes one stall raise one alert, whoever
  sees it first.

The trainer saves the settings it was started with in the run folder (``alerts.json``,
mode 0600: a webhook URL can hold a token), so the app and the queue runner alert with the
run's own settings whichever experiments file they read.

Delivery: the ``command`` runs through ``/bin/sh`` with the alert as JSON on stdin and
``TUI_LAB_EXPERIMENT``, ``TUI_LAB_RUN_ID``, ``TUI_LAB_RUN_DIR``, ``TUI_LAB_STATUS``,
``TUI_LAB_BEST_VAL_PPL``, ``TUI_LAB_MESSAGE`` in its environment; it is killed (its whole
process group) after :data:`COMMAND_TIMEOUT_S`. The ``webhook`` gets the same JSON as a POST
(:data:`WEBHOOK_TIMEOUT_S`); its ``text`` field is the one-line summary Slack / Mattermost
show. A failed alert (non-zero exit, timeout, unreachable URL, HTTP error) is logged in the
run's ``train.log`` and never raises: it cannot change a run's outcome.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..atomic import atomic_write_json
from .store import LOG_FILE, RunDir, read_json

END_STATES = ("finished", "failed", "diverged", "stopped")
ALERT_STATES = END_STATES + ("stalled",)
ALERTS_FILE = "alerts.json"
SENT_FILE = "alerts.sent.json"
COMMAND_TIMEOUT_S = 10.0
"""Seconds an alert command may run before it (and its process group) is killed."""
WEBHOOK_TIMEOUT_S = 5.0
"""Seconds for the webhook's connection and answer."""


@dataclass(frozen=True)
class AlertTargets:
    """Where alerts go: the ``[settings.alerts]`` table as plain values."""

    on: tuple[str, ...] = ALERT_STATES
    command: str | None = None
    webhook: str | None = None
    stall_minutes: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> "AlertTargets":
        """From a validated ``AlertSettings`` (any object with these attributes)."""
        return cls(tuple(settings.on), settings.command, settings.webhook, float(settings.stall_minutes))

    @property
    def active(self) -> bool:
        """Whether any alert can be delivered at all."""
        return bool(self.on) and bool(self.command or self.webhook)

    def wants(self, status: str) -> bool:
        return self.active and status in self.on


def save_targets(run: RunDir, targets: AlertTargets) -> None:
    """Write ``alerts.json`` in the run folder (readable by its owner only)."""
    path = run.path / ALERTS_FILE
    atomic_write_json(path, asdict(targets))
    os.chmod(path, 0o600)


def load_targets(run: RunDir) -> AlertTargets | None:
    """The settings the run was started with, or None (none saved, or unreadable)."""
    data = read_json(run.path / ALERTS_FILE)
    if not data:
        return None
    try:
        return AlertTargets(tuple(data.get("on") or ()), data.get("command"), data.get("webhook"),
                            float(data.get("stall_minutes") or 10.0))
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------ delivery
def alert_payload(run: RunDir, status: str, message: str | None = None) -> dict[str, Any]:
    """The alert's JSON: the run, its status, its best validation perplexity, a message and a
    one-line ``text`` (the Slack-compatible body)."""
    info = run.read_run()
    ppl = info.get("best_val_ppl")
    message = message if message is not None else info.get("message")
    ppl_txt = f", best val ppl {ppl:,.2f}" if isinstance(ppl, (int, float)) else ""
    text = f"tui-lab: {run.experiment}/{run.run_id} {status}{ppl_txt}" + (f" ({message})" if message else "")
    return {"text": text, "experiment": run.experiment, "run_id": run.run_id, "run_dir": str(run.path.resolve()),
            "status": status, "best_val_ppl": ppl, "step": info.get("step"), "message": message,
            "host": socket.gethostname(), "time": round(time.time(), 3)}


def log_line(run: RunDir, text: str) -> None:
    """Append one time-stamped line to the run's ``train.log`` (never raises)."""
    try:
        with open(run.path / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} alert: {text}\n")
    except OSError:
        pass


def _run_command(command: str, payload: dict[str, Any]) -> str | None:
    """Run the alert command; None when it exited 0, else what went wrong."""
    env = {**os.environ, "TUI_LAB_EXPERIMENT": payload["experiment"], "TUI_LAB_RUN_ID": payload["run_id"],
           "TUI_LAB_RUN_DIR": payload["run_dir"], "TUI_LAB_STATUS": payload["status"],
           "TUI_LAB_BEST_VAL_PPL": "" if payload["best_val_ppl"] is None else str(payload["best_val_ppl"]),
           "TUI_LAB_MESSAGE": payload["message"] or ""}
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as exc:
        return f"cannot start: {exc.strerror or exc}"
    try:
        _, err = proc.communicate(json.dumps(payload).encode(), timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started
        except ProcessLookupError:
            pass
        proc.communicate()
        return f"timed out after {COMMAND_TIMEOUT_S:g} s (killed)"
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        return f"exit code {proc.returncode}" + (f": {tail[0][:200]}" if tail else "")
    return None


def _post_webhook(url: str, payload: dict[str, Any]) -> str | None:
    """POST the JSON; None on a 2xx answer, else what went wrong."""
    import urllib.error  # here, not at the top: the app imports this module before its first frame
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "tui-lab"})
    try:
        with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_S) as resp:
            resp.read(65536)
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({reason})"


def send_alert(run: RunDir, targets: AlertTargets, status: str, message: str | None = None) -> list[str]:
    """Deliver one alert to the command and the webhook; returns the failures (also logged in
    ``train.log``). Never raises."""
    if not targets.wants(status):
        return []
    try:
        payload = alert_payload(run, status, message)
    except Exception as exc:  # an unreadable run folder must not end the caller
        log_line(run, f"{status}: cannot build the alert: {exc}")
        return [str(exc)]
    failures = []
    for kind, target, deliver in (("command", targets.command, _run_command),
                                  ("webhook", targets.webhook, _post_webhook)):
        if not target:
            continue
        try:
            problem = deliver(target, payload)
        except Exception as exc:  # never let an alert change the run's outcome
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{kind}: {problem}")
            log_line(run, f"{status}: {kind} failed: {problem}")
        else:
            log_line(run, f"{status}: sent to the {kind}")
    return failures


class EndAlerter:
    """A trainer event consumer: remembers the ``end`` event, and on :meth:`close` (called
    once ``run.json`` holds the final status) sends the end-state alert."""

    def __init__(self, run: RunDir, targets: AlertTargets):
        self.run = run
        self.targets = targets
        self._end: dict[str, Any] | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") == "end":
            self._end = event

    def close(self) -> None:
        end, self._end = self._end, None
        if end is not None:
            send_alert(self.run, self.targets, str(end.get("status")), end.get("message"))


# ------------------------------------------------------------------------------ stalls
def last_activity(run: RunDir) -> float:
    """Unix time of the run's last write to ``metrics.jsonl`` or ``run.json`` (0 if neither)."""
    times = []
    for path in (run.metrics_path, run.run_path):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def stall_reason(run: RunDir, stall_minutes: float, now: float | None = None) -> tuple[str, str] | None:
    """``(key, message)`` when the run is stalled, else None. A run is stalled when its
    ``run.json`` says running and either its process is gone without an end event, or nothing
    was written for ``stall_minutes``. ``key`` names this stall (one alert per key)."""
    raw = read_json(run.run_path) or {}
    if raw.get("status") != "running":
        return None
    if run.read_run().get("status") == "interrupted":  # status corrected for a dead process
        return "gone", "the training process is gone without an end event"
    active = last_activity(run)
    idle_s = (time.time() if now is None else now) - active
    if active and idle_s >= stall_minutes * 60:
        return f"idle-{active:.3f}", f"no new metrics for {idle_s / 60:.1f} min (stall_minutes {stall_minutes:g})"
    return None


def _claim(run: RunDir, key: str) -> bool:
    """Record that the stall ``key`` is alerted; False when someone already did."""
    lock = run.path / (SENT_FILE + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        sent = read_json(run.path / SENT_FILE) or {}
        if sent.get("stalled") == key:
            return False
        atomic_write_json(run.path / SENT_FILE, {**sent, "stalled": key, "at": time.time()})
        return True
    finally:
        os.close(fd)


def check_stall(run: RunDir, default_minutes: float = 10.0, now: float | None = None) -> str | None:
    """If the run is stalled, raise its ``stalled`` alert once (with the settings in its
    ``alerts.json``; nothing is sent without them) and return the stall's message; None when
    it is not stalled. Safe to call from several processes. Never raises."""
    try:
        targets = load_targets(run)
        found = stall_reason(run, targets.stall_minutes if targets else default_minutes, now)
        if found is None:
            return None
        key, message = found
        if targets is not None and targets.wants("stalled") and _claim(run, key):
            send_alert(run, targets, "stalled", message)
        return message
    except OSError:
        return None

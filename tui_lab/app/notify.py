"""Notifications when any run changes state, selected or not (no torch).

Fed with every store scan (:class:`~tui_lab.app.watch.StoreScan`): a run whose status differs
from the previous scan gets a Textual notification (and the terminal bell with
``settings.bell = true``). Running runs are also checked for a stall in a thread
(:func:`tui_lab.runs.alerts.check_stall`: no new metrics for ``stall_minutes``, or the process
gone without an end event), which also raises the run's "stalled" alert once; a stalled run
gets a notification, and another when it trains again. The first scan only records states:
opening the app does not replay old endings.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..runs.alerts import check_stall
from ..runs.store import RunDir

SEVERITY = {"failed": "error", "diverged": "error", "interrupted": "warning", "stalled": "warning"}


class StateNotifier:
    """Compares scans and notifies.

    Args:
        notify: ``notify(text, title, severity)`` on the UI thread (``App.notify``).
        bell: ring the terminal bell with each notification (``App.bell``), or None.
        call_from_thread: runs a callable on the UI thread (``App.call_from_thread``).
        stall_minutes: for runs started without ``alerts.json`` (their own value wins).
    """

    def __init__(self, notify: Callable[[str, str, str], Any], bell: Callable[[], Any] | None,
                 call_from_thread: Callable[..., Any], stall_minutes: float):
        self._notify = notify
        self._bell = bell
        self._call = call_from_thread
        self.stall_minutes = stall_minutes
        self.states: dict[str, str] | None = None
        self.stalled: set[str] = set()
        self._checking = False

    def _say(self, run: RunDir, state: str, extra: str | None = None) -> None:
        text = f"{run.experiment}/{run.run_id}: {state}" + (f" ({extra})" if extra else "")
        self._notify(text, "run", SEVERITY.get(state, "information"))
        if self._bell is not None:
            self._bell()

    def update(self, scan: Any) -> None:
        """Take one scan (UI thread): notify changed statuses, start a stall check."""
        now = {str(s.run.path): (s.run, s.status, s.info) for runs in scan.runs.values() for s in runs}
        before, self.states = self.states, {k: status for k, (_, status, _) in now.items()}
        if before is None:
            watch = [run for run, status, _ in now.values() if status == "running"]
        else:
            watch = []
            for key, (run, status, info) in now.items():
                old = before.get(key)
                if status == "running" or (old == "running" and status == "interrupted"):
                    watch.append(run)  # an interrupted one: its process is gone without an end event
                if old is not None and old != status and status != "starting":
                    self.stalled.discard(key)
                    self._say(run, status, info.get("message") if status != "running" else None)
                elif old is None and status == "running":
                    self._say(run, status)
        if watch and not self._checking:
            self._checking = True
            threading.Thread(target=self._check, args=(watch,), daemon=True, name="stall check").start()

    def _check(self, runs: list[RunDir]) -> None:
        """Thread: check each run for a stall (raising its alert once), report on the UI thread."""
        try:
            found = {str(run.path): (run, check_stall(run, self.stall_minutes)) for run in runs}
            self._call(self._report, found)
        except Exception:  # the app closed meanwhile
            pass
        finally:
            self._checking = False

    def _report(self, found: dict[str, tuple[RunDir, str | None]]) -> None:
        for key, (run, message) in found.items():
            if message is not None and key not in self.stalled:
                self.stalled.add(key)
                self._say(run, "stalled", message)
            elif message is None and key in self.stalled and (self.states or {}).get(key) == "running":
                self.stalled.discard(key)
                self._say(run, "running", "training again")

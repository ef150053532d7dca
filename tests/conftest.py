"""Shared fixtures: the offline data in ../shared/data, and a per-session token cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SKIP_REASON = "../shared/data not found: offline WikiText-2 / GPT-2 BPE copies are needed for this test"


@pytest.fixture(scope="session", autouse=True)
def _session_token_cache(tmp_path_factory):
    """Every test process (and the CLI subprocesses it starts) caches tokens in one temp folder,
    never in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("token-cache")
    old = os.environ.get("TUI_LAB_CACHE_DIR")
    os.environ["TUI_LAB_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("TUI_LAB_CACHE_DIR", None)
    else:
        os.environ["TUI_LAB_CACHE_DIR"] = old


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository (offline GPT-2 BPE and WikiText-2); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_REASON)
    return SHARED_DATA


@pytest.fixture
def gpt2_dir(shared_data) -> Path:
    """OpenAI's GPT-2 ``vocab.bpe`` + ``encoder.json``."""
    return shared_data / "gpt2"


@pytest.fixture
def wikitext2_dir(shared_data) -> Path:
    """WikiText-2 (``wikitext-2-v1``): ``train.txt``, ``valid.txt``, ``test.txt``."""
    return shared_data / "wikitext-2-tokenized"


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """A fresh token cache folder for this test (``TUI_LAB_CACHE_DIR``; not created yet)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TUI_LAB_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models decode fastest on one thread (and do not fight a loaded machine's other jobs).
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """Save a tiny byte-level model (``tiny.TINY_MODEL``, random weights from ``seed``) as a real
    checkpoint and return the file's path. ``where``: a run folder relative to ``tmp_path``
    (the file goes to ``<where>/checkpoints/best.safetensors``) or a ``.safetensors`` path;
    ``config`` overrides model keys; ``meta`` is the checkpoint metadata (default: the byte
    tokenizer, experiment ``t``)."""
    from tiny import TINY_MODEL

    def make(where: str | Path = "run", *, seed: int = 0, config: dict | None = None,
             meta: dict | None = None) -> Path:
        import torch

        from tui_lab.models import build_model
        from tui_lab.models.checkpoint import save_weights

        path = tmp_path / where
        if path.suffix != ".safetensors":
            path = path / "checkpoints" / "best.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        model = build_model({**TINY_MODEL, **(config or {})})
        save_weights(path, model, model.config, meta or {"data": {"tokenizer": "byte"}, "experiment": "t"})
        return path

    return make


# ---------------------------------------------------------------------------- runs and the app
async def wait_for(pilot, predicate, timeout: float = 60.0, what: str = "condition", step_s: float = 0.05):
    """Let the app run until ``predicate()`` holds; fails naming ``what`` after ``timeout`` s.
    (A wait on a condition, not a fixed pause: it returns as soon as the condition holds.)"""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(step_s)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", step_s: float = 0.02):
    """The same for plain threads and processes (no event loop)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def kill_runs():
    """Kill every process a test left behind: training runs and queue runners (each leads its
    own OS session, so killpg reaches its children too). Append the runs folders to the list."""
    import json
    import signal

    from tui_lab.runs import pid_alive

    runs: list[Path] = []
    yield runs
    for runs_dir in runs:
        infos = [p for p in Path(runs_dir).glob("*/*/run.json")] + [Path(runs_dir) / "queue.runner.json"]
        for info_path in infos:
            try:
                pid = json.loads(info_path.read_text()).get("pid")
            except (OSError, ValueError):
                continue
            if pid and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


@pytest.fixture
def no_counts(monkeypatch):
    """The app without its ``tui-lab list --json`` subprocess (exact parameter counts): the
    counts come back empty at once, so pictures and timings do not depend on it."""
    from tui_lab.app import counts

    async def empty(config):
        return {}

    monkeypatch.setattr(counts, "experiment_counts", empty)


@pytest.fixture
def plot_builds(monkeypatch):
    """How many times each plot (by widget id) built its figure: ``{id: count}``."""
    from tui_lab.app.widgets.plots import CurvePlot

    builds: dict[str, int] = {}
    original = CurvePlot.build_strips

    def counted(self, width, height):
        builds[self.id or "?"] = builds.get(self.id or "?", 0) + 1
        return original(self, width, height)

    monkeypatch.setattr(CurvePlot, "build_strips", counted)
    return builds

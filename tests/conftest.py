"""Shared fixtures: the offline data in ../shared/data, a per-session token cache, the tiny
experiment / model / checkpoint (tests/tiny.py; waits on conditions: tests/waits.py).

Markers (registered in pyproject.toml): ``slow`` (a real training run or a subprocess that
takes more than a few seconds), ``needs_data`` (skipped here with the reason when
../shared/data is absent), ``gpu`` (skipped with the reason when CUDA is not available).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SKIP_REASON = "../shared/data not found: offline WikiText-2 / GPT-2 BPE copies are needed for this test"


def pytest_collection_modifyitems(config, items):
    """``needs_data`` and ``gpu`` tests skip with the reason, not inside their bodies."""
    no_data = pytest.mark.skip(reason=SKIP_REASON) if not SHARED_DATA.is_dir() else None
    no_gpu = None
    if any(item.get_closest_marker("gpu") for item in items):
        import torch

        if not torch.cuda.is_available():
            no_gpu = pytest.mark.skip(reason="no CUDA device on this machine (a gpu test)")
    for item in items:
        if no_data and item.get_closest_marker("needs_data"):
            item.add_marker(no_data)
        if no_gpu and item.get_closest_marker("gpu"):
            item.add_marker(no_gpu)


from tiny import TINY_MODEL  # noqa: E402  (tests/ is on sys.path: pytest's rootdir conftest)


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    """An experiments file with the tiny experiment ``tiny`` (tests/tiny.py) in ``tmp_path``."""
    from tiny import tiny_toml

    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml())
    return path


@pytest.fixture
def tiny_model():
    """A freshly built tiny GPT (:data:`TINY_MODEL`), seeded, in eval mode."""
    import torch

    from tui_lab.models import build_model

    torch.manual_seed(0)
    return build_model(TINY_MODEL).eval()


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

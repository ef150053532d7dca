"""Shared fixtures: the offline data in ../shared/data, and a per-session token cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SKIP_REASON = ("../shared/data not found: the offline WikiText-2 / GPT-2 BPE copies are needed for this test "
               "(see README: Set up and test)")


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
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_REASON)
    return SHARED_DATA


@pytest.fixture
def gpt2_dir(shared_data) -> Path:
    return shared_data / "gpt2"


@pytest.fixture
def wikitext2_dir(shared_data) -> Path:
    return shared_data / "wikitext-2-tokenized"


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TUI_LAB_CACHE_DIR", str(folder))
    return folder

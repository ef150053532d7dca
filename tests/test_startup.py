"""Start-up: the experiments file is read before the first frame without pydantic, and
validated right after it with the same errors; the bench's start-up figure runs both apps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tui_lab.app.app import TuiLabApp
from tui_lab.config import ConfigError, load_experiments
from tui_lab.config.load import DEFAULT_RUNS_DIR

from tiny import tiny_toml

BAD = [
    tiny_toml().replace("d_model = 32", "d_model = 33"),  # not divisible by num_heads
    tiny_toml(lr=-1.0),
    tiny_toml() + "[settings]\nruns_dir = 5\n",
    tiny_toml().replace("[experiments.tiny.model]", "[experiments.tiny.modle]"),
]


def test_settings_default_runs_dir_is_the_pre_read_default():
    from tui_lab.config.schema import Settings

    assert Settings().runs_dir == DEFAULT_RUNS_DIR


def test_a_deferred_load_reads_names_without_pydantic(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml("a") + tiny_toml("b") + '[settings]\nruns_dir = "elsewhere"\n')
    script = (f"import sys; from tui_lab.config import load_experiments\n"
              f"cfg = load_experiments({str(path)!r}, validate=False)\n"
              "print(list(cfg.experiments), 'a' in cfg.experiments, cfg.runs_dir, cfg.validated, 'pydantic' in sys.modules)\n"
              "print(cfg.experiments['b'].model.d_model, cfg.validated, cfg.settings.runs_dir)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["['a', 'b'] True elsewhere False False", "32 True elsewhere"]


@pytest.mark.parametrize("content", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_deferred_validation_raises_the_same_error(tmp_path, content):
    path = tmp_path / "experiments.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as eager:
        load_experiments(path)
    cfg = load_experiments(path, validate=False)  # structure only: no error yet
    with pytest.raises(ConfigError) as deferred:
        cfg.validate()
    assert str(deferred.value) == str(eager.value) and str(path) in str(eager.value)
    with pytest.raises(ConfigError):
        cfg.get("tiny")


def test_structural_errors_are_raised_before_the_app_starts(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text("[experiments\n")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_experiments(path, validate=False)
    path.write_text("[settings]\nruns_dir = 'x'\n")
    with pytest.raises(ConfigError, match=r"no \[experiments.NAME\] tables"):
        load_experiments(path, validate=False)


async def test_the_app_validates_after_its_first_frame_and_exits_2_on_a_bad_file(tmp_path, no_counts):
    path = tmp_path / "experiments.toml"
    path.write_text(BAD[0])
    with pytest.raises(ConfigError) as eager:
        load_experiments(path)
    app = TuiLabApp(load_experiments(path, validate=False))
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):
            if app.config_error is not None and app.return_code is not None:
                break
            await pilot.pause(0.05)
    assert app.return_code == 2
    assert app.config_error is not None and str(app.config_error) == str(eager.value)


async def test_the_app_shows_the_config_once_validated(tmp_path, no_counts):
    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml())
    cfg = load_experiments(path, validate=False)
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(50):
            await pilot.pause(0.05)
            if cfg.validated:
                break
        await pilot.press("5")  # the Config tab
        await pilot.pause()
        assert cfg.validated and app.config_error is None
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(app.main.query_one("#detail").render())
        assert "d_model = 32" in console.export_text()


def test_tui_lab_opens_the_app_without_the_cli_and_reports_a_bad_file_like_the_cli(tmp_path):
    """`tui-lab --config FILE` takes the fast path (no Typer); a file that fails validation
    after the first frame still ends with the CLI's message and exit code 2."""
    from tui_lab.launch import _app_config

    assert _app_config([]) == (True, None)
    assert _app_config(["-c", "x.toml"]) == (True, Path("x.toml"))
    assert _app_config(["--config=x.toml"]) == (True, Path("x.toml"))
    assert _app_config(["check"])[0] is False and _app_config(["--help"])[0] is False
    path = tmp_path / "experiments.toml"
    path.write_text(BAD[1])
    check = subprocess.run([sys.executable, "-m", "tui_lab", "check", str(path)], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "COLUMNS": "300"})
    app = subprocess.run([sys.executable, "-m", "tui_lab", "--config", str(path)], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "300"})
    assert check.returncode == app.returncode == 2
    assert "error:" in app.stderr and "train.lr" in app.stderr and "Traceback" not in app.stderr
    # (without a terminal Textual draws on stderr too: compare from the error line on)
    assert app.stderr[app.stderr.rindex("error:"):].strip() == check.stderr[check.stderr.rindex("error:"):].strip()


async def test_quitting_before_the_counts_come_leaves_no_subprocess(tmp_path, monkeypatch):
    """The parameter counts come from a `tui-lab list --json` subprocess (it imports torch: a
    few seconds); quitting before it answers kills and reaps it instead of leaving it behind.
    The subprocess here never answers (an interpreter that sleeps 10 minutes with the same
    arguments), so only the kill can end it within the wait."""
    import types

    import psutil

    from tui_lab.app import counts
    from waits import wait_for, wait_until

    sleeper = tmp_path / "python-that-sleeps"
    sleeper.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(counts, "sys", types.SimpleNamespace(executable=str(sleeper)))

    def lists() -> list:
        out = []
        for p in psutil.Process().children(recursive=True):
            try:
                if "list" in p.cmdline() and "--json" in p.cmdline() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                pass
        return out

    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml())
    app = TuiLabApp(load_experiments(path))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: lists(), timeout=30, what="the counts subprocess to start")
            assert app.main.counts_state == "loading"
        wait_until(lambda: not lists(), timeout=30, what="the counts subprocess to be killed")
    finally:
        for p in lists():
            p.kill()


async def test_the_garbage_collector_paused_for_start_up_is_back_on_after_the_first_frame(tmp_path, no_counts):
    """`tui-lab` pauses the collector on the way to the first frame (tui_lab/launch.py); the
    app's first frame must turn it back on, with start-up's objects frozen, or a long session
    would never collect a cycle."""
    import gc

    path = tmp_path / "experiments.toml"
    path.write_text(tiny_toml())
    gc.disable()
    try:
        app = TuiLabApp(load_experiments(path, validate=False))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()


def test_tui_lab_without_an_experiments_file_hands_over_to_the_cli_with_the_collector_on(tmp_path):
    code = ("import gc, sys; import tui_lab.cli as cli; cli.main = lambda: print('cli, gc on:', gc.isenabled()); "
            "import tui_lab.launch as launch; sys.argv = ['tui-lab']; launch.main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cli, gc on: True"

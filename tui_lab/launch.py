"""The ``tui-lab`` entry point.

``tui-lab`` with no command (or only ``--config FILE`` / ``-c FILE``) opens the app
without importing the Typer CLI and its commands: the experiments file is read (not yet
validated, see :func:`tui_lab.config.load_experiments`) and the app starts. Every other
command line — and any problem on the way (no file, a bad file, the app missing) — goes to
:func:`tui_lab.cli.main`, which prints the same messages and exit codes as always.

On the way to the app's first frame the cyclic garbage collector is paused
(:func:`gc.disable`): importing Textual and building ~30 widgets allocates enough objects to
set off ~130 collections, a full one among them, ≈ 70 ms of a 0.43 s start on a 2-core
machine (``python -X importtime`` does not show it; a ``gc.callbacks`` timer does). The app
freezes what start-up allocated and turns the collector back on right after its first frame
(:meth:`tui_lab.app.app.TuiLabApp.post_display_hook`); every other command line runs with it on.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path


def _app_config(args: list[str]) -> tuple[bool, Path | None]:
    """(whether ``args`` just open the app, the ``--config`` path if given)."""
    if not args:
        return True, None
    if len(args) == 2 and args[0] in ("--config", "-c") and not args[1].startswith("-"):
        return True, Path(args[1])
    if len(args) == 1 and args[0].startswith("--config=") and len(args[0]) > len("--config="):
        return True, Path(args[0].split("=", 1)[1])
    return False, None


def main() -> None:
    opens_app, config = _app_config(sys.argv[1:])
    if opens_app:
        gc.disable()  # until the app's first frame (see the module docstring)
        try:
            if _open_app(config):
                return
        finally:
            gc.enable()
    from .cli import main as cli_main

    cli_main()


def _open_app(config: Path | None) -> bool:
    """Run the app on ``config`` (default: ./experiments.toml); False when the full CLI must
    take over (no file, a file that cannot be read, the app not importable)."""
    from .config import DEFAULT_FILENAME, ConfigError, load_experiments

    path = config if config is not None else Path(DEFAULT_FILENAME)
    try:
        cfg = load_experiments(path, validate=False) if path.is_file() else None
        from .app.app import run_app
    except (ConfigError, ImportError):
        cfg = None  # the full CLI reports it
    if cfg is None:
        return False
    try:
        run_app(cfg)
    except ConfigError as exc:  # the validation after the first frame failed
        from .cli.common import fail

        try:
            fail(str(exc))  # prints "error: …" on stderr, as the CLI does
        except SystemExit:
            raise
        except Exception as stop:  # typer.Exit, outside a Typer app here
            sys.exit(getattr(stop, "exit_code", 2))
    return True

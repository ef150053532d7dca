"""The Textual app. Importing this package does not import torch."""

from __future__ import annotations


def run_app(cfg) -> None:
    """Open the app on a loaded :class:`~tui_lab.config.ExperimentsConfig`."""
    from .app import run_app as _run

    _run(cfg)

"""`tui-lab serve`: the same Textual app in a browser, through textual-serve.

Each browser tab gets its own app process (``python -m tui_lab --config FILE``); training
started from a tab is detached exactly as from the terminal, so closing the tab changes
nothing. Safe by default: it binds to loopback; a non-loopback ``--host`` needs ``--public``
(anyone who can reach the port can start and stop training). From a laptop, tunnel instead::

    ssh -L 8000:localhost:8000 gpubox     # then, on gpubox:  tui-lab serve
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import ConfigOption, err_console, fail, load_config


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only (``localhost``,
    ``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Loopback unless --public."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    config: Optional[Path] = ConfigOption,
    public: bool = typer.Option(False, "--public", help="Allow a non-loopback --host (anyone who can reach "
                                "the port can start and stop training)."),
) -> None:
    """Serve the app in a browser (textual-serve). Each tab runs its own app; training stays detached."""
    if not is_loopback(host) and not public:
        fail(f"--host {host}: not a loopback address; anyone who can reach it could start and stop training. "
             f"Use an SSH tunnel (ssh -L {port}:localhost:{port} HOST, then tui-lab serve), or add --public")
    cfg = load_config(config)  # a bad experiments file fails here, not in every browser tab
    try:
        from textual_serve.server import Server
    except ImportError:
        fail("tui-lab serve needs textual-serve: pip install textual-serve")
    if not is_loopback(host):
        err_console.print(f"[bold yellow]warning:[/] serving on {host}:{port}: anyone who can reach this port "
                          "can start and stop training and read your runs", highlight=False, soft_wrap=True)
    command = shlex.join([sys.executable, "-m", "tui_lab", "--config", str(cfg.path.resolve())])
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "[::]") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    server = Server(command, host=host, port=port, title=f"tui-lab: {cfg.path.name}",
                    public_url=f"http://{shown}:{port}")
    try:
        server.serve()
    except OSError as exc:
        fail(f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})")

"""Test-only entry: ``python tests/fault_entry.py --nan-step N train ...`` runs the real
``tui-lab`` command line with a NaN injected into the loss of step N (see tests/faults.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    args = sys.argv[1:]
    if args[:1] != ["--nan-step"]:
        raise SystemExit("usage: fault_entry.py --nan-step N COMMAND ...")
    step, args = int(args[1]), args[2:]
    from faults import nan_at

    from tui_lab.cli import app
    from tui_lab.train import loop

    original = loop.Trainer.__init__

    def init(self, *a, **kw):
        original(self, *a, **kw)
        self.loss_hook = nan_at(step)

    loop.Trainer.__init__ = init
    app(args=args, prog_name="tui-lab")


if __name__ == "__main__":
    main()

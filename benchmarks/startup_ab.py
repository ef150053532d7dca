"""Start-up before and after a change: an old tree vs a new one vs the bare Textual app.

    git worktree add /tmp/old <commit>
    python benchmarks/startup_ab.py /tmp/old . [rounds]

Each tree is launched with its own tree's bench child (``tui_lab/bench/startup.py``: what
``tui-lab`` with no command does, to the first displayed frame), on its own
``experiments.toml``, alternating old / new / bare for ``rounds`` rounds (9 by default) after
one untimed round (warm bytecode); prints medians [min - max] of launch -> first frame and the
ratios to the bare app. The launcher and the alternation are the bench's own.
"""

from __future__ import annotations

import os
import subprocess
import sys


def child(tree: str) -> str:
    """``tree``'s own tui-lab bench child, on ``tree``'s experiments file."""
    code = subprocess.run([sys.executable, "-c", "import tui_lab.bench.startup as s, sys; sys.stdout.write(s._TUI_LAB)"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": tree}, cwd=tree,
                          check=True).stdout
    return code.replace("CONFIG_PATH", repr(os.path.join(tree, "experiments.toml")))


def main() -> None:
    old, new = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    sys.path.insert(0, new)
    from tui_lab.bench.startup import _BARE, _launch
    from tui_lab.bench.stats import alternate, summary

    scripts = {"old": (child(old), old), "new": (child(new), new), "bare": (_BARE, new)}
    measures = {k: (lambda script=script, tree=tree: _launch(script, {}, pythonpath=tree))
                for k, (script, tree) in scripts.items()}
    alternate(measures, 1)  # untimed: warm bytecode and file caches
    runs = alternate(measures, rounds)
    for k, values in runs.items():
        s = summary(values, 3)
        print(f"{k}: {s['median']:.3f} [{s['min']:.3f} - {s['max']:.3f}]")
    bare = summary(runs["bare"], 6)["median"]
    print(f"old/bare {summary(runs['old'], 6)['median'] / bare:.2f}x  new/bare {summary(runs['new'], 6)['median'] / bare:.2f}x"
          f"  (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

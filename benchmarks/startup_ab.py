"""Start-up before and after a change: an old tree vs a new one vs the bare Textual app.

    git worktree add /tmp/old <commit>
    python benchmarks/startup_ab.py /tmp/old . [rounds]

Each tree is launched with its own tree's bench child (``tui_lab/bench/startup.py``: what
``tui-lab`` with no command does, to the first displayed frame), on its own
``experiments.toml``, alternating old / new / bare for ``rounds`` rounds (9 by default) after
one untimed round (warm bytecode); prints medians [min - max] of launch -> first frame and the
ratios to the bare app.
"""
import os, statistics, subprocess, sys, time
OLD, NEW = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
def child(tree):
    code = subprocess.run([sys.executable, "-c", "import tui_lab.bench.startup as s, sys; sys.stdout.write(s._TUI_LAB)"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": tree}, cwd=tree).stdout
    assert "CONFIG_PATH" in code
    return code.replace("CONFIG_PATH", repr(os.path.join(tree, "experiments.toml")))
sys.path.insert(0, NEW)
from tui_lab.bench.startup import _BARE
codes = {"old": (child(OLD), OLD), "new": (child(NEW), NEW), "bare": (_BARE, NEW)}
env0 = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
res = {k: [] for k in codes}
for r in range(rounds + 1):
    for k, (code, tree) in codes.items():
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=tree,
                             env={**env0, "PYTHONPATH": tree})
        for line in p.stdout:
            if line.startswith("FRAME"):
                dt = time.perf_counter() - t
                break
        p.wait()
        if r:
            res[k].append(dt)
for k, v in res.items():
    print(f"{k}: {statistics.median(v):.3f} [{min(v):.3f} - {max(v):.3f}]")
b = statistics.median(res["bare"])
print(f"old/bare {statistics.median(res['old'])/b:.2f}x  new/bare {statistics.median(res['new'])/b:.2f}x  (load {os.getloadavg()[0]:.1f})")

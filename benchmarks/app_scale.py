"""The app on a long finished run: time to show it and CPU while idle, 1,000 vs 100,000 events.

    python benchmarks/app_scale.py [--repeats 3] [--idle-s 5] [--events 1000 100000]

For each size a finished run folder is written once (``metrics.jsonl`` with one ``train`` event
per step, an ``eval`` event every 100 steps, ``run.json`` "finished"). Each repetition opens the
app headless (``App.run_test``, 120×40) in a fresh interpreter, alternating the sizes, and reports:

* ``show_s``: seconds from the process's start (``tui-lab`` typed: interpreter, imports,
  experiments file read as ``tui-lab`` reads it, app) to the first displayed frame in which the
  selected run's panels hold its last step (the snapshot read, the stats panel and the curves
  drawn from it) — what the user waits for;
* ``after_frame_s``: the part of it after the app's first frame (reading the run);
* ``curves_s``: seconds from the process's start to the first displayed frame whose snapshot
  holds the whole history (the curves drawn from every event). A long history is shown from
  its tail first (``runs/follow.py``), so for 100,000 events this comes after ``show_s``; for
  a short one, and on trees before that change, it is the same frame;
* ``settling_cpu_pct``: the process's CPU time (every thread: watchers, scanner, timers) over
  the ``--idle-s`` seconds after the curves are drawn, in percent of one core (what is left of the work of
  showing it: garbage collection, a last throttled redraw);
* ``idle_cpu_pct``: the same over the next ``--idle-s`` seconds — a finished run should cost
  nothing while it is only being looked at;
* ``rss_mb``: resident memory after those seconds.

Medians of the repetitions, min and max beside them; the ratio is show_s of the largest size
over the smallest (target of issue 16: ≤ 1.5). One untimed launch of each size comes first
(warm bytecode and file caches).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import time; T0 = time.perf_counter()
import asyncio, gc, json, resource, sys
gc.disable()  # as tui_lab.launch.main does on the way to the app (its first frame turns it back on)
from pathlib import Path
from tui_lab.config import load_experiments
from tui_lab.app.app import TuiLabApp
import tui_lab.app.counts as counts

async def no_counts(path):  # the `tui-lab list --json` subprocess is not what is measured
    return {}
counts.experiment_counts = no_counts
cfg = load_experiments(Path(sys.argv[1]), validate=False)  # as `tui-lab` does: validated after the first frame
steps, idle_s = int(sys.argv[2]), float(sys.argv[3])

frame, shown_at, curves_at = [], [], []
app = None

def shown():
    try:
        snap = app.main.snapshot
    except LookupError:
        return False
    return snap is not None and snap.progress()[0] == steps and getattr(app.main, "panels_ready", True)

def complete():
    return shown() and getattr(app.main.snapshot, "history_complete", True)

app_hook = TuiLabApp.post_display_hook
def hook(self):  # after every displayed frame: the first one, and the first that shows the run
    app_hook(self)
    now = time.perf_counter()
    if not frame:
        frame.append(now)
    if not shown_at and shown():
        shown_at.append(now)
    if not curves_at and complete():
        curves_at.append(now)
TuiLabApp.post_display_hook = hook

async def main():
    global app
    app = TuiLabApp(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.perf_counter() + 300
        while not curves_at:
            if time.perf_counter() > deadline:
                raise SystemExit("the run was never shown")
            await pilot.pause(0.01)
        show_s, after_frame_s, curves_s = shown_at[0] - T0, shown_at[0] - frame[0], curves_at[0] - T0
        pct = []
        for _ in range(2):  # the first window after the run is shown, then the next one
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(idle_s)
            pct.append(100 * (time.process_time() - cpu0) / (time.perf_counter() - wall0))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"show_s": show_s, "after_frame_s": after_frame_s, "curves_s": curves_s, "settling_cpu_pct": pct[0],
                      "idle_cpu_pct": pct[1], "rss_mb": rss_mb}))

asyncio.run(main())
"""


def write_run(root: Path, steps: int) -> Path:
    """An experiments file and one finished run of ``steps`` train events (eval every 100)."""
    folder = root / f"n{steps}"
    run = folder / "runs" / "demo" / "20260101-000000-aaaa"
    run.mkdir(parents=True)
    (folder / "experiments.toml").write_text(
        '[settings]\nruns_dir = "runs"\n\n[experiments.demo]\ndescription = "scale"\n'
        '[experiments.demo.model]\nkind = "gpt"\nvocab_size = 256\nmax_seq_len = 32\nd_model = 32\nnum_heads = 2\n'
        'd_ff = 64\nnum_layers = 1\n[experiments.demo.data]\ndataset = "pydoc"\ntokenizer = "byte"\n'
        f'[experiments.demo.train]\nbatch_size = 2\nlr = 1e-3\nmax_steps = {steps}\n')
    with open(run / "metrics.jsonl", "w") as f:
        t = 1_767_225_600.0
        f.write(json.dumps({"event": "start", "time": t, "step": 0, "total_steps": steps}) + "\n")
        for step in range(1, steps + 1):
            f.write(json.dumps({"event": "train", "time": t + step * 0.1, "step": step, "train_loss": 5.0 - step / steps,
                                "lr": 1e-3, "tokens_per_s": 1e4, "tokens_seen": step * 64,
                                "elapsed_s": step * 0.1}) + "\n")
            if step % 100 == 0:
                f.write(json.dumps({"event": "eval", "time": t + step * 0.1, "step": step,
                                    "val_loss": 5.0 - step / steps, "val_ppl": 150.0 - step / steps}) + "\n")
    (run / "run.json").write_text(json.dumps({
        "experiment": "demo", "run_id": run.name, "status": "finished", "started_at": 1_767_225_600.0,
        "ended_at": 1_767_225_600.0 + steps * 0.1, "total_steps": steps, "step": steps,
        "tokens_seen": steps * 64, "elapsed_s": steps * 0.1, "best_val_ppl": 149.0}))
    return folder / "experiments.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--events", type=int, nargs="+", default=[1000, 100_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        configs = {n: write_run(Path(tmp), n) for n in args.events}
        results: dict[int, list[dict]] = {n: [] for n in args.events}
        for rep in range(args.repeats + 1):
            for n, cfg in configs.items():  # alternating sizes
                env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # warm .pyc
                r = subprocess.run([sys.executable, "-c", _CHILD, str(cfg), str(n), str(args.idle_s)],
                                   capture_output=True, text=True, timeout=600, env=env)
                if r.returncode != 0:
                    raise SystemExit(f"app on {n} events failed:\n{r.stderr[-2000:]}")
                if rep:  # the first round only warms the caches
                    results[n].append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{args.repeats} alternating repetitions; idle window {args.idle_s:g} s")
    print("| train events | launch → run shown (s) | of which after the first frame (s) | launch → whole curves "
          f"(s) | CPU the next {args.idle_s:g} s (% of a core) | CPU the {args.idle_s:g} s after (idle) | max RSS (MB) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    med = {}
    for n, rows in results.items():
        cells = []
        for key, fmt in (("show_s", ".3f"), ("after_frame_s", ".3f"), ("curves_s", ".3f"), ("settling_cpu_pct", ".1f"),
                         ("idle_cpu_pct", ".1f"), ("rss_mb", ".0f")):
            vals = [r[key] for r in rows]
            med[(n, key)] = statistics.median(vals)
            cells.append(f"{statistics.median(vals):{fmt}} [{min(vals):{fmt}} – {max(vals):{fmt}}]")
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    lo, hi = min(args.events), max(args.events)
    print(f"show time, {hi:,} ÷ {lo:,} events: {med[(hi, 'show_s')] / med[(lo, 'show_s')]:.2f}× (target ≤ 1.5); "
          f"whole curves: {med[(hi, 'curves_s')] / med[(lo, 'curves_s')]:.2f}×")


if __name__ == "__main__":
    main()

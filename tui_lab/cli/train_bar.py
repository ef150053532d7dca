"""The progress bar of `tui-lab train`, fed by the trainer's metrics events.

It shows ``step N/M``, the latest training loss, tokens/s (:func:`tui_lab.runs.metrics.tokens_per_second`
of the run: tokens seen ÷ training seconds), the latest validation perplexity, elapsed time
and an ETA; during an evaluation it shows ``evaluating N/M tokens`` instead of the loss.

- Elapsed: the run's training clock at the start of this attempt (0, or the resumed run's)
  plus the monotonic time since the bar appeared — it never goes backwards.
- ETA: steps left ÷ the measured step rate (evaluation time excluded) + the measured
  seconds of one evaluation × the evaluations still to come (plus what is left of the
  running one).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from ..runs.metrics import tokens_per_second


def clock(seconds: float | None) -> str:
    """``H:MM:SS``, or ``-:--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class TrainBar:
    """A Rich progress bar for one run; call it with every metrics event.

    Args:
        console: where the bar and the evaluation lines go (stderr).
        eval_every, steps_per_epoch: for counting the evaluations still to come.
        evaluations_after: ``f(step, total, eval_every, steps_per_epoch) -> int``.
    """

    def __init__(self, console: Console, eval_every: int, evaluations_after, run=None) -> None:
        self.eval_every = eval_every
        self.evaluations_after = evaluations_after
        self.run = run
        self.steps_per_epoch: int | None = None
        self.live = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[info]}"), _Clock(self), console=console, transient=False)
        self.task = None
        self.tok_task = None
        self.last_val = ""
        self.total: int | None = None
        self.step = 0
        self.base_elapsed = 0.0
        self.t_start: float | None = None
        self.step0: int | None = None  # first step of this attempt's training phase
        self.t_train0: float | None = None
        self.eval_time = 0.0  # seconds of evaluations since t_train0
        self.eval_started: float | None = None
        self.eval_tokens: tuple[int, int] | None = None
        self.last_eval_s: float | None = None
        self.train_info = ""
        self.step_s: float | None = None  # measured seconds per step (evaluations excluded)
        self.t_step: float | None = None  # when the latest train event came
        self.evaluated_step = 0  # the step of the last finished evaluation (or the resumed step)
        self.eval_step = 0

    # ---------------------------------------------------------------- figures
    def elapsed(self) -> float:
        if self.t_start is None:
            return self.base_elapsed
        return self.base_elapsed + (time.monotonic() - self.t_start)

    def eta(self) -> float | None:
        if self.total is None:
            return None
        now = time.monotonic()
        left = 0.0
        if self.eval_started is not None:  # the running evaluation
            spent = now - self.eval_started
            if self.eval_tokens and self.eval_tokens[0] > 0:
                done, total = self.eval_tokens
                left += spent * (total - done) / done
            elif self.last_eval_s is not None:
                left += max(self.last_eval_s - spent, 0.0)
            else:
                return None
        steps_left = self.total - self.step
        if steps_left > 0:
            if self.step_s is None:
                return None
            # steps left at the measured rate, less the training time since the last train event
            since = 0.0 if self.eval_started is not None or self.t_step is None else now - self.t_step
            left += max(steps_left * self.step_s - since, 0.0)
        # evaluations after the last finished one (the running one is counted above)
        evals_left = self.evaluations_after(self.evaluated_step, self.total, self.eval_every, self.steps_per_epoch)
        if self.eval_started is not None and evals_left and self.eval_step > self.evaluated_step:
            evals_left -= 1
        if evals_left:
            if self.last_eval_s is None:
                return None
            left += evals_left * self.last_eval_s
        return left

    # ---------------------------------------------------------------- events
    def tokenizing(self, done: int, total: int | None) -> None:
        if self.tok_task is None:
            self.tok_task = self.live.add_task("tokenizing", total=total, info="bytes")
        self.live.update(self.tok_task, completed=done, total=total)

    def _info(self) -> str:
        if self.eval_started is not None:
            if self.eval_tokens:
                done, total = self.eval_tokens
                return f"evaluating {done:,}/{total:,} tokens  {self.last_val}".rstrip()
            return f"evaluating  {self.last_val}".rstrip()
        return f"{self.train_info}  {self.last_val}".strip()

    def _refresh(self) -> None:
        if self.task is not None:
            self.live.update(self.task, completed=self.step, total=self.total, info=self._info())

    def __call__(self, e: dict[str, Any]) -> None:
        ev = e["event"]
        now = time.monotonic()
        if ev in ("start", "resume") and self.tok_task is not None:  # tokenizing is over: drop its row
            self.live.remove_task(self.tok_task)
            self.tok_task = None
        if ev in ("start", "resume") and self.task is None:
            self.total = e.get("total_steps")
            self.step = e.get("step", 0)
            self.base_elapsed = float(e.get("elapsed_s") or 0.0)
            self.t_start = now
            if self.run is not None:
                self.steps_per_epoch = self.run.read_run().get("steps_per_epoch")
            self.task = self.live.add_task("train", total=self.total, completed=self.step, info="")
            self.evaluated_step = self.step
            if ev == "resume":
                self.step0, self.t_train0 = self.step, now
        if self.task is None:
            return
        if ev == "train":
            self.step = e["step"]
            if self.t_train0 is not None and self.step0 is not None and self.step > self.step0:
                train_s = (now - self.t_train0) - self.eval_time
                if train_s > 0:
                    self.step_s = train_s / (self.step - self.step0)
            self.t_step = now
            loss = e.get("train_loss")
            rate = tokens_per_second(e.get("tokens_seen"), e.get("elapsed_s"))
            self.train_info = (f"loss {loss:.4f}  {rate or 0:,.0f} tok/s" if loss is not None else "loss nan")
        elif ev == "eval_start":
            self.step = self.eval_step = e["step"]
            self.eval_started = now
            self.eval_tokens = (0, e["tokens_total"]) if e.get("tokens_total") else None
        elif ev == "eval_progress":
            self.eval_tokens = (e["tokens_done"], e["tokens_total"])
        elif ev == "eval":
            if self.eval_started is not None:
                spent = now - self.eval_started
                if self.t_train0 is not None:
                    self.eval_time += spent
            self.last_eval_s = float(e.get("eval_s") or (now - self.eval_started if self.eval_started else 0.0))
            self.eval_started, self.eval_tokens = None, None
            self.evaluated_step = e["step"]
            if self.t_train0 is None:  # the step-0 evaluation: training starts now
                self.step0, self.t_train0 = e["step"], now
            self.last_val = f"val ppl {e['val_ppl']:,.2f}"
            self.live.console.print(f"step {e['step']:>6}  epoch {e['epoch']:>3}  val loss {e['val_loss']:.4f}  "
                                    f"val ppl {e['val_ppl']:,.2f}  acc {e['val_acc']:.3f}  "
                                    f"({e.get('eval_s', 0):.1f} s)" + ("  [green]best[/]" if e.get("is_best") else ""))
        elif ev == "sample":
            from ..train.runlog import printable

            self.live.console.print(Text.assemble("  ", (printable(e["prompt"]), "dim"), " → ",
                                                  printable(e["text"])), highlight=False)
        self._refresh()


class _Clock(ProgressColumn):
    """``elapsed H:MM:SS  ETA H:MM:SS`` from the bar's own clocks (re-rendered live)."""

    def __init__(self, bar: TrainBar):
        super().__init__()
        self.bar = bar

    def render(self, task: Task) -> Text:
        if task.id == self.bar.task:
            eta = self.bar.eta()
            return Text(f"{clock(self.bar.elapsed())} ETA {clock(eta)}", style="progress.elapsed")
        return Text("")

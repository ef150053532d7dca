"""The training loop: set up → (step → log → evaluate)* → finish, for one run folder.

One :class:`Trainer` drives one run. It writes ``metrics.jsonl`` events as it goes,
``run.json`` at every state change, and checkpoints at every evaluation (``last``, plus
``best`` by validation loss). SIGINT / SIGTERM end it gracefully as ``stopped`` after
saving; a non-finite loss ends it as ``diverged`` keeping the last good checkpoint; a
write error (a full disk) ends it as ``failed`` with the previous checkpoint intact;
``resume=True`` restores model, optimizer, step, RNG, data position and the loss window.

The parts live in their own modules: :mod:`.setup` (folder, data, model, budget),
:mod:`.step` (one optimizer step), :mod:`.log` (the loss window), :mod:`.evaluate`,
:mod:`.checkpoints`, :mod:`.resume`, :mod:`.optimizer`.
"""

from __future__ import annotations

import errno
import math
import signal
import time
from typing import Any, Callable

import torch

from ..config import Experiment
from ..runs.metrics import perplexity
from ..runs.process import git_commit
from ..runs.store import MetricsWriter, RunDir
from .checkpoints import SpaceReserve, disk_error_text, save_best, save_last
from .distributed import DistContext, any_rank, broadcast_from_main, init_distributed, mean_over_ranks, shutdown
from .errors import RunFailed, TrainingError
from .evaluate import eval_token_count, evaluate
from .log import LossWindow, memory_mb
from .optimizer import autocast_dtype, build_optimizer, enable_tf32, set_lr
from .progress import Progress
from .resume import restore, training_state
from .samples import sample_text
from .schedule import lr_at
from .setup import build_model, load_data, make_sampler, process_identity, step_budget
from .step import LossHook, train_step

Reporter = Callable[[dict[str, Any]], None]

EVAL_PROGRESS_EVERY_S = 2.0
"""Seconds between ``eval_progress`` events during an evaluation."""


class Trainer:
    """Train ``exp`` into ``run`` on ``device``.

    Args:
        exp: the resolved experiment.
        run: the run folder (from :func:`~tui_lab.train.setup.start_run`, or one to resume).
        device: from :func:`tui_lab.device.resolve_device`.
        resume: continue from ``run``'s ``checkpoints/last.state.pt``.
        reporter: called with every metrics event (the CLI's progress bar, tests).
        token_progress: called while tokenizing (done_bytes, total_bytes).
        loss_hook: tests only — ``hook(step, loss) -> loss`` on every micro-batch loss
            (fault injection: a NaN loss; stopping at an exact step).
    """

    def __init__(self, exp: Experiment, run: RunDir, device: torch.device, *, resume: bool = False,
                 reporter: Reporter | None = None, token_progress: Callable[[int, int | None], None] | None = None,
                 loss_hook: LossHook | None = None):
        self.exp = exp
        self.run = run
        self.device = device
        self.resume = resume
        self.reporter = reporter
        self.token_progress = token_progress
        self.loss_hook = loss_hook
        self.stop_requested = False
        self.stop_signal: int | None = None  # the signal that stopped the run (SIGINT: the CLI exits 130)
        self.p = Progress()
        self.ctx = DistContext()
        self.metrics: MetricsWriter | None = None
        self._reserve: SpaceReserve | None = None
        self._wall_before = 0.0
        self._attempt_t0: float | None = None

    # ----------------------------------------------------------------- the run
    def train(self) -> str:
        """Run to the end; returns the final status (finished / stopped / diverged).

        Raises:
            TrainingError, DataError, CheckpointError: set-up failed (the run is marked failed).
            RunFailed: the run failed after starting (out of memory, a write error).
        """
        self.ctx, self.device = init_distributed(self.device)
        try:
            if self.ctx.is_main:
                self._reserve = SpaceReserve(self.run.path / ".space-reserve")
                self.metrics = MetricsWriter(self.run.metrics_path)
            self._install_signals()
            self._setup()
        except Exception as exc:
            self._fail(str(exc))
            shutdown(self.ctx)
            raise
        if self.resume:  # a refused resume leaves the run as it was (still resumable)
            try:
                restore(self.run, self.model, self.opt, self.sampler, self.p, self.window, self.ctx, self.device)
            except BaseException:
                shutdown(self.ctx)
                raise
        try:
            status, message = self._begin()
            if status is None:
                status, message = self._loop()
            return self._finish(status, message)
        except torch.cuda.OutOfMemoryError:
            cfg = self.exp.train
            key = "train.batch_size" if cfg.batch_size is not None else "train.global_batch_size"
            msg = (f"CUDA out of memory at {getattr(self, 'batch', '?')} sequences per process x seq_len "
                   f"{self.exp.seq_len}: lower {key} (raise train.grad_accum_steps to keep the global batch) "
                   "or train.seq_len")
            self._fail(msg)
            raise RunFailed(msg) from None
        except TrainingError as exc:
            self._fail(str(exc))
            raise
        except OSError as exc:
            msg = f"write failed at step {self.p.step} in {self.run.path}: {disk_error_text(exc)}"
            self._fail(msg)
            raise RunFailed(msg) from None
        except BaseException as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            shutdown(self.ctx)

    def _setup(self) -> None:
        exp, ctx, dev = self.exp, self.ctx, self.device
        self.data = load_data(exp, ctx, self.token_progress)
        self.sampler = make_sampler(exp, self.data, ctx)
        self.model, self.train_model = build_model(exp, dev, ctx)
        self.opt = build_optimizer(self.model, exp.train, dev)
        self.batch = exp.train.per_process_batch(ctx.world_size)  # the sampler checked it divides
        self.autocast = autocast_dtype(dev.type, exp.train.precision)
        enable_tf32(dev, exp.train.precision)
        self.steps_per_epoch, self.total = step_budget(self.sampler, exp.train)
        self.window = LossWindow(dev)

    def _begin(self) -> tuple[str | None, str | None]:
        """Mark the run running, write the start / resume event, evaluate at step 0."""
        exp, run, cfg, dev = self.exp, self.run, self.exp.train, self.device
        from ..models import count_parameters

        n_params = count_parameters(self.model)
        if self.ctx.is_main:
            run.checkpoint_dir.mkdir(exist_ok=True)
        prior = run.read_run() if self.resume and self.ctx.is_main else {}
        now_unix = time.time()
        # wall time over every attempt, a killed one's included (up to its last run.json update)
        self._wall_before = float(prior.get("wall_time_s") or prior.get("elapsed_s") or 0.0)
        self._attempt_t0 = time.perf_counter()
        self._update_run(
            experiment=exp.name, run_id=run.run_id, status="running", **process_identity(), device=str(dev),
            device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            started_at=prior.get("started_at") or now_unix, resumed_at=now_unix if self.resume else None,
            attempts=int(prior.get("attempts") or 1) + 1 if self.resume else 1,
            ended_at=None, message=None, num_params=n_params,
            train_tokens=int(len(self.data.train_ids)), val_tokens=int(len(self.data.val_ids)),
            val_words=self.data.val_words, total_steps=self.total, steps_per_epoch=self.steps_per_epoch,
            tokens_per_step=self.batch * exp.seq_len * cfg.grad_accum_steps, batch_size=self.batch,
            global_batch_size=self.batch * cfg.grad_accum_steps * self.ctx.world_size,
            git_commit=git_commit(), world_size=self.ctx.world_size, step=self.p.step,
        )
        if self.resume:
            self._emit("resume", step=self.p.step, epoch=self.sampler.epoch, tokens_seen=self.p.tokens_seen,
                       total_steps=self.total, elapsed_s=round(self.p.elapsed_s, 3))
            return None, None
        self._emit("start", step=0, total_steps=self.total, num_params=n_params, device=str(dev),
                   train_tokens=int(len(self.data.train_ids)), val_tokens=int(len(self.data.val_ids)))
        if self.stop_requested:  # Ctrl-C while tokenizing: stop before the first evaluation
            return "stopped", "stopped by signal before the first step"
        finite, _ = self._evaluate_all_ranks(save=False)
        if not finite:
            return "diverged", "non-finite validation loss at initialisation"
        return None, None

    def _loop(self) -> tuple[str, str | None]:
        """Steps until the budget, a stop request, divergence or early stopping."""
        cfg, ctx, dev = self.exp.train, self.ctx, self.device
        t0 = time.perf_counter() - self.p.elapsed_s
        window_t, window_tokens = time.perf_counter(), 0
        step_tokens = self.batch * self.exp.seq_len * cfg.grad_accum_steps * ctx.world_size
        self.train_model.train()
        while self.p.step < self.total:
            if any_rank(self.stop_requested, ctx, dev):
                self.p.elapsed_s = time.perf_counter() - t0
                if ctx.is_main:
                    self._save_last()
                return "stopped", f"stopped by signal at step {self.p.step}"
            lr = lr_at(self.p.step, cfg, self.total)
            set_lr(self.opt, lr)
            res = train_step(self.train_model, self.model, self.opt, self.sampler, cfg, ctx, dev, self.autocast,
                             self.p.step + 1, self.loss_hook)
            self.window.add(res.loss_sum, res.n_micro)
            self.p.step += 1
            self.p.tokens_seen += step_tokens
            window_tokens += step_tokens
            if self.p.step % cfg.log_every == 0 or self.p.step == self.total or res.epoch_ended:
                now = time.perf_counter()
                self.p.elapsed_s = now - t0
                if not self._log(lr, window_tokens / max(now - window_t, 1e-9)):
                    return "diverged", (f"non-finite training loss at step {self.p.step} with lr {lr:.3g}; "
                                        "kept the last good checkpoint; lower train.lr")
                window_t, window_tokens = now, 0
            if res.epoch_ended:
                self._emit("epoch_end", step=self.p.step, epoch=self.sampler.epoch)
            # eval_every > 0 is the only schedule (no extra epoch-end evaluations); 0: at epoch ends
            if (self.p.step % cfg.eval_every == 0 if cfg.eval_every else res.epoch_ended) or self.p.step == self.total:
                self.p.elapsed_s = time.perf_counter() - t0
                finite, early_stop = self._evaluate_all_ranks(save=True)
                if not finite:
                    return "diverged", (f"non-finite validation loss at step {self.p.step} with lr {lr:.3g}; "
                                        "kept the last good checkpoint")
                window_t, window_tokens = time.perf_counter(), 0
                if early_stop:
                    return "finished", (f"early stopping: no improvement in {cfg.patience} evaluations "
                                        f"(best at step {self.p.best_step})")
        return "finished", f"reached {self.total} steps"

    # ----------------------------------------------------------------- log
    def _log(self, lr: float, window_tokens_per_s: float) -> bool:
        """Write a ``train`` event with the window's mean loss; False when it is not finite."""
        train_loss = mean_over_ranks(self.window.take(), self.ctx).item()  # the only host sync between evaluations
        common = dict(step=self.p.step, epoch=self.sampler.epoch, lr=lr, tokens_seen=self.p.tokens_seen,
                      elapsed_s=round(self.p.elapsed_s, 3))
        if not math.isfinite(train_loss):
            self._emit("train", train_loss=None, **common)
            return False
        self._emit("train", train_loss=round(train_loss, 6), tokens_per_s=round(window_tokens_per_s, 1),
                   mem_mb=round(memory_mb(self.device), 1), **common)
        return True

    # ----------------------------------------------------------------- evaluate
    def _evaluate_all_ranks(self, save: bool) -> tuple[bool, bool]:
        """Rank 0 evaluates and checkpoints; every rank gets ``(finite, early_stop)``."""
        decision = None
        if self.ctx.is_main:
            finite = self._evaluate(save)
            patience = self.exp.train.patience
            decision = (finite, bool(finite and patience and self.p.bad_evals >= patience))
        decision = broadcast_from_main(decision, self.ctx)
        if self.ctx.enabled:  # keep every rank's copy of the early-stopping count
            self.p.bad_evals = broadcast_from_main(self.p.bad_evals, self.ctx)
        return decision

    def _evaluate(self, save: bool) -> bool:
        """Evaluate (with ``eval_start`` / ``eval_progress`` events), record, checkpoint, sample;
        returns False when the validation loss is not finite."""
        cfg, step = self.exp.train, self.p.step
        tokens_total = eval_token_count(len(self.data.val_ids), cfg.eval_max_tokens)
        self._emit("eval_start", step=step, tokens_total=tokens_total, elapsed_s=round(self.p.elapsed_s, 3))
        t_start = last = time.perf_counter()

        def progress(done: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last >= EVAL_PROGRESS_EVERY_S and done < tokens_total:
                last = now
                self._emit("eval_progress", step=step, tokens_done=done, tokens_total=tokens_total)

        res = evaluate(self.model, self.data.val_ids, self.exp.seq_len, self.batch, self.device,
                       cfg.eval_max_tokens, self.autocast, progress=progress)
        eval_s = time.perf_counter() - t_start
        if not math.isfinite(res.val_loss):
            return False
        self.p.n_evals += 1
        is_best = res.val_loss < self.p.best_val_loss
        if is_best:
            self.p.best_val_loss, self.p.best_step, self.p.best_epoch = res.val_loss, step, self.sampler.epoch
            self.p.bad_evals = 0
        else:
            self.p.bad_evals += 1
        word_ppl = None
        if self.data.val_words and cfg.eval_max_tokens is None:
            word_ppl = perplexity(res.nll_sum / self.data.val_words)
        self._emit("eval", step=step, epoch=self.sampler.epoch, val_loss=round(res.val_loss, 6),
                   val_ppl=round(res.val_ppl, 4), val_acc=round(res.val_acc, 6), val_tokens=res.n_tokens,
                   val_word_ppl=round(word_ppl, 4) if word_ppl else None, is_best=is_best,
                   best_val_loss=round(self.p.best_val_loss, 6), tokens_seen=self.p.tokens_seen,
                   elapsed_s=round(self.p.elapsed_s, 3), eval_s=round(eval_s, 3))
        if save:
            if is_best:
                save_best(self.exp, self.run, self.model, step, res.val_loss)
            self._save_last()
        self._update_run(step=step, epoch=self.sampler.epoch, tokens_seen=self.p.tokens_seen,
                         best_val_loss=self.p.best_val_loss, best_val_ppl=perplexity(self.p.best_val_loss),
                         best_step=self.p.best_step, best_epoch=self.p.best_epoch, elapsed_s=self.p.elapsed_s,
                         wall_time_s=self._wall_time_s())
        if cfg.sample_every and cfg.sample_prompts and self.p.n_evals % cfg.sample_every == 0:
            for prompt in cfg.sample_prompts:
                text = sample_text(self.model, self.data.tokenizer, prompt, cfg.sample_max_new_tokens, self.device,
                                   seed=cfg.seed + step)
                self._emit("sample", step=step, prompt=prompt, text=text)
        self.metrics.sync()
        return True

    def _save_last(self) -> None:
        state = training_state(self.opt, self.sampler, self.p, self.window, self.ctx, self.device)
        save_last(self.exp, self.run, self.model, self.p.step, state)

    # ----------------------------------------------------------------- records
    def _emit(self, event: str, **fields: Any) -> None:
        if self.metrics is None:  # not rank 0
            return
        try:
            obj = self.metrics.write(event, **fields)
        except OSError as exc:
            raise RunFailed(f"{self.run.metrics_path.name} write failed at step {self.p.step} in {self.run.path}: "
                            f"{disk_error_text(exc)}; the last checkpoint is intact") from None
        if self.reporter:
            self.reporter(obj)

    def _update_run(self, **fields: Any) -> None:
        if self.ctx.is_main:
            self.run.update_run(**fields)

    def _install_signals(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.stop_requested = True
            self.stop_signal = self.stop_signal or signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (tests): stop via .stop_requested
                pass

    def _wall_time_s(self) -> float:
        """Seconds of wall time over every attempt of this run (start-up and evaluation included)."""
        start = self._attempt_t0
        return round(self._wall_before + (time.perf_counter() - start if start else 0.0), 3)

    def _fail(self, message: str) -> None:
        """Mark the run failed with ``message`` (rank 0). On a full disk the space reserve is
        freed first, so ``run.json`` and the ``end`` event still fit."""
        if not self.ctx.is_main:
            return
        if self._reserve is not None:
            self._reserve.release()
        try:
            self.run.update_run(status="failed", ended_at=time.time(), message=message,
                                wall_time_s=self._wall_time_s())
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        try:
            if self.metrics is not None:
                self.metrics.write("end", status="failed", message=message)
        except OSError:
            pass

    def _finish(self, status: str, message: str | None) -> str:
        self._emit("end", status=status, step=self.p.step, message=message,
                   best_val_loss=self.p.best_val_loss if math.isfinite(self.p.best_val_loss) else None)
        self._update_run(status=status, ended_at=time.time(), message=message, step=self.p.step,
                         elapsed_s=self.p.elapsed_s, wall_time_s=self._wall_time_s(), tokens_seen=self.p.tokens_seen)
        if self.metrics is not None:
            self.metrics.sync()
            self.metrics.close()
        if self._reserve is not None:
            self._reserve.release()
        return status

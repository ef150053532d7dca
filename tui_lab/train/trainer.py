"""The training loop: experiment → data → model → AdamW steps → evaluations → run folder.

One :class:`Trainer` drives one run. It writes ``metrics.jsonl`` events as it goes,
``run.json`` at every state change, and checkpoints at every evaluation (``last``,
plus ``best`` by validation loss). SIGINT / SIGTERM end it gracefully as ``stopped``
after saving; a non-finite loss ends it as ``diverged`` keeping the last good
checkpoint; ``--resume`` restores model, optimizer, step, RNG and data position.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import Experiment, experiment_to_table
from ..config.load import experiment_of_table
from ..errors import TuiLabError
from ..atomic import atomic_write_json
from ..runs.metrics import perplexity
from ..runs.store import MetricsWriter, RunDir, _proc_start_ticks, create_run, git_commit
from ..models.checkpoint import read_checkpoint, save_weights
from .state import load_train_state, save_train_state
from .distributed import (DistContext, any_rank, broadcast_from_main, init_distributed, local_main_first,
                          mean_over_ranks, shutdown)
from .evaluate import EvalResult, evaluate
from .sampler import WindowSampler
from .schedule import lr_at

Reporter = Callable[[dict[str, Any]], None]


class TrainingError(TuiLabError):
    """Training could not start or go on; ``str(err)`` is the user message."""


class RunFailed(TrainingError):
    """A run that started and then failed (out of memory, checkpoint write error): exit code 1."""

    exit_code = 1


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _optimizer(model: torch.nn.Module, exp: Experiment, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019). ``train.decay_all = false``: weight decay on matrices
    only, not on biases, norms or 1-D parameters (as GPT-2 / nanoGPT ``configure_optimizers``);
    ``true``: one group, decay on every parameter (the seed scripts' plain
    ``AdamW(model.parameters(), weight_decay=0.1)``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if exp.train.decay_all:
        groups = [{"params": params, "weight_decay": exp.train.weight_decay}]
    else:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": exp.train.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kwargs: dict[str, Any] = {"lr": exp.train.lr, "betas": tuple(exp.train.betas)}
    if device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def autocast_dtype(device_type: str, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on a device type: ``torch.bfloat16`` for
    "bf16" on CUDA, else None (no autocast: fp32 on the CPU, on MPS and with "fp32")."""
    return torch.bfloat16 if precision == "bf16" and device_type == "cuda" else None


@torch.no_grad()
def sample_text(model: torch.nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int,
                device: torch.device, temperature: float = 0.8, top_k: int = 50, seed: int = 0) -> str:
    """A short continuation of ``prompt`` for the run's sample panel (top-k sampling)."""
    from ..generate import generate_text

    return generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                         top_k=top_k, seed=seed, device=device)


@dataclass
class _Progress:
    step: int = 0
    tokens_seen: int = 0
    best_val_loss: float = math.inf
    best_step: int | None = None
    best_epoch: int | None = None
    bad_evals: int = 0
    n_evals: int = 0
    elapsed_s: float = 0.0


class Trainer:
    """Train ``exp`` into ``run`` on ``device``.

    Args:
        exp: the resolved experiment.
        run: the run folder (new, or an existing one to resume).
        device: from :func:`resolve_device`.
        resume: continue from ``run``'s ``checkpoints/last.state.pt``.
        reporter: called with every metrics event (the CLI's progress bar, tests).
        token_progress: called while tokenizing (done_bytes, total_bytes).
    """

    def __init__(self, exp: Experiment, run: RunDir, device: torch.device, *, resume: bool = False,
                 reporter: Reporter | None = None, token_progress: Callable[[int, int | None], None] | None = None):
        self.exp = exp
        self.run = run
        self.device = device
        self.resume = resume
        self.reporter = reporter
        self.token_progress = token_progress
        self.stop_requested = False
        self.p = _Progress()
        self.ctx = DistContext()
        self.metrics: MetricsWriter | None = None
        # TUI_LAB_FAULT_NAN_STEP=N makes the loss of step N NaN: how the reliability suite injects
        # a divergence for real (no other effect; unset in normal use)
        self._nan_at = int(os.environ.get("TUI_LAB_FAULT_NAN_STEP", "0") or 0)

    # ----------------------------------------------------------------- set-up
    def _load_data(self) -> None:
        from ..data import load_tokenizer, load_tokens

        d = self.exp.data
        self.tokenizer = load_tokenizer(d.tokenizer, d.tokenizer_path)
        if self.tokenizer.vocab_size > self.exp.model.vocab_size:
            raise TrainingError(
                f"experiment '{self.exp.name}': tokenizer '{d.tokenizer}' has {self.tokenizer.vocab_size} tokens "
                f"but model.vocab_size is {self.exp.model.vocab_size}"
            )
        with local_main_first(self.ctx):  # under DDP rank 0 tokenizes, the others read its cache
            train = load_tokens(d, "train", self.tokenizer, progress=self.token_progress)
            val = load_tokens(d, "validation", self.tokenizer, progress=self.token_progress)
        self.train_ids = train.ids[: d.max_train_tokens] if d.max_train_tokens else train.ids
        self.val_ids = val.ids[: d.max_val_tokens] if d.max_val_tokens else val.ids
        self.val_words = val.n_words if not d.max_val_tokens else None

    def _emit(self, event: str, **fields: Any) -> None:
        if self.metrics is None:  # not rank 0
            return
        obj = self.metrics.write(event, **fields)
        if self.reporter:
            self.reporter(obj)

    def _update_run(self, **fields: Any) -> None:
        if self.ctx.is_main:
            self.run.update_run(**fields)

    def _install_signals(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.stop_requested = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (tests): stop via .stop_requested
                pass

    # ----------------------------------------------------------------- main loop
    def train(self) -> str:
        """Run to the end; returns the final status (finished / stopped / diverged).

        Raises:
            TrainingError, DataError, CheckpointError: set-up failed (the run is marked failed).
        """
        exp, run, cfg = self.exp, self.run, self.exp.train
        self.ctx, self.device = init_distributed(self.device)
        dev, ctx = self.device, self.ctx
        if ctx.is_main:
            self.metrics = MetricsWriter(run.metrics_path)
        self._install_signals()
        try:
            self._load_data()
            torch.manual_seed(cfg.seed)
            from ..models import build_model, count_parameters

            model = build_model(exp.model).to(dev)
            self.model = model
            n_params = count_parameters(model)
            opt = _optimizer(model, exp, dev)
            self._opt = opt
            seq = exp.seq_len
            try:
                batch = cfg.per_process_batch(ctx.world_size)
            except ValueError as exc:
                raise TrainingError(f"experiment '{exp.name}': {exc}") from None
            self.batch = batch
            sampler = WindowSampler(self.train_ids, seq, batch, cfg.seed, ctx.rank, ctx.world_size)
            train_model: torch.nn.Module = model
            if ctx.enabled:
                from torch.nn.parallel import DistributedDataParallel

                train_model = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
            if cfg.compile:  # state-dict keys stay clean: checkpoints save the uncompiled `model`
                train_model = torch.compile(train_model)
        except Exception as exc:
            self._fail(str(exc))
            raise
        steps_per_epoch = max(1, sampler.batches_per_epoch // cfg.grad_accum_steps)
        total = min(x for x in (cfg.max_steps, cfg.epochs and cfg.epochs * steps_per_epoch) if x)
        amp_dtype = autocast_dtype(dev.type, cfg.precision)
        if dev.type == "cuda":  # TF32 matmuls with "bf16"; "fp32" keeps PyTorch's default, full fp32 matmuls
            torch.backends.cuda.matmul.allow_tf32 = amp_dtype is not None
            torch.backends.cudnn.allow_tf32 = True

        if self.resume:
            state = load_train_state(run.train_state_path)

            weights, _ = read_checkpoint(run.last_weights_path)
            model.load_state_dict(weights)
            opt.load_state_dict(state["optimizer"])
            if state.get("world_size", 1) != ctx.world_size:
                raise TrainingError(f"{run.path}: the run was trained with {state.get('world_size', 1)} processes; "
                                    f"resume it with --nproc-per-node {state.get('world_size', 1)}")
            sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["rng_cpu"])
            if dev.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], dev)
            for k, v in state["progress"].items():
                setattr(self.p, k, v)
            self.p.best_val_loss = state["progress"].get("best_val_loss") or math.inf

        if ctx.is_main:
            run.checkpoint_dir.mkdir(exist_ok=True)
        prior = run.read_run() if self.resume and ctx.is_main else {}
        now_unix = time.time()
        # wall time over every attempt, a killed one's included (up to its last run.json update)
        self._wall_before = float(prior.get("wall_time_s") or prior.get("elapsed_s") or 0.0)
        self._attempt_t0 = time.perf_counter()
        self._update_run(
            experiment=exp.name, run_id=run.run_id, status="running", pid=os.getpid(),
            proc_start=_proc_start_ticks(os.getpid()), host=socket.gethostname(), device=str(dev),
            device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            started_at=prior.get("started_at") or now_unix, resumed_at=now_unix if self.resume else None,
            attempts=int(prior.get("attempts") or 1) + 1 if self.resume else 1,
            ended_at=None, message=None, num_params=n_params,
            train_tokens=int(len(self.train_ids)), val_tokens=int(len(self.val_ids)), val_words=self.val_words,
            total_steps=total, steps_per_epoch=steps_per_epoch, tokens_per_step=batch * seq * cfg.grad_accum_steps,
            batch_size=batch, global_batch_size=batch * cfg.grad_accum_steps * ctx.world_size,
            git_commit=git_commit(), world_size=ctx.world_size, step=self.p.step,
        )
        if self.resume:
            self._emit("resume", step=self.p.step, epoch=sampler.epoch, tokens_seen=self.p.tokens_seen)
        else:
            self._emit("start", step=0, total_steps=total, num_params=n_params, device=str(dev),
                       train_tokens=int(len(self.train_ids)), val_tokens=int(len(self.val_ids)))
            finite, _ = self._eval_all_ranks(model, sampler, amp_dtype, save=False)
            if not finite:
                return self._finish("diverged", "non-finite validation loss at initialisation")

        t0 = time.perf_counter() - self.p.elapsed_s
        window_t, window_tokens = time.perf_counter(), 0
        loss_acc = torch.zeros((), device=dev)
        n_acc = 0
        train_model.train()
        status, message = "finished", None
        try:
            while self.p.step < total:
                if any_rank(self.stop_requested, ctx, dev):
                    status, message = "stopped", f"stopped by signal at step {self.p.step}"
                    break
                lr = lr_at(self.p.step, cfg, total)
                for group in opt.param_groups:
                    group["lr"] = lr
                epoch_ended = False
                for micro in range(cfg.grad_accum_steps):
                    x, y, ended = sampler.next_batch()
                    epoch_ended |= ended
                    if dev.type == "cuda":  # page-locked copies let the transfer overlap compute
                        x, y = x.pin_memory(), y.pin_memory()
                    x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                    last_micro = micro == cfg.grad_accum_steps - 1
                    sync = train_model.no_sync() if ctx.enabled and not last_micro else contextlib.nullcontext()
                    with sync:
                        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                            if cfg.fused_cross_entropy:  # chunked head + loss, no [B, T, V] logits
                                loss = train_model(x, targets=y)
                            else:
                                logits = train_model(x)
                                loss = torch.nn.functional.cross_entropy(
                                    logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
                        if self._nan_at == self.p.step + 1:  # fault injection (reliability tests)
                            loss = loss * float("nan")
                        (loss / cfg.grad_accum_steps).backward()
                    loss_acc += loss.detach()
                    n_acc += 1
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                self.p.step += 1
                step_tokens = batch * seq * cfg.grad_accum_steps * ctx.world_size
                self.p.tokens_seen += step_tokens
                window_tokens += step_tokens
                if self.p.step % cfg.log_every == 0 or self.p.step == total or epoch_ended:
                    train_loss = mean_over_ranks(loss_acc / n_acc, ctx).item()  # the only host sync between evaluations
                    loss_acc.zero_()
                    n_acc = 0
                    now = time.perf_counter()
                    self.p.elapsed_s = now - t0
                    if not math.isfinite(train_loss):
                        status = "diverged"
                        message = (f"non-finite training loss ({train_loss}) at step {self.p.step} "
                                   f"with lr {lr:.3g}; kept the last good checkpoint; lower train.lr")
                        self._emit("train", step=self.p.step, epoch=sampler.epoch, train_loss=None, lr=lr,
                                   tokens_seen=self.p.tokens_seen, elapsed_s=round(self.p.elapsed_s, 3))
                        break
                    self._emit("train", step=self.p.step, epoch=sampler.epoch, train_loss=round(train_loss, 6),
                               lr=lr, tokens_seen=self.p.tokens_seen,
                               tokens_per_s=round(window_tokens / max(now - window_t, 1e-9), 1),
                               elapsed_s=round(self.p.elapsed_s, 3), mem_mb=round(_memory_mb(dev), 1))
                    window_t, window_tokens = now, 0
                if epoch_ended:
                    self._emit("epoch_end", step=self.p.step, epoch=sampler.epoch)
                # eval_every > 0 is the only schedule (no extra epoch-end evaluations); 0: at epoch ends
                do_eval = (self.p.step % cfg.eval_every == 0 if cfg.eval_every else epoch_ended) or self.p.step == total
                if do_eval:
                    self.p.elapsed_s = time.perf_counter() - t0
                    finite, early_stop = self._eval_all_ranks(model, sampler, amp_dtype, save=True)
                    if not finite:
                        status = "diverged"
                        message = f"non-finite validation loss at step {self.p.step} with lr {lr:.3g}; kept the last good checkpoint"
                        break
                    window_t, window_tokens = time.perf_counter(), 0
                    if early_stop:
                        message = f"early stopping: no improvement in {cfg.patience} evaluations (best at step {self.p.best_step})"
                        break
            else:
                message = f"reached {total} steps"
            if status == "stopped" and ctx.is_main:
                self.p.elapsed_s = time.perf_counter() - t0
                self._save_last(model, opt, sampler)
        except torch.cuda.OutOfMemoryError:
            self._fail(f"CUDA out of memory at batch_size {batch} x seq_len {seq}: lower train.batch_size "
                       f"(raise train.grad_accum_steps to keep the global batch) or train.seq_len")
            raise RunFailed(self.run.read_run().get("message")) from None
        except TrainingError as exc:
            self._fail(str(exc))
            raise
        except BaseException as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            shutdown(ctx)
        return self._finish(status, message)

    # ----------------------------------------------------------------- pieces
    def _eval_all_ranks(self, model: torch.nn.Module, sampler: WindowSampler, autocast_dtype: torch.dtype | None,
                        save: bool) -> tuple[bool, bool]:
        """Rank 0 evaluates and checkpoints; every rank gets ``(finite, early_stop)``."""
        decision = None
        if self.ctx.is_main:
            finite = self._evaluate(model, sampler, autocast_dtype, save)
            patience = self.exp.train.patience
            decision = (finite, bool(finite and patience and self.p.bad_evals >= patience))
        decision = broadcast_from_main(decision, self.ctx)
        if self.ctx.enabled:  # keep every rank's copy of the best score for resume bookkeeping
            self.p.bad_evals = broadcast_from_main(self.p.bad_evals, self.ctx)
        return decision

    def _evaluate(self, model: torch.nn.Module, sampler: WindowSampler, autocast_dtype: torch.dtype | None,
                  save: bool) -> bool:
        """Evaluate, record, checkpoint; returns False when the loss is not finite."""
        cfg = self.exp.train
        res: EvalResult = evaluate(model, self.val_ids, self.exp.seq_len, self.batch, self.device,
                                   cfg.eval_max_tokens, autocast_dtype)
        if not math.isfinite(res.val_loss):
            return False
        self.p.n_evals += 1
        is_best = res.val_loss < self.p.best_val_loss
        if is_best:
            self.p.best_val_loss, self.p.best_step, self.p.best_epoch = res.val_loss, self.p.step, sampler.epoch
            self.p.bad_evals = 0
        else:
            self.p.bad_evals += 1
        word_ppl = None
        if self.val_words and cfg.eval_max_tokens is None:
            word_ppl = perplexity(res.nll_sum / self.val_words)
        self._emit("eval", step=self.p.step, epoch=sampler.epoch, val_loss=round(res.val_loss, 6),
                   val_ppl=round(res.val_ppl, 4), val_acc=round(res.val_acc, 6), val_tokens=res.n_tokens,
                   val_word_ppl=round(word_ppl, 4) if word_ppl else None, is_best=is_best,
                   best_val_loss=round(self.p.best_val_loss, 6), tokens_seen=self.p.tokens_seen,
                   elapsed_s=round(self.p.elapsed_s, 3))
        if save:
            if is_best:
                try:
                    self._save_weights(model, self.run.best_weights_path, res.val_loss)
                except OSError as exc:
                    raise RunFailed(f"checkpoint write failed at step {self.p.step} in {self.run.checkpoint_dir}: "
                                        f"{exc.strerror or exc} (disk full?); the previous checkpoint is intact") from None
            self._save_last(model, self._opt_ref(), sampler)
        self._update_run(step=self.p.step, epoch=sampler.epoch, tokens_seen=self.p.tokens_seen,
                            best_val_loss=self.p.best_val_loss, best_val_ppl=perplexity(self.p.best_val_loss),
                            best_step=self.p.best_step, best_epoch=self.p.best_epoch, elapsed_s=self.p.elapsed_s,
                            wall_time_s=self._wall_time_s())
        if cfg.sample_every and cfg.sample_prompts and self.p.n_evals % cfg.sample_every == 0:
            for prompt in cfg.sample_prompts:
                text = sample_text(model, self.tokenizer, prompt, cfg.sample_max_new_tokens, self.device,
                                   seed=cfg.seed + self.p.step)
                self._emit("sample", step=self.p.step, prompt=prompt, text=text)
        self.metrics.sync()
        return True

    def _opt_ref(self) -> torch.optim.Optimizer | None:
        return getattr(self, "_opt", None)

    def _save_weights(self, model: torch.nn.Module, path: Path, val_loss: float | None) -> None:
        data = self.exp.data.model_dump(mode="json")
        if data.get("tokenizer_path"):  # absolute, so chat finds it from any folder
            data["tokenizer_path"] = str(Path(data["tokenizer_path"]).expanduser().resolve())
        extra = {"experiment": self.exp.name, "data": data,
                 "step": self.p.step, "val_loss": val_loss, "run_id": self.run.run_id}
        save_weights(path, model, self.exp.model, extra)

    def _save_last(self, model: torch.nn.Module, opt: torch.optim.Optimizer | None, sampler: WindowSampler) -> None:
        if opt is None:
            return
        try:
            self._write_last(model, opt, sampler)
        except OSError as exc:
            raise RunFailed(
                f"checkpoint write failed at step {self.p.step} in {self.run.checkpoint_dir}: {exc.strerror or exc} "
                f"(disk full?); the previous checkpoint is intact — free space, then --resume {self.run.path}"
            ) from None

    def _write_last(self, model: torch.nn.Module, opt: torch.optim.Optimizer, sampler: WindowSampler) -> None:
        # weights first, then the state that points at them: a crash between the two leaves
        # a state one evaluation older than the weights, never a state with no weights
        self._save_weights(model, self.run.last_weights_path, None)
        save_train_state(self.run.train_state_path, {
            "optimizer": opt.state_dict(),
            "sampler": sampler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "world_size": self.ctx.world_size,
            "progress": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in vars(self.p).items()},
        })

    def _wall_time_s(self) -> float:
        """Seconds of wall time over every attempt of this run (start-up and evaluation included)."""
        start = getattr(self, "_attempt_t0", None)
        return round(getattr(self, "_wall_before", 0.0) + (time.perf_counter() - start if start else 0.0), 3)

    def _fail(self, message: str) -> None:
        if not self.ctx.is_main:
            return
        self.run.update_run(status="failed", ended_at=time.time(), message=message, wall_time_s=self._wall_time_s())
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
        return status


def start_run(exp: Experiment, runs_dir: Path | str, run_id: str | None = None,
              sweep: dict[str, Any] | None = None) -> RunDir:
    """Create the run folder for a new run and save the resolved config in it (with the run's
    sweep record under ``sweep`` when it is part of a sweep)."""
    run = create_run(runs_dir, exp.name, run_id)
    atomic_write_json(run.config_path, {**experiment_to_table(exp), **({"sweep": sweep} if sweep else {})})
    atomic_write_json(run.run_path, {"experiment": exp.name, "run_id": run.run_id, "status": "starting",
                                     "created_at": time.time(), "pid": os.getpid(),
                                     "proc_start": _proc_start_ticks(os.getpid()), "host": socket.gethostname()})
    return run


def experiment_of_run(run: RunDir) -> Experiment:
    """The resolved experiment saved in ``run/config.json``.

    Raises:
        TrainingError: no readable config in the folder.
    """
    table = run.read_config()
    if not table:
        raise TrainingError(f"{run.path}: not a run folder (no readable {run.config_path.name})")
    return experiment_of_table(table, run.experiment, source=str(run.config_path))

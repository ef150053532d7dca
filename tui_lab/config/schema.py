"""The schema of ``experiments.toml``: one experiment = ``model`` + ``data`` + ``train`` tables.

Validation is done by pydantic (strict types, unknown keys refused); the checks that
span several keys (``d_model % num_heads``, ``max_steps`` or ``epochs``) are model
validators. Nothing here imports torch: the app reads configs at start-up.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Experiment names become folder names under ``runs/``: no separators, no ``..``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


PositiveInt = Annotated[int, Field(gt=0)]


def Count(high: int, low: int = 1):  # noqa: N802 (a type alias factory)
    """An integer key bounded to ``[low, high]``: sane upper bounds keep absurd values
    (``batch_size = 10**15``) out of ``check`` instead of failing deep inside training."""
    return Annotated[int, Field(ge=low, le=high)]


BIG = 10**12  # token counts and step counts
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class ModelConfig(_Strict):
    """The ``model`` table. Shapes use the standard names (d_model, num_heads, d_ff).

    ``kind = "gpt"``: the seeds' ``LanguageModel`` (GPT-2 style, learned positions,
    biases, tied embedding + output bias). ``kind = "deepseek"``: exp7's multi-head
    latent attention + SiLU-gated MLP + RMSNorm, run causally.
    """

    kind: Literal["gpt", "deepseek"]
    vocab_size: Annotated[int, Field(gt=0, le=1_000_000)]
    max_seq_len: Annotated[int, Field(gt=0, le=131_072)]
    d_model: Annotated[int, Field(gt=0, le=65_536)]
    num_heads: Annotated[int, Field(gt=0, le=1024)]
    d_ff: Annotated[int, Field(gt=0, le=262_144)]
    num_layers: Annotated[int, Field(gt=0, le=512)]
    dropout: Probability = 0.0
    # deepseek only (multi-head latent attention, RoPE)
    q_lora_rank: Count(65_536) | None = None
    kv_lora_rank: Count(65_536) | None = None
    rope_theta: Annotated[float, Field(gt=0)] = 10_000.0
    # embedding / output rows rounded up to a multiple of this (64 aligns GPT-2's 50,257 to
    # 50,304 for GPU matmuls); the loss and the reported parameter count stay those of vocab_size
    pad_vocab_multiple: Annotated[int, Field(ge=1, le=4096)] = 1
    # gpt only: the feed-forward activation ("relu": the seed scripts' LanguageModel; "gelu":
    # exact erf GELU; "gelu_tanh": GPT-2's tanh approximation) and the LayerNorm epsilon
    activation: Literal["relu", "gelu", "gelu_tanh"] = "gelu"
    layer_norm_eps: Annotated[float, Field(gt=0, le=1e-1)] = 1e-5
    # gpt only: where dropout sits ("seed": the seed scripts' LanguageModel — attention weights,
    # attention output, FFN after the activation, after linear2 and again after the FFN, none on
    # the embeddings; "gpt2": attention weights, attention output, FFN output, embeddings) and the
    # initialisation ("torch_default": PyTorch's own — Embedding N(0, 1), Linear Kaiming-uniform,
    # as the seed scripts; "gpt2": N(0, 0.02), residual projections / sqrt(2·num_layers)).
    # init applies to deepseek too ("torch_default": exp7's code, embedding N(0, 0.02), linears
    # PyTorch's own); dropout_layout is gpt only
    dropout_layout: Literal["seed", "gpt2"] = "gpt2"
    init: Literal["torch_default", "gpt2"] = "gpt2"

    @model_validator(mode="after")
    def _shapes(self) -> "ModelConfig":
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.kind == "gpt" and (self.q_lora_rank is not None or self.kv_lora_rank is not None):
            raise ValueError("q_lora_rank / kv_lora_rank apply to kind = 'deepseek' only")
        if self.kind == "deepseek":
            if self.q_lora_rank is None or self.kv_lora_rank is None:
                raise ValueError("kind = 'deepseek' needs q_lora_rank and kv_lora_rank")
            if (self.d_model // self.num_heads) % 2:
                raise ValueError("deepseek: the head dimension d_model/num_heads must be even for RoPE")
        return self


class DataConfig(_Strict):
    """The ``data`` table: a Hub dataset (``dataset`` + ``config``) or a local ``path``.

    ``path`` is a folder holding train / validation / test text files
    (``train.txt``, ``valid.txt`` or ``validation.txt``, ``test.txt``; also
    ``wiki.train.raw``-style names). It wins over ``dataset`` when given.
    ``tokenizer``: ``gpt2`` (exact GPT-2 BPE through tiktoken, 50,257 tokens) or
    ``byte`` (256 byte values). ``tokenizer_path``: a folder with ``vocab.bpe`` and
    ``encoder.json`` for the offline GPT-2 encoding.
    """

    dataset: str | None = None
    config: str | None = None
    path: str | None = None
    tokenizer: Literal["gpt2", "byte"] = "gpt2"
    tokenizer_path: str | None = None
    # how a split's text rows become one token stream: "file" encodes the text as it is (rows
    # keep their newlines); "strip-lines" is the seed scripts' protocol: each row stripped,
    # empty rows dropped, each row encoded on its own and the ids concatenated with nothing
    # between (no newline tokens) -- 242,643 GPT-2 tokens on wikitext-2-raw-v1 validation
    join: Literal["file", "strip-lines"] = "file"
    max_train_tokens: Count(BIG) | None = None
    max_val_tokens: Count(BIG) | None = None

    @model_validator(mode="after")
    def _source(self) -> "DataConfig":
        if self.path is None and self.dataset is None:
            raise ValueError("give either dataset (a Hub dataset) or path (a local folder)")
        if self.dataset is not None and self.dataset not in BUILTIN_DATASETS and self.config is None:
            raise ValueError(f"dataset '{self.dataset}' needs a config (e.g. 'wikitext-2-raw-v1')")
        return self


BUILTIN_DATASETS = {"pydoc"}
"""Datasets that ship with Python itself: ``pydoc`` is the English text of Python's
own documentation topics (``pydoc_data.topics``), for the offline demo."""


class TrainConfig(_Strict):
    """The ``train`` table. Units: lr per optimizer step; batch_size in sequences of
    ``seq_len`` tokens; eval_every / log_every in optimizer steps.

    Batch: give exactly one of ``batch_size`` (sequences per process per micro-step: the
    global batch grows with ``--nproc-per-node``) or ``global_batch_size`` (sequences per
    optimizer step over all processes and accumulation micro-steps: divided across them,
    so the tokens per step do not depend on the process count); see :meth:`per_process_batch`.
    """

    batch_size: Count(1_048_576) | None = None
    global_batch_size: Count(1_048_576) | None = None
    seq_len: Count(131_072) | None = None  # defaults to model.max_seq_len
    grad_accum_steps: Count(1_048_576) = 1
    epochs: Count(1_000_000) | None = None
    max_steps: Count(BIG) | None = None
    optimizer: Literal["adamw"] = "adamw"
    lr: Annotated[float, Field(gt=0, le=10.0)]
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = [0.9, 0.95]
    weight_decay: Annotated[float, Field(ge=0, le=10.0)] = 0.1
    grad_clip: Annotated[float, Field(ge=0)] = 1.0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: Count(BIG, 0) = 0
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1
    eval_every: Count(BIG, 0) = 0  # N: every N steps and at the last step only; 0: at epoch ends
    eval_max_tokens: Count(BIG) | None = None  # None: the whole split
    log_every: Count(BIG) = 10
    patience: Count(1_000_000, 0) = 0  # evaluations without improvement; 0 = off
    seed: Count(2**32 - 1, 0) = 1337
    compile: bool = False
    # the output projection + cross-entropy in row chunks (tui_lab.models.loss): same loss,
    # no [batch, seq_len, vocab] float32 logits; false = logits, then F.cross_entropy
    fused_cross_entropy: bool = True
    sample_every: Count(1_000_000, 0) = 0  # evaluations between generation samples; 0 = off
    sample_prompts: list[str] = []
    sample_max_new_tokens: Count(100_000) = 40
    # "bf16": bf16 autocast on CUDA (CPU and MPS compute in fp32) and TF32 matmuls; "fp32": no
    # autocast and no TF32 (PyTorch's defaults: what the seed scripts ran)
    precision: Literal["bf16", "fp32"] = "bf16"
    # true: weight_decay on every parameter, as plain AdamW(model.parameters()) in the seed scripts;
    # false: matrices only, no decay on biases, norms and other 1-D parameters (GPT-2 / nanoGPT)
    decay_all: bool = False
    # TensorBoard scalars (and samples as text) under runs/<exp>/<run-id>/tensorboard/, beside
    # metrics.jsonl (which stays the source of truth); false = none
    tensorboard: bool = True

    @model_validator(mode="after")
    def _budget(self) -> "TrainConfig":
        if self.epochs is None and self.max_steps is None:
            raise ValueError("give epochs or max_steps (or both: whichever ends first)")
        if (self.batch_size is None) == (self.global_batch_size is None):
            raise ValueError("give exactly one of batch_size (per process) or global_batch_size "
                             "(over all processes, divided across them)")
        return self

    def per_process_batch(self, world_size: int = 1) -> int:
        """Sequences per process per micro-step for a job of ``world_size`` processes.

        ``batch_size`` as given; or ``global_batch_size / (world_size * grad_accum_steps)``.

        Raises:
            ValueError: ``global_batch_size`` does not divide by ``world_size * grad_accum_steps``
                (the message names the key and both numbers).
        """
        if self.batch_size is not None:
            return self.batch_size
        assert self.global_batch_size is not None
        parts = world_size * self.grad_accum_steps
        if self.global_batch_size % parts:
            raise ValueError(
                f"train.global_batch_size ({self.global_batch_size}) does not divide by {world_size} process"
                f"{'es' if world_size != 1 else ''} x train.grad_accum_steps ({self.grad_accum_steps}) = {parts}: "
                f"choose a process count or global_batch_size that divides"
            )
        return self.global_batch_size // parts


class Reference(_Strict):
    """The optional ``[experiments.NAME.reference]`` table: what the seed log reports for this
    experiment, shown beside tui-lab's own figures by ``tui-lab report`` (with the change Δ).

    Every figure is the log's as written (``None`` where the log gives none); ``source`` says
    which log file and line each comes from. ``val_ppl`` is exp(mean validation loss per
    token) in the log's own tokens; ``tokens_per_s`` is training tokens per second, obtained
    as ``tokens_per_s_basis`` says (the logs print it/s, not tokens/s). ``join`` and ``text``
    are the data protocol behind the log's figure (see ``data.join``; ``text``: ``raw`` =
    ``wikitext-*-raw-v1``, ``unk`` = the ``<unk>`` version ``wikitext-*-v1``). ``valid = false``
    marks a figure that must not be compared (``invalid_reason`` says why).
    """

    val_ppl: Annotated[float, Field(gt=0)] | None = None
    val_loss: Annotated[float, Field(ge=0)] | None = None
    val_acc: Annotated[float, Field(ge=0, le=1)] | None = None
    tokens_per_s: Annotated[float, Field(gt=0)] | None = None
    tokens_per_s_basis: str = ""
    num_params: Annotated[int, Field(gt=0)] | None = None
    num_params_rounded: bool = False  # the log gives the count rounded ("16M")
    epochs: Annotated[int, Field(gt=0)] | None = None  # epochs trained when the figure was logged
    best_epoch: Annotated[int, Field(gt=0)] | None = None
    steps: Annotated[int, Field(gt=0)] | None = None
    train_tokens: Annotated[int, Field(gt=0)] | None = None
    val_tokens: Annotated[int, Field(gt=0)] | None = None
    join: Literal["file", "strip-lines"] | None = None
    text: Literal["raw", "unk"] | None = None
    valid: bool = True
    invalid_reason: str = ""
    source: str

    @model_validator(mode="after")
    def _reason(self) -> "Reference":
        if not self.valid and not self.invalid_reason:
            raise ValueError("valid = false needs invalid_reason (why the seed's figure must not be compared)")
        return self


SweepGrid = dict[str, Annotated[list[Any], Field(min_length=1)]]
"""``[experiments.NAME.sweep]``: ``"section.key" = [values...]``; the runs are the Cartesian
product of the lists (first key outermost). Keys and values are checked like ``--set``
overrides when the file is loaded (:func:`tui_lab.config.sweep.check_sweep`)."""


class Experiment(_Strict):
    """One ``[experiments.NAME]`` table (``sweep`` and ``reference`` are optional tables)."""

    name: str
    description: str = ""
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    sweep: SweepGrid | None = None
    reference: Reference | None = None

    @model_validator(mode="after")
    def _fit(self) -> "Experiment":
        if not NAME_RE.match(self.name) or ".." in self.name:
            raise ValueError(
                f"experiment name {self.name!r} must be 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit (it becomes a folder name)"
            )
        seq = self.train.seq_len or self.model.max_seq_len
        if seq > self.model.max_seq_len:
            raise ValueError(f"train.seq_len ({seq}) exceeds model.max_seq_len ({self.model.max_seq_len})")
        if self.data.tokenizer == "byte" and self.model.vocab_size < 256:
            raise ValueError("tokenizer 'byte' needs model.vocab_size >= 256")
        if self.data.tokenizer == "gpt2" and self.model.vocab_size < 50257:
            raise ValueError("tokenizer 'gpt2' needs model.vocab_size >= 50257")
        return self

    @property
    def seq_len(self) -> int:
        """Training context length in tokens (``train.seq_len`` or ``model.max_seq_len``)."""
        return self.train.seq_len or self.model.max_seq_len


AlertState = Literal["finished", "failed", "diverged", "stopped", "stalled"]


class AlertSettings(_Strict):
    """The optional ``[settings.alerts]`` table: who hears when a run ends or stalls.

    ``command``: a shell command run with the alert as JSON on stdin and ``TUI_LAB_*``
    environment variables (cut after 10 s). ``webhook``: an http(s) URL that gets the same
    JSON as a POST (5 s timeout; its ``text`` field is the Slack-compatible body).
    ``stall_minutes``: a running run with no new metrics for this long is "stalled".
    The end states are raised by the training process; "stalled" by the app and the queue
    runner (:mod:`tui_lab.runs.alerts`)."""

    on: list[AlertState] = ["finished", "failed", "diverged", "stopped", "stalled"]
    command: Annotated[str, Field(min_length=1)] | None = None
    webhook: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    stall_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 10.0


class DistributedSettings(_Strict):
    """``[settings.distributed]``: defaults for ``tui-lab train``'s multi-node flags (a flag wins)."""

    nnodes: Annotated[int, Field(ge=1)] = 1
    node_rank: Annotated[int, Field(ge=0)] = 0
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    nproc_per_node: Annotated[int, Field(ge=1)] = 1


class Settings(_Strict):
    """The optional ``[settings]`` table: defaults shared by every experiment."""

    runs_dir: str = "runs"
    gpu_hour_price_usd: Annotated[float, Field(ge=0)] = 0.0
    bell: bool = False  # the terminal bell with the app's notification when a run changes state
    alerts: AlertSettings = AlertSettings()
    distributed: DistributedSettings = DistributedSettings()


class ExperimentsFile(_Strict):
    settings: Settings = Settings()
    experiments: dict[str, Experiment]

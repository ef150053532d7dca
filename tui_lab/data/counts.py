"""Token counts of an experiment's splits for listings (``tui-lab list --json``), no torch.

``train_tokens`` / ``val_tokens``: the number of token ids of the train / validation split as the
trainer builds it (the experiment's tokenizer and ``data.join``; before ``max_*_tokens``
caps). They come from the token cache when the split is cached; a split whose text is local
(``data.path``, or a dataset that ships with Python such as ``pydoc``) and whose tokenizer
needs no network (``byte``, or ``gpt2`` with ``data.tokenizer_path``) is tokenized now and
cached. Anything else (a Hub dataset not cached yet, a missing file) is None: listing never
downloads and never fails.
"""

from __future__ import annotations

from ..errors import TuiLabError
from .cache import cached_token_counts, load_tokens
from .tokenizers import load_tokenizer

COUNTED_SPLITS = {"train_tokens": "train", "val_tokens": "validation"}
"""The listing's keys and the split each counts."""


def is_local(data_cfg) -> bool:
    """Whether the text and tokenizer of ``data_cfg`` are on this machine (no Hub, no download)."""
    from ..config.schema import BUILTIN_DATASETS

    text_local = bool(data_cfg.path) or data_cfg.dataset in BUILTIN_DATASETS
    return text_local and (data_cfg.tokenizer == "byte" or bool(data_cfg.tokenizer_path))


def split_token_counts(data_cfg, tokenize_local: bool = True) -> dict[str, int | None]:
    """``{"train_tokens": n | None, "val_tokens": n | None}`` for one experiment's data (see the
    module docstring: cached, else tokenized now when local and ``tokenize_local``, else None)."""
    out: dict[str, int | None] = {}
    tokenizer = None
    for key, split in COUNTED_SPLITS.items():
        counts = cached_token_counts(data_cfg, split)
        if counts is None and tokenize_local and is_local(data_cfg):
            try:
                tokenizer = tokenizer or load_tokenizer(data_cfg.tokenizer, data_cfg.tokenizer_path)
                counts = {"n_tokens": load_tokens(data_cfg, split, tokenizer).n_tokens}
            except (TuiLabError, OSError):
                counts = None
        out[key] = int(counts["n_tokens"]) if counts else None
    return out

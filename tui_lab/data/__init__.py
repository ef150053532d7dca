"""Data: tokenizers, text sources and the on-disk token cache (no torch here)."""

from __future__ import annotations

from ..errors import TuiLabError


class DataError(TuiLabError):
    """Data or tokenizer that cannot be loaded; ``str(err)`` names the file or dataset."""


from .cache import TokenArray, cache_dir, cached_token_counts, load_tokens  # noqa: E402
from .sources import SPLITS, split_texts  # noqa: E402
from .tokenizers import ByteTokenizer, Tokenizer, load_tokenizer  # noqa: E402

__all__ = ["SPLITS", "ByteTokenizer", "DataError", "TokenArray", "Tokenizer", "cache_dir", "cached_token_counts",
           "load_tokenizer", "load_tokens", "split_texts"]

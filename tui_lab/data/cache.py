"""Token cache: tokenize a split once, keep its ids on disk as a numpy memmap.

Files: ``<cache_dir>/<key>.bin`` (raw ids, uint16 when the vocabulary fits, else
uint32) and ``<key>.json`` (counts and provenance), keyed by the split's source
fingerprint and the tokenizer. Rows are tokenized in batches with tiktoken's threaded
batch encoder and appended chunk by chunk, so WikiText-103 (~116M tokens) never sits
in memory as Python ints. The rows' tokens are concatenated in order with nothing
added between them (rows carry their own newlines). Both files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .sources import source_fingerprint, source_size, split_texts
from .tokenizers import Tokenizer

FORMAT_VERSION = 1
CHUNK_CHARS = 1 << 20  # rows are joined into ~1 MB texts: per-row calls cost more than the BPE itself
TOKENIZER_FINGERPRINTS = {"byte": "byte-v1", "gpt2": "gpt2-r50k"}

Progress = Callable[[int, "int | None"], None]


@dataclass
class TokenArray:
    """One tokenized split: ``ids`` is a read-only 1-D memmap of ``n_tokens`` ids;
    ``n_words`` whitespace-separated words and ``n_bytes`` UTF-8 bytes of its text."""

    ids: np.ndarray
    n_tokens: int
    n_words: int
    n_bytes: int
    path: Path


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else ``$TUI_LAB_CACHE_DIR``, else ``~/.cache/tui-lab/tokens``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("TUI_LAB_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tui-lab" / "tokens"


def _key(data_cfg, split: str, tokenizer_fingerprint: str) -> str:
    raw = f"{source_fingerprint(data_cfg, split)}|{split}|{tokenizer_fingerprint}|v{FORMAT_VERSION}"
    return f"{split}-{tokenizer_fingerprint}-" + hashlib.sha256(raw.encode()).hexdigest()[:20]


def _dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def _open(meta_path: Path) -> TokenArray | None:
    try:
        meta = json.loads(meta_path.read_text())
        bin_path = meta_path.with_suffix(".bin")
        dtype = np.dtype(meta["dtype"])
        n = int(meta["n_tokens"])
        if bin_path.stat().st_size != n * dtype.itemsize or n == 0:
            return None
        ids = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n,))
        return TokenArray(ids, n, int(meta["n_words"]), int(meta["n_bytes"]), bin_path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_token_counts(data_cfg, split: str, cache: str | os.PathLike | None = None) -> dict | None:
    """The cached split's metadata (``n_tokens``, ``n_words``, ...) without tokenizing
    or loading a tokenizer; None when not cached yet (or its source is missing)."""
    try:
        key = _key(data_cfg, split, TOKENIZER_FINGERPRINTS[data_cfg.tokenizer])
    except Exception:
        return None
    arr = _open(cache_dir(cache) / f"{key}.json")
    if arr is None:
        return None
    return {"n_tokens": arr.n_tokens, "n_words": arr.n_words, "n_bytes": arr.n_bytes}


def _text_chunks(rows: Iterator[str], n: int) -> Iterator[list[str]]:
    """Batches of ``n`` texts of about CHUNK_CHARS characters, each made of whole rows.

    Joining rows before encoding gives the same ids as encoding the rows one by one
    (every row ends with a newline, where GPT-2's pre-tokenizer splits anyway)."""
    batch: list[str] = []
    buf: list[str] = []
    size = 0
    for row in rows:
        buf.append(row)
        size += len(row)
        if size >= CHUNK_CHARS:
            batch.append("".join(buf))
            buf, size = [], 0
            if len(batch) == n:
                yield batch
                batch = []
    if buf:
        batch.append("".join(buf))
    if batch:
        yield batch


def load_tokens(data_cfg, split: str, tokenizer: Tokenizer, cache: str | os.PathLike | None = None,
                progress: Progress | None = None) -> TokenArray:
    """The token ids of one split, from the cache or tokenized now (and cached).

    Args:
        progress: called as ``progress(done_bytes, total_bytes_or_None)`` while tokenizing.
    Raises:
        DataError: the source cannot be read (see :func:`split_texts`), or the split is empty.
        OSError: the cache folder cannot be written.
    """
    from . import DataError

    folder = cache_dir(cache)
    key = _key(data_cfg, split, tokenizer.fingerprint)
    meta_path = folder / f"{key}.json"
    hit = _open(meta_path)
    if hit is not None:
        return hit
    folder.mkdir(parents=True, exist_ok=True)
    dtype = _dtype(tokenizer.vocab_size)
    total = source_size(data_cfg, split)
    threads = max(1, os.cpu_count() or 1)
    n_tokens = n_words = n_bytes = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".bin.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            for batch in _text_chunks(split_texts(data_cfg, split), threads):
                encoded = tokenizer.encode_batch(batch, num_threads=threads)
                flat = np.concatenate([np.asarray(e, dtype=dtype) for e in encoded])
                out.write(flat.tobytes())
                n_tokens += len(flat)
                n_words += sum(len(c.split()) for c in batch)
                n_bytes += sum(len(c.encode("utf-8")) for c in batch)
                if progress:
                    progress(n_bytes, total)
            out.flush()
            os.fsync(out.fileno())
        if n_tokens == 0:
            raise DataError(f"{split} split of {data_cfg.path or data_cfg.dataset} is empty")
        os.replace(tmp, meta_path.with_suffix(".bin"))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    meta = {"n_tokens": n_tokens, "n_words": n_words, "n_bytes": n_bytes, "dtype": dtype.name, "split": split,
            "source": source_fingerprint(data_cfg, split), "tokenizer": tokenizer.fingerprint,
            "format": FORMAT_VERSION}
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".json.tmp", dir=folder)
    with os.fdopen(fd, "w") as fh:
        json.dump(meta, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, meta_path)
    arr = _open(meta_path)
    assert arr is not None
    return arr

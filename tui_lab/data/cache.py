"""Token cache: tokenize a split once, keep its ids on disk as a numpy memmap.

Files: ``<cache_dir>/<key>.bin`` (raw little-endian ids, uint16 when the vocabulary
fits in 65,536 ids, else uint32) and ``<key>.json`` (counts and provenance). The key is
a hash of the split's source fingerprint (file path + size + mtime, Hub dataset +
config, or Python version for ``pydoc``), the split, the tokenizer's fingerprint and
:data:`FORMAT_VERSION`; any change to one of them means a new key, so a stale cache is
never read.

Tokenizing streams: rows are grouped into chunks of about :data:`CHUNK_CHARS`
characters, encoded by a pool of one thread per usable CPU (tiktoken releases the GIL
and hands back a buffer, so no Python int lists are built) and appended to the output
file in order while the next chunks encode. Memory stays bounded by a few chunks, so
WikiText-103 (~540 MB of text, ~116M GPT-2 tokens) works as well as WikiText-2.

The rows' tokens are concatenated in order with nothing added between rows: rows carry
their own newlines, and no end-of-text token is inserted. With ``data.join = "strip-lines"``
(the seed scripts' protocol) rows come stripped and each is encoded on its own. Joining rows into one chunk
text gives the ids of the whole text (as encoding the file in one call would); only at
the few chunk boundaries can a whitespace run that straddles two rows (``"\\n" | "\\n"``)
split into two tokens instead of one.

Both files are written atomically (temp file in the same folder, fsync, ``os.replace``),
the ``.json`` last, so a crash never leaves a cache entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..atomic import atomic_write
from .sources import source_fingerprint, source_size, split_texts
from .tokenizers import Tokenizer

FORMAT_VERSION = 1
CHUNK_CHARS = 1 << 20
"""Characters per encoded text (whole rows joined): per-row calls cost more than the BPE itself."""
TOKENIZER_FINGERPRINTS = {"byte": "byte-v1", "gpt2": "gpt2-r50k"}

Progress = Callable[[int, "int | None"], None]


@dataclass
class TokenArray:
    """One tokenized split.

    Attributes:
        ids: read-only 1-D ``numpy.memmap`` of ``n_tokens`` ids (uint16 or uint32).
        n_tokens: number of tokens.
        n_words: whitespace-separated words of the split's text (``str.split``), the
            denominator of word-level perplexity.
        n_bytes: UTF-8 bytes of the split's text.
        path: the ``.bin`` file behind ``ids``.
    """

    ids: np.ndarray
    n_tokens: int
    n_words: int
    n_bytes: int
    path: Path


def resolve_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The token cache folder: ``explicit``, else ``$TUI_LAB_CACHE_DIR``, else
    ``~/.cache/tui-lab/tokens``. Not created here."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("TUI_LAB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tui-lab" / "tokens"


cache_dir = resolve_cache_dir  # the public name the package exports


def _key(source: str, split: str, tokenizer_fingerprint: str) -> str:
    raw = f"{source}|{split}|{tokenizer_fingerprint}|v{FORMAT_VERSION}"
    return f"{split}-{tokenizer_fingerprint}-" + hashlib.sha256(raw.encode()).hexdigest()[:20]


def _dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def _open(meta_path: Path) -> TokenArray | None:
    """The cache entry behind ``meta_path``, or None when absent, unreadable or corrupt
    (a ``.bin`` whose size disagrees with the metadata)."""
    try:
        meta = json.loads(meta_path.read_text())
        bin_path = meta_path.with_suffix(".bin")
        dtype = np.dtype(meta["dtype"])
        n = int(meta["n_tokens"])
        if n <= 0 or bin_path.stat().st_size != n * dtype.itemsize:
            return None
        ids = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n,))
        return TokenArray(ids, n, int(meta["n_words"]), int(meta["n_bytes"]), bin_path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_token_counts(data_cfg, split: str, cache: str | os.PathLike | None = None) -> dict | None:
    """The cached split's counts ``{"n_tokens", "n_words", "n_bytes"}`` without tokenizing
    or loading a tokenizer; None when not cached yet or its source cannot be found.
    Never raises for a missing source (for listings)."""
    try:
        key = _key(source_fingerprint(data_cfg, split), split, TOKENIZER_FINGERPRINTS[data_cfg.tokenizer])
    except Exception:
        return None
    arr = _open(resolve_cache_dir(cache) / f"{key}.json")
    if arr is None:
        return None
    return {"n_tokens": arr.n_tokens, "n_words": arr.n_words, "n_bytes": arr.n_bytes}


def _row_chunks(rows: Iterator[str]) -> Iterator[list[str]]:
    """Lists of whole rows of about CHUNK_CHARS characters together, in order."""
    buf: list[str] = []
    size = 0
    for row in rows:
        buf.append(row)
        size += len(row)
        if size >= CHUNK_CHARS:
            yield buf
            buf, size = [], 0
    if buf:
        yield buf


def _encoder(tokenizer: Tokenizer, join: str) -> Callable[[list[str]], np.ndarray]:
    """Encode one chunk of rows: ``"file"`` encodes the rows joined as one text;
    ``"strip-lines"`` encodes each row on its own and concatenates the ids."""
    fn = getattr(tokenizer, "encode_array", None)
    one: Callable[[str], np.ndarray] = fn if callable(fn) else (
        lambda text: np.asarray(tokenizer.encode(text), dtype=np.int64))
    if join == "strip-lines":
        return lambda rows: np.concatenate([one(r) for r in rows]) if rows else np.zeros(0, np.int64)
    return lambda rows: one("".join(rows))


def _usable_cpus() -> int:
    """CPUs this process may run on (affinity / container aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_tokens(data_cfg, split: str, tokenizer: Tokenizer, cache_dir: str | os.PathLike | None = None,
                progress: Progress | None = None) -> TokenArray:
    """The token ids of one split, from the cache or tokenized now and cached.

    A cache hit only opens a memmap (milliseconds). ``max_train_tokens`` /
    ``max_val_tokens`` are not applied here: the trainer slices ``ids``.

    Args:
        data_cfg: the experiment's ``DataConfig`` (``path`` wins over ``dataset``).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        tokenizer: from :func:`load_tokenizer`; its ``fingerprint`` is part of the key.
        cache_dir: the cache folder (default: ``$TUI_LAB_CACHE_DIR`` or
            ``~/.cache/tui-lab/tokens``); created when missing.
        progress: called as ``progress(done_bytes, total_bytes)`` after each chunk while
            tokenizing (UTF-8 bytes of text; ``total_bytes`` is the source file's size, or
            None when unknown); never called on a cache hit.
    Raises:
        DataError: the source cannot be read (see :func:`split_texts`) or the split is empty.
        OSError: the cache folder cannot be written.
    """
    from . import DataError

    folder = resolve_cache_dir(cache_dir)
    source = source_fingerprint(data_cfg, split)
    key = _key(source, split, tokenizer.fingerprint)
    meta_path = folder / f"{key}.json"
    hit = _open(meta_path)
    if hit is not None:
        return hit

    folder.mkdir(parents=True, exist_ok=True)
    dtype = _dtype(tokenizer.vocab_size)
    total = source_size(data_cfg, split)
    threads = _usable_cpus()
    encode = _encoder(tokenizer, getattr(data_cfg, "join", "file"))
    counts = {"n_tokens": 0, "n_words": 0, "n_bytes": 0}

    def write_ids(out) -> None:
        def finish(job) -> None:
            future, rows = job
            ids = future.result()
            if ids.dtype != dtype:
                ids = ids.astype(dtype)
            out.write(ids.tobytes())
            counts["n_tokens"] += len(ids)
            counts["n_words"] += sum(len(r.split()) for r in rows)  # while the pool encodes the next chunks
            counts["n_bytes"] += len("".join(rows).encode("utf-8"))
            if progress:
                progress(counts["n_bytes"], total)

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tokenize") as pool:
            pending: deque = deque()
            for rows in _row_chunks(split_texts(data_cfg, split)):
                pending.append((pool.submit(encode, rows), rows))
                if len(pending) > 2 * threads:  # bounded look-ahead: a few MB of text in flight
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
        if counts["n_tokens"] == 0:
            raise DataError(f"the {split} split of {data_cfg.path or data_cfg.dataset} is empty")

    atomic_write(meta_path.with_suffix(".bin"), write_ids)
    if progress and total is not None and counts["n_bytes"] != total:
        progress(total, total)  # newline translation or replaced bytes: end the bar at 100 %
    meta = {**counts, "dtype": dtype.name, "split": split, "source": source,
            "dataset": data_cfg.path or data_cfg.dataset, "config": data_cfg.config,
            "tokenizer": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size, "format": FORMAT_VERSION}
    atomic_write(meta_path, lambda fh: fh.write(json.dumps(meta, indent=1).encode()))
    arr = _open(meta_path)
    if arr is None:  # only if someone removed the files between write and read
        raise DataError(f"token cache {meta_path}: written but unreadable")
    return arr

"""Where text comes from: a local folder, Python's own docs (``pydoc``), or the Hugging Face Hub.

Each split is a sequence of text rows that concatenate to the split's text (rows keep
their newlines). Splits are the source's own — never a random split of one stream.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

from . import DataError

SPLITS = ("train", "validation", "test")
LOCAL_NAMES = {
    "train": ("train.txt", "wiki.train.raw", "wiki.train.tokens", "train.raw"),
    "validation": ("valid.txt", "validation.txt", "val.txt", "wiki.valid.raw", "wiki.valid.tokens", "valid.raw"),
    "test": ("test.txt", "wiki.test.raw", "wiki.test.tokens", "test.raw"),
}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")


def local_split_file(folder: str | Path, split: str) -> Path:
    """The file of ``split`` in a local data folder.

    Raises:
        DataError: the folder or the split's file is missing (naming what was looked for).
    """
    _check_split(split)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"data.path {folder}: no such folder")
    for name in LOCAL_NAMES[split]:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"data.path {folder}: no {split} file (looked for {', '.join(LOCAL_NAMES[split])})")


def pydoc_topics(split: str) -> list[str]:
    """Python's documentation topics (``pydoc_data.topics``, shipped with CPython), split by
    topic: the distinct topic texts in sorted order; those at index 1 mod 10 go to validation,
    5 mod 10 to test, the rest to train.

    Topics quote each other (a statement's topic repeats paragraphs of the grammar topics), so
    a validation or test topic keeps only the paragraphs that no training topic contains,
    and test drops those validation has: the splits share no paragraph.
    """
    _check_split(split)
    from pydoc_data.topics import topics

    # several topic names share one text: split the distinct texts, not the names
    texts = sorted({text.rstrip("\n") for text in topics.values()})
    parts: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for i, text in enumerate(texts):
        parts["validation" if i % 10 == 1 else "test" if i % 10 == 5 else "train"].append(text)
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for name in ("train", "validation", "test"):
        kept = []
        for text in parts[name]:
            paragraphs = [p for p in text.split("\n\n") if p.strip()]
            fresh = [p for p in paragraphs if p.strip() not in seen] if name != "train" else paragraphs
            seen.update(p.strip() for p in paragraphs)
            if fresh:
                kept.append("\n\n".join(fresh) + "\n\n")
        out[name] = kept
    return out[split]


def split_texts(data_cfg, split: str) -> Iterator[str]:
    """The text rows of ``split`` of the experiment's data (``path`` wins over ``dataset``).

    Rows keep their newlines, so ``"".join(rows)`` is the split's text; with
    ``data.join = "strip-lines"`` (the seed scripts' protocol) each row comes stripped and
    empty rows are dropped, and the token cache encodes each row on its own. A local file is
    read lazily, line by line, as UTF-8 (invalid bytes become U+FFFD; ``\r\n`` becomes
    ``\n``). ``dataset = "pydoc"``: Python's documentation topics, split by topic.
    Otherwise the ``"text"`` column of ``datasets.load_dataset(dataset, config, split=split)``
    (``datasets`` is imported only here).

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
    Raises:
        DataError: unknown split; missing folder or split file (naming the folder and the
            file names tried); or the Hub dataset cannot be loaded (naming dataset and
            config, with the hint to use ``data.path`` offline). Raised on first iteration.
    """
    _check_split(split)
    rows = _raw_rows(data_cfg, split)
    if getattr(data_cfg, "join", "file") == "strip-lines":
        rows = (stripped for row in rows if (stripped := row.strip()))
    yield from rows


def _raw_rows(data_cfg, split: str) -> Iterator[str]:
    if data_cfg.path:
        path = local_split_file(data_cfg.path, split)
        with open(path, encoding="utf-8", errors="replace") as fh:
            yield from fh
        return
    if data_cfg.dataset == "pydoc":
        yield from pydoc_topics(split)
        return
    yield from _hub_rows(data_cfg.dataset, data_cfg.config, split)


def _hub_rows(dataset: str, config: str | None, split: str) -> Iterator[str]:
    try:
        import datasets

        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as exc:  # network, unknown config, missing split: all end the same way for a user
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"dataset {dataset!r} config {config!r} split {split!r}: could not load it through `datasets` "
            f"({first}); offline, use a local copy: --set data.path=FOLDER with train/valid/test text files"
        ) from None
    if "text" not in getattr(ds, "column_names", ["text"]):
        raise DataError(f"dataset {dataset!r} config {config!r} split {split!r}: no 'text' column "
                        f"(columns: {', '.join(ds.column_names)})")
    if hasattr(ds, "iter"):  # column batches: far faster than one dict per row on 1.8M-row splits
        for batch in ds.iter(batch_size=4096):
            yield from batch["text"]
    else:
        for row in ds:
            yield row["text"]


def source_fingerprint(data_cfg, split: str) -> str:
    """Identity of one split's token stream, for the token cache key: for a local folder the
    split file's absolute path, size (bytes) and mtime (ns); for the Hub dataset + config +
    split; for ``pydoc`` the Python version + split; plus ``data.join`` unless ``"file"``.

    Raises:
        DataError: the local folder or split file is missing.
    """
    join = getattr(data_cfg, "join", "file")
    suffix = "" if join == "file" else f":join={join}"  # "file" keeps the keys caches already have
    if data_cfg.path:
        f = local_split_file(data_cfg.path, split).resolve()
        st = f.stat()
        return f"file:{f}:{st.st_size}:{st.st_mtime_ns}{suffix}"
    if data_cfg.dataset == "pydoc":
        return f"pydoc-v3:{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}:{split}{suffix}"
    return f"hub:{data_cfg.dataset}:{data_cfg.config}:{split}{suffix}"


def source_size(data_cfg, split: str) -> int | None:
    """Bytes of the split's text where cheaply known (for progress bars), else None."""
    if data_cfg.path:
        return local_split_file(data_cfg.path, split).stat().st_size
    return None

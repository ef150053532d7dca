"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path | str, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fh)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    Raises:
        OSError: the write failed (disk full, permissions); ``path`` is left as it was and
            the temp file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    atomic_write(path, lambda fh: fh.write(payload))

"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path | str, data: bytes | str | Callable[[BinaryIO], object]) -> None:
    """Write ``data`` to ``path`` atomically: into a temp file beside ``path``, fsync'd,
    then renamed over ``path``. ``data`` is bytes, a str (written as UTF-8) or a callable
    ``write(fh)`` that streams into the binary file handle.

    The file ends up with the mode ``path`` already had, or else the one a new file gets
    under the umask (``0o666 & ~umask``) — not the temp file's private 0600.

    Raises:
        OSError: the write failed (disk full, permissions); ``path`` is left as it was and
            the temp file is removed.
    """
    path = Path(path)
    if isinstance(data, (bytes, bytearray, str)):
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)

        def write(fh: BinaryIO) -> object:
            return fh.write(payload)
    else:
        write = data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fchmod(fh.fileno(), _mode_for(path))
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path | str, obj: object) -> None:
    """``obj`` as indented, key-sorted JSON (plus a newline), written atomically."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

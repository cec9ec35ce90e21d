"""Atomic file writes, shared by every serializer (built-in or plugin): a crash never leaves half a file."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)``: all of it or, if anything fails, none of it.

    ``write`` receives a binary file open on a temporary file in the same directory; once it returns, the
    data is flushed to disk and the temporary file replaces ``path`` in one ``os.replace`` (atomic on
    POSIX and Windows because both names are on the same filesystem). If ``write`` raises, the temporary
    file is removed and ``path`` keeps its previous content.
    """
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        message = f"cannot write {target}: directory does not exist"
        raise FileNotFoundError(errno.ENOENT, message, str(directory))
    # A random name opened with O_EXCL (rather than tempfile.mkstemp) so the file gets the usual
    # umask-based permissions instead of mkstemp's 0600.
    tmp = directory / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""

    def write(file: BinaryIO) -> None:
        file.write(data)

    atomic_write(path, write)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable after a power loss; not possible on Windows, harmless to skip.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

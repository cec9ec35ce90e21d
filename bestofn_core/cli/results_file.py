"""The output file of ``bestofn run --input/--output``: append-only JSONL that survives being killed.

Each finished example is one line, written with a single ``write`` to a file opened ``O_APPEND`` and then
``fsync``-ed, so a line is either wholly on disk or not at all: a kill (SIGTERM, SIGKILL, power loss) can
at worst leave an incomplete last line, which the next run discards before appending. A write that fails
(a full disk, a file-size limit) is undone, cut back to the last whole line, and every later append is
refused, so the run stops instead of reporting results it could not keep. Rerunning with the same output
file skips every example already recorded, so nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from bestofn_core.cli.run_config import UsageError
from bestofn_core.errors import BestOfNCoreError
from bestofn_core.files import atomic_write

__all__ = ["ResultsFile", "ResultsWriteError", "to_json_bytes"]


class ResultsWriteError(BestOfNCoreError):
    """A result line could not be written (disk full, file too large, I/O error): the run must stop.

    The line was not kept (the file was cut back to its last whole line), and no later line is written.
    """


class ResultsFile:
    """The records already in an output file, and the handle new ones are appended through.

    Attributes:
        path: the output file.
        records: ``index -> record`` of every example already recorded (after :meth:`open`).
        discarded_bytes: size of the incomplete last line an interrupted run left, removed by :meth:`open`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[int, dict[str, Any]] = {}
        self.discarded_bytes = 0
        self._fd: int | None = None
        # appends come from several worker threads; one at a time, so a failed one can be undone alone
        self._lock = threading.Lock()
        self._write_error: ResultsWriteError | None = None

    @classmethod
    def open(
        cls, path: Path, examples: Sequence[Mapping[str, Any]], *, retry_failed: bool = False
    ) -> ResultsFile:
        """Read ``path`` (created if missing), check it belongs to ``examples``, and open it for appending.

        ``retry_failed`` drops the records of failed examples first (the file is rewritten atomically),
        so they run again.
        """
        results = cls(path)
        try:
            data = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            raise UsageError(f"cannot read the output file {path}: {exc.strerror or exc}.") from exc
        complete, _, torn = data.rpartition(b"\n")
        if torn:  # an interrupted write: the line was never finished, so it never counted
            results.discarded_bytes = len(torn)
            complete = complete + b"\n" if complete else b""
            results._truncate(len(complete))
        results._read(complete, examples)
        if retry_failed:
            failed = [index for index, record in results.records.items() if record.get("error") is not None]
            if failed:
                for index in failed:
                    del results.records[index]
                results._rewrite()
        try:
            results._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot write the output file {path}: {exc.strerror or exc}.") from exc
        return results

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line, durably (one ``write``, then ``fsync``).

        Raises ``ResultsWriteError`` when the line cannot be written whole and flushed: the bytes that did
        get written are removed again, and every later call raises the same error without writing.
        """
        fd = self._fd
        assert fd is not None, "open() the results file first"
        line = to_json_bytes(record) + b"\n"
        with self._lock:
            if self._write_error is not None:
                raise self._write_error
            start = os.fstat(fd).st_size  # where this line begins: the file's end (O_APPEND)
            try:
                _write_whole(fd, line)
                os.fsync(fd)
            except OSError as exc:
                self._write_error = self._undo(fd, start, exc)
                raise self._write_error from exc
            self.records[int(record["index"])] = dict(record)

    def _undo(self, fd: int, start: int, exc: OSError) -> ResultsWriteError:
        """Cut the file back to ``start`` (no torn line survives) and describe the failed write."""
        try:
            os.ftruncate(fd, start)
            with contextlib.suppress(OSError):
                os.fsync(fd)
            kept = "the results written before it are kept"
        except OSError:
            kept = "the next run removes the incomplete last line it left"
        code = errno.errorcode.get(exc.errno or 0)
        return ResultsWriteError(
            f"cannot write the output file {self.path}: {exc.strerror or exc}{f' ({code})' if code else ''}; "
            f"the run stopped and {kept}: make room (or raise the file-size limit), then rerun the same "
            "command to resume."
        )

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read(self, data: bytes, examples: Sequence[Mapping[str, Any]]) -> None:
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                index = record["index"]
                inputs = record["inputs"]
            except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
                raise UsageError(
                    f"{self.path}, line {number}: not a bestofn run result (was the file edited?); fix the "
                    "line or choose another --output."
                ) from exc
            if not isinstance(index, int) or not 0 <= index < len(examples) or inputs != examples[index]:
                raise UsageError(
                    f"{self.path}, line {number}: the result of example {index!r} does not match that "
                    "example of the input file; it holds results of another input, so choose another "
                    "--output."
                )
            if index in self.records:
                raise UsageError(
                    f"{self.path}, line {number}: example {index} is recorded twice; remove one of its lines."
                )
            self.records[index] = record

    def _truncate(self, size: int) -> None:
        try:
            with open(self.path, "r+b") as file:
                file.truncate(size)
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            raise UsageError(f"cannot repair the output file {self.path}: {exc.strerror or exc}.") from exc

    def _rewrite(self) -> None:
        # a new file beside the old one, then an atomic rename: a kill leaves either file, never half of one
        def write(file: BinaryIO) -> None:
            for index in sorted(self.records):
                file.write(to_json_bytes(self.records[index]) + b"\n")

        try:
            atomic_write(self.path, write)
        except OSError as exc:
            # the temporary file is an implementation detail: name what the user can fix
            raise UsageError(
                f"--retry-failed rewrites {self.path} through a new file in its directory "
                f"{self.path.parent}, which failed: {exc.strerror or exc}; make that directory "
                "writable (or free space in it) and rerun."
            ) from exc


def _write_whole(fd: int, line: bytes) -> None:
    view = memoryview(line)
    while view:
        # a regular file takes a line whole, except at a limit (a full disk, RLIMIT_FSIZE): then the write
        # is short and the next one raises the reason
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def to_json_bytes(value: Any) -> bytes:
    """``value`` as JSON; pydantic models and other non-JSON values are refused by name, never coerced."""
    return orjson.dumps(value, default=_jsonable)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model (a custom output type)
        return dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")

"""The output file of ``bestofn run --input/--output``: append-only JSONL that survives being killed.

Each finished example is one line, written with a single ``write`` to a file opened ``O_APPEND`` and then
``fsync``-ed, so a line is either wholly on disk or not at all: a kill (SIGTERM, SIGKILL, power loss) can
at worst leave an incomplete last line, which the next run discards before appending. Rerunning with the
same output file skips every example already recorded, so nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from bestofn_core.cli.run_config import UsageError

__all__ = ["ResultsFile", "to_json_bytes"]


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
        """Write ``record`` as one line, durably (one ``write``, then ``fsync``)."""
        assert self._fd is not None, "open() the results file first"
        line = to_json_bytes(record) + b"\n"
        written = os.write(self._fd, line)
        while written < len(line):  # a regular file takes it whole; finish a short write all the same
            written += os.write(self._fd, line[written:])
        os.fsync(self._fd)
        self.records[int(record["index"])] = dict(record)

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
        directory = self.path.parent
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                for index in sorted(self.records):
                    file.write(to_json_bytes(self.records[index]) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


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

"""Built-in plugin ``pickle``: saves any Python object with cloudpickle (loading it can run code)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import cloudpickle

from bestofn_core.errors import SerializationError
from bestofn_core.files import atomic_write
from bestofn_core.hookspecs import RegisterSerializer, hookimpl

__all__ = ["PickleSerializer", "register_serializers"]


class PickleSerializer:
    """Reads and writes ``.pkl``/``.pickle`` files.

    ``executes_code`` is True: unpickling can run arbitrary code, so callers refuse to load these files
    unless the user passes ``allow_pickle=True``. This class only does the reading and writing.
    """

    executes_code: bool = True

    def dump(self, state: Any, path: Path) -> None:
        """Write ``state`` to ``path`` atomically; raise ``SerializationError`` if it cannot be pickled."""

        def write(file: BinaryIO) -> None:
            cloudpickle.dump(state, file, protocol=pickle.HIGHEST_PROTOCOL)

        try:
            atomic_write(path, write)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise SerializationError(f"Cannot save {path} with pickle: {type(exc).__name__}: {exc}") from exc

    def load(self, path: Path) -> Any:
        """Read back what ``dump`` wrote; raise ``SerializationError`` if the file cannot be unpickled."""
        with open(path, "rb") as file:
            try:
                return cloudpickle.load(file)
            except Exception as exc:
                # Corrupt data raises almost anything (UnpicklingError, EOFError, ValueError, ...); a
                # missing module or class raises ImportError/AttributeError. The message says which.
                raise SerializationError(
                    f"Cannot load {path} with pickle: {type(exc).__name__}: {exc}. The file may be "
                    "truncated or corrupt, or written by code that is not importable here."
                ) from exc


_SERIALIZER = PickleSerializer()


@hookimpl
def register_serializers(register: RegisterSerializer) -> None:
    """Offer ``pickle:pickle`` for ``.pkl`` and ``.pickle`` files."""
    register(_SERIALIZER, name="pickle", suffixes=(".pkl", ".pickle"))

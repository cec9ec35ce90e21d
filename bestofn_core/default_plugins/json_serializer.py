"""Built-in plugin ``json``: saves program state as indented JSON (orjson), keys in insertion order."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bestofn_core.errors import SerializationError
from bestofn_core.files import atomic_write_bytes
from bestofn_core.hookspecs import RegisterSerializer, hookimpl

__all__ = ["JSONSerializer", "register_serializers"]

# Keys stay in insertion order (no OPT_SORT_KEYS): saved state reads in the order the program defines it.
_DUMP_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


class JSONSerializer:
    """Reads and writes ``.json`` files. JSON cannot carry code, so loading one is always safe."""

    executes_code: bool = False

    def dump(self, state: Any, path: Path) -> None:
        """Write ``state`` to ``path`` atomically; raise ``SerializationError`` if it is not JSON-able."""
        try:
            data = orjson.dumps(state, option=_DUMP_OPTIONS)
        except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
            raise SerializationError(_describe_unserializable(state, path, exc)) from exc
        # orjson writes NaN and infinities as null: refuse rather than change a value silently
        non_finite = next(_non_finite(state, "state"), None)
        if non_finite is not None:
            raise SerializationError(
                f"Cannot save {path} as JSON: {non_finite[1]} at {non_finite[0]} is not a finite number and "
                "JSON has no way to write it (it would come back as null). Replace it, or save to .pkl."
            )
        atomic_write_bytes(path, data)

    def load(self, path: Path) -> Any:
        """Read back what ``dump`` wrote; raise ``SerializationError`` on corrupt or truncated content."""
        data = Path(path).read_bytes()
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(
                f"Cannot load {path}: it is not valid JSON ({exc}). The file may be truncated or corrupt."
            ) from exc


def _describe_unserializable(state: Any, path: Path, exc: Exception) -> str:
    found = next(_unserializable(state, "state"), None)
    where = f" at {found[0]}" if found else ""
    offending = f" a value of type {found[1]}" if found else " a value"
    return (
        f"Cannot save {path} as JSON: the state contains{offending}{where} that JSON cannot represent "
        f"({exc}). Keep the state JSON-friendly (e.g. json_mode, or convert the value to str/list/dict), "
        "or save to a .pkl file instead (which requires allow_pickle=True to load)."
    )


def _unserializable(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Yield ``(location, type name)`` of each value orjson refuses, walking dicts and lists first.

    Run only after a failed dump, so its cost never matters; it turns orjson's bare type name into a
    location the user can find (``state['demos'][0]['image']``).
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield f"{where} (a dict key {key!r})", type(key).__qualname__
            else:
                yield from _unserializable(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _unserializable(item, f"{where}[{index}]")
    else:
        try:
            orjson.dumps(value)
        except TypeError:
            yield where, type(value).__qualname__


def _non_finite(value: Any, where: str) -> Iterator[tuple[str, float]]:
    """Yield ``(location, value)`` of each NaN or infinite float in ``value``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{where}[{index}]")


_SERIALIZER = JSONSerializer()


@hookimpl
def register_serializers(register: RegisterSerializer) -> None:
    """Offer ``json:json`` for ``.json`` files."""
    register(_SERIALIZER, name="json", suffixes=(".json",))

"""``MsgpackSerializer``: program state as MessagePack, compact and binary, and never able to run code.

What a file holds reads back exactly as it was saved: dicts with str keys (in their order), lists, str,
int, float (64-bit, NaN and infinities included), bool, None, and bytes. Tuples come back as lists and
subclasses of these types as the base type, as with ``.json``. Anything else is refused before a byte
is written, with the type and its place in the state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack

from bestofn_core.errors import SerializationError
from bestofn_core.files import atomic_write_bytes

__all__ = ["MsgpackSerializer"]

# msgpack's Packer refuses containers nested deeper than this ("recursion limit exceeded"); checking it
# ourselves names the place, and catches a list or dict that contains itself before Python's own limit.
_MAX_DEPTH = 511
# The integers msgpack can encode: int64 for negatives, uint64 for the rest.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

_FIX = (
    "Convert it to plain data (dicts with str keys, lists, str, int, float, bool, None), as a .json file "
    "holds too, or save to a .pkl file, which holds any Python object (loading it needs allow_pickle=True)."
)


class _ExtensionType(ValueError):
    """Raised while unpacking when the data holds a msgpack extension type (which we never write)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"extension type {code}")
        self.code = code


def _refuse_extension(code: int, data: bytes) -> Any:
    # An ext_hook is where a msgpack reader would build arbitrary objects; state is plain data, so an
    # extension type can only come from another writer (or tampering) and is refused, never decoded.
    raise _ExtensionType(code)


class MsgpackSerializer:
    """Reads and writes ``.msgpack``/``.mpk`` files.

    ``executes_code`` is False: decoding produces only plain data (no extension hooks build objects), so
    loading a file from anywhere is as safe as loading ``.json``.
    """

    executes_code: bool = False

    def dump(self, state: Any, path: Path) -> None:
        """Write ``state`` to ``path`` atomically; raise ``SerializationError`` if msgpack cannot hold it.

        The state is checked and packed in memory first, so a refusal leaves any existing file untouched.
        """
        problem = _first_problem(state, "state", 0)
        if problem is not None:
            where, what = problem
            raise SerializationError(
                f"Cannot save {path} as msgpack: the state contains {what} at {where}, which msgpack "
                f"cannot save so that it loads back the same. {_FIX}"
            )
        try:
            # use_bin_type keeps str and bytes apart in the file, so raw=False can decode both exactly.
            data = msgpack.packb(state, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:  # not expected after the check above
            raise SerializationError(f"Cannot save {path} as msgpack: {_reason(exc)}. {_FIX}") from exc
        atomic_write_bytes(path, data)

    def load(self, path: Path) -> Any:
        """Read back what ``dump`` wrote; raise ``SerializationError`` on corrupt or truncated content."""
        data = Path(path).read_bytes()
        try:
            # raw=False: str comes back as str (UTF-8 checked), bin as bytes. strict_map_key (msgpack's
            # default, spelled out): map keys must be str or bytes, so a crafted file cannot make us hash
            # arbitrary keys. use_list: arrays come back as lists, the same as from .json.
            return msgpack.unpackb(
                data, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_extension
            )
        except _ExtensionType as exc:
            raise SerializationError(
                f"Cannot load {path}: it holds a msgpack extension type (code {exc.code}), which bestofn "
                "state files never contain. It was not written by bestofn-msgpack, or it was altered."
            ) from exc
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # Truncated input, trailing bytes, invalid UTF-8, a non-str key, nesting too deep: msgpack
            # raises ValueError subclasses for all of them (FormatError and StackError have no message).
            raise SerializationError(
                f"Cannot load {path}: it is not a valid msgpack state file ({_reason(exc)}). The file may "
                "be truncated or corrupt, or written by another program."
            ) from exc


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_problem(value: Any, where: str, depth: int) -> tuple[str, str] | None:
    """``(location, what)`` of the first value that would not load back as it was saved, else ``None``.

    Locations read like the JSON serializer's (``state['demos'][0]['image']``), so the user can find the
    value. The walk also enforces what msgpack accepts but we refuse on purpose: non-str dict keys (the
    reader's strict_map_key would refuse the file) and types msgpack would silently turn into others.
    """
    if depth > _MAX_DEPTH:
        return where, f"containers nested more than {_MAX_DEPTH} deep (does a list or dict contain itself?)"
    # bool before int (bool is an int); exact types first because they are nearly all a state holds.
    if value is None or isinstance(value, (bool, float, bytes)):
        return None
    if isinstance(value, str):
        return None if _encodable(value) else (where, "a str that is not valid UTF-8 (a lone surrogate)")
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return where, f"the int {value}, outside msgpack's 64-bit range"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} (a dict key {key!r})", f"a dict key of type {type(key).__qualname__}"
            if not _encodable(key):
                return (
                    f"{where} (a dict key {key!r})",
                    "a dict key that is not valid UTF-8 (a lone surrogate)",
                )
            found = _first_problem(item, f"{where}[{key!r}]", depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _first_problem(item, f"{where}[{index}]", depth + 1)
            if found is not None:
                return found
        return None
    return where, f"a value of type {type(value).__qualname__}"


def _encodable(text: str) -> bool:
    # Only non-ASCII text can hold a lone surrogate; skipping the encode keeps the common case cheap.
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

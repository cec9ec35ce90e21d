"""The built-in json and pickle serializers, and the atomic write they share."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from bestofn_core.default_plugins.json_serializer import JSONSerializer
from bestofn_core.default_plugins.pickle_serializer import PickleSerializer
from bestofn_core.errors import SerializationError
from bestofn_core.files import atomic_write, atomic_write_bytes
from bestofn_core.protocols import Serializer

STATE: dict[str, Any] = {
    "z_first": 1,
    "a_second": [1.5, "text", None, True, {"nested": ["x"]}],
    "unicode": "héllo ✓",
}


class Unpicklable:
    """An object whose pickling fails after part of the stream was written."""

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle Unpicklable on purpose")


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name not in keep)


@pytest.mark.parametrize("serializer", [JSONSerializer(), PickleSerializer()], ids=["json", "pickle"])
def test_satisfies_the_protocol(serializer: Serializer) -> None:
    assert isinstance(serializer, Serializer)


def test_executes_code_flags() -> None:
    assert JSONSerializer.executes_code is False
    assert PickleSerializer.executes_code is True


@pytest.mark.parametrize(
    ("serializer", "filename"), [(JSONSerializer(), "state.json"), (PickleSerializer(), "state.pkl")]
)
def test_round_trip_leaves_no_temp_files(serializer: Serializer, filename: str, tmp_path: Path) -> None:
    path = tmp_path / filename
    serializer.dump(STATE, path)
    assert serializer.load(path) == STATE
    assert _leftovers(tmp_path, {filename}) == []


def test_json_is_indented_and_keeps_insertion_order(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    JSONSerializer().dump(STATE, path)
    text = path.read_text(encoding="utf-8")
    assert text.index("z_first") < text.index("a_second")  # not sorted
    assert '\n  "z_first": 1' in text  # two-space indent
    assert list(JSONSerializer().load(path)) == list(STATE)


def test_pickle_round_trips_what_json_cannot(tmp_path: Path) -> None:
    path = tmp_path / "state.pkl"
    state = {"when": datetime.date(2024, 1, 2), "fn": lambda x: x + 1, "tuple": (1, 2)}
    PickleSerializer().dump(state, path)
    loaded = PickleSerializer().load(path)
    assert loaded["when"] == state["when"] and loaded["tuple"] == (1, 2)
    assert loaded["fn"](1) == 2  # cloudpickle carries lambdas


@pytest.mark.parametrize("content", [b'{"a": [1, 2', b"", b"\xff\xfe not json", b'{"a": 1} trailing'])
def test_corrupt_json_raises_a_clear_error(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(SerializationError) as info:
        JSONSerializer().load(path)
    message = str(info.value)
    assert str(path) in message
    assert "not valid JSON" in message
    assert info.value.__cause__ is not None and str(info.value.__cause__) in message  # orjson's words


def test_truncated_json_file_names_the_position(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    JSONSerializer().dump(STATE, path)
    path.write_bytes(path.read_bytes()[:25])
    with pytest.raises(SerializationError, match=r"line \d+ column \d+"):
        JSONSerializer().load(path)


def test_json_refuses_non_json_values_naming_type_and_location(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with pytest.raises(SerializationError) as info:
        JSONSerializer().dump({"demos": [{"ok": 1, "lock": threading.Lock()}]}, path)
    message = str(info.value)
    assert "lock" in message  # the offending type
    assert "state['demos'][0]['lock']" in message  # where it is
    assert ".pkl" in message and "json_mode" in message  # the ways out
    assert not path.exists()


def test_json_refuses_non_string_keys(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"dict key 1"):
        JSONSerializer().dump({"scores": {1: "one"}}, tmp_path / "state.json")


def test_failed_json_dump_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    JSONSerializer().dump({"version": 1}, path)
    with pytest.raises(SerializationError):
        JSONSerializer().dump({"version": 2, "bad": object()}, path)
    assert JSONSerializer().load(path) == {"version": 1}
    assert _leftovers(tmp_path, {"state.json"}) == []


def test_failure_in_the_middle_of_a_pickle_dump_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "state.pkl"
    PickleSerializer().dump({"version": 1}, path)
    # the big string is written to the stream before pickling reaches the object that fails
    with pytest.raises(SerializationError, match="Unpicklable on purpose") as info:
        PickleSerializer().dump({"padding": "x" * 1_000_000, "bad": Unpicklable()}, path)
    assert str(path) in str(info.value)
    assert PickleSerializer().load(path) == {"version": 1}
    assert _leftovers(tmp_path, {"state.pkl"}) == []


def test_corrupt_pickle_raises_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.pkl"
    PickleSerializer().dump(STATE, path)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(SerializationError) as info:
        PickleSerializer().load(path)
    assert str(path) in str(info.value)


def test_atomic_write_crash_mid_write_leaves_original_intact(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"original")

    def write_half_then_crash(file: BinaryIO) -> None:
        file.write(b"half of the new cont")
        raise KeyboardInterrupt  # even BaseException cleans up

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write_half_then_crash)
    assert path.read_bytes() == b"original"
    assert _leftovers(tmp_path, {"data.bin"}) == []


def test_atomic_write_failure_at_replace_leaves_original_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"original")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"original"
    assert _leftovers(tmp_path, {"data.bin"}) == []


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "new.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert _leftovers(tmp_path, {"new.bin"}) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_uses_normal_permissions(tmp_path: Path) -> None:
    path = tmp_path / "new.bin"
    atomic_write_bytes(path, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_write_into_a_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "state.json", b"{}")


def test_builtin_serializers_are_registered_by_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    from bestofn_core import default_plugins
    from bestofn_core.plugins import get_registry, reset_plugins

    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")
    serializers = tuple(
        module for module in default_plugins.BUILTIN_PLUGINS if module.endswith("_serializer")
    )
    monkeypatch.setattr(default_plugins, "BUILTIN_PLUGINS", serializers)
    reset_plugins()
    try:
        registry = get_registry()
        assert registry.serializer_for("prog.JSON").qualified_name == "json:json"
        assert isinstance(registry.serializer_for("a/b/prog.pkl").obj, PickleSerializer)
        assert registry.serializer_for("prog.pickle").qualified_name == "pickle:pickle"
        assert registry.get("serializer", "json") is registry.serializer_for("x.json").obj
    finally:
        reset_plugins()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_json_refuses_non_finite_numbers_instead_of_writing_null(tmp_path: Path, value: float) -> None:
    path = tmp_path / "state.json"
    with pytest.raises(SerializationError, match=r"state\['demos'\]\[0\]\['score'\].*not a finite number"):
        JSONSerializer().dump({"demos": [{"score": value}]}, path)
    assert not path.exists()

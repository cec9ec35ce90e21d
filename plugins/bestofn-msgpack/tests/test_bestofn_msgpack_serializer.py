"""MsgpackSerializer on its own: exact round trips, refusals that name the value, corrupt files, atomicity."""

from __future__ import annotations

import datetime
import math
import os
import random
import threading
from pathlib import Path
from typing import Any

import msgpack
import pytest
from bestofn_msgpack import MsgpackSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from bestofn_core.default_plugins.json_serializer import JSONSerializer
from bestofn_core.errors import SerializationError
from bestofn_core.protocols import Serializer

STATE: dict[str, Any] = {
    "z_first": 1,
    "a_second": [1.5, "text", None, True, False, 0, -1, {"nested": ["x"], "empty": {}}, []],
    "unicode": "héllo ✓ 𝄞",
    "float_that_looks_int": 2.0,
    "big": 2**64 - 1,
    "small": -(2**63),
    "tiny": 5e-324,
}


def _typed(value: Any) -> Any:
    """``value`` with every type spelled out, so ``1 == 1.0 == True`` and key order can differ nowhere."""
    if isinstance(value, dict):
        return ("dict", [(type(key).__name__, key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name not in keep)


def test_satisfies_the_protocol_and_never_executes_code() -> None:
    assert isinstance(MsgpackSerializer(), Serializer)
    assert MsgpackSerializer.executes_code is False


def test_round_trip_is_exact_in_types_and_key_order(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump(STATE, path)
    loaded = MsgpackSerializer().load(path)
    assert _typed(loaded) == _typed(STATE)
    assert list(loaded) == list(STATE)  # not sorted
    assert _leftovers(tmp_path, {"state.msgpack"}) == []


def test_reads_back_the_same_as_json_from_the_same_state(tmp_path: Path) -> None:
    state = {key: value for key, value in STATE.items() if key != "big"}  # orjson stops at int64
    MsgpackSerializer().dump(state, tmp_path / "s.msgpack")
    JSONSerializer().dump(state, tmp_path / "s.json")
    from_msgpack = MsgpackSerializer().load(tmp_path / "s.msgpack")
    assert _typed(from_msgpack) == _typed(JSONSerializer().load(tmp_path / "s.json"))
    assert (tmp_path / "s.msgpack").stat().st_size < (tmp_path / "s.json").stat().st_size


def test_the_file_is_standard_msgpack_with_str_and_bin_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"text": "abc", "data": b"abc"}, path)
    assert msgpack.unpackb(path.read_bytes(), raw=False) == {"text": "abc", "data": b"abc"}
    assert b"\xa3abc" in path.read_bytes()  # fixstr
    assert b"\xc4\x03abc" in path.read_bytes()  # bin 8
    assert MsgpackSerializer().load(path) == {"text": "abc", "data": b"abc"}


def test_tuples_come_back_as_lists_like_json(tmp_path: Path) -> None:
    path = tmp_path / "state.mpk"
    MsgpackSerializer().dump({"pair": (1, ("a", 2.5))}, path)
    assert _typed(MsgpackSerializer().load(path)) == _typed({"pair": [1, ["a", 2.5]]})


def test_nan_and_infinities_survive_unlike_json(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"values": [math.nan, math.inf, -math.inf, -0.0]}, path)
    values = MsgpackSerializer().load(path)["values"]
    assert math.isnan(values[0]) and values[1:3] == [math.inf, -math.inf]
    assert math.copysign(1.0, values[3]) == -1.0


JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(state=st.dictionaries(st.text(), JSON_LIKE, max_size=6))
def test_any_json_like_state_round_trips_exactly(state: dict[str, Any], tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("hypothesis") / "state.msgpack"
    MsgpackSerializer().dump(state, path)
    assert _typed(MsgpackSerializer().load(path)) == _typed(state)


# ---------------------------------------------------------------- values msgpack cannot hold


@pytest.mark.parametrize(
    ("state", "what", "where"),
    [
        (
            {"demos": [{"ok": 1, "when": datetime.date(2024, 1, 2)}]},
            "of type date",
            "state['demos'][0]['when']",
        ),
        ({"lock": threading.Lock()}, "of type lock", "state['lock']"),
        ({"tags": {"a", "b"}}, "of type set", "state['tags']"),
        ({"buffer": bytearray(b"x")}, "of type bytearray", "state['buffer']"),
        ({"scores": {1: "one"}}, "dict key of type int", "state['scores'] (a dict key 1)"),
        ({"n": [0, 2**64]}, f"the int {2**64}, outside msgpack's 64-bit range", "state['n'][1]"),
        ({"n": -(2**63) - 1}, "outside msgpack's 64-bit range", "state['n']"),
        ({"text": "a\ud800b"}, "not valid UTF-8", "state['text']"),
        ({"bad\udc80key": 1}, "dict key that is not valid UTF-8", "state (a dict key"),
    ],
)
def test_refuses_values_naming_type_and_location(
    state: dict[str, Any], what: str, where: str, tmp_path: Path
) -> None:
    path = tmp_path / "state.msgpack"
    with pytest.raises(SerializationError) as info:
        MsgpackSerializer().dump(state, path)
    message = str(info.value)
    assert str(path) in message
    assert what in message
    assert where in message
    assert ".pkl" in message and "allow_pickle=True" in message and ".json" in message  # the ways out
    assert not path.exists()
    assert _leftovers(tmp_path, set()) == []


def test_a_list_containing_itself_is_refused_not_a_crash(tmp_path: Path) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(SerializationError, match=r"nested more than 511 deep .*contain itself") as info:
        MsgpackSerializer().dump({"loop": loop}, tmp_path / "state.msgpack")
    assert "state['loop'][1][1]" in str(info.value)


def test_nesting_up_to_msgpacks_limit_is_fine(tmp_path: Path) -> None:
    deep: Any = "leaf"
    for _ in range(500):
        deep = [deep]
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"deep": deep}, path)
    assert MsgpackSerializer().load(path) == {"deep": deep}


def test_subclasses_are_saved_as_their_base_type(tmp_path: Path) -> None:
    class Label(str):
        pass

    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"label": Label("yes"), "flag": True}, path)
    loaded = MsgpackSerializer().load(path)
    assert type(loaded["label"]) is str and loaded["label"] == "yes"
    assert loaded["flag"] is True


# ---------------------------------------------------------------- corrupt files


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "incomplete input"),
        (b"\x82\xa1a\x01", "incomplete input"),  # a map of 2 with one entry
        (msgpack.packb({"a": 1}) + b"\x00", "extra data"),
        (b"\xc1", "FormatError"),  # the one byte msgpack never uses
        (b"\x81\xa1a\xa2\xff\xfe", "can't decode"),  # a str that is not UTF-8
        (msgpack.packb({1: "one"}), "not allowed for map key"),  # a non-str key (strict_map_key)
        (b"\x91" * 5000 + b"\xc0", "StackError"),  # nested deeper than the reader allows
        (b'{"a": 1}', "extra data"),  # a JSON file with the wrong suffix
    ],
)
def test_corrupt_content_raises_a_clear_error_naming_the_file(
    content: bytes, reason: str, tmp_path: Path
) -> None:
    path = tmp_path / "broken.msgpack"
    path.write_bytes(content)
    with pytest.raises(SerializationError) as info:
        MsgpackSerializer().load(path)
    message = str(info.value)
    assert str(path) in message
    assert "not a valid msgpack state file" in message and "truncated or corrupt" in message
    assert reason in message
    assert info.value.__cause__ is not None


def test_every_truncation_of_a_saved_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump(STATE, path)
    data = path.read_bytes()
    for end in range(len(data)):
        path.write_bytes(data[:end])
        with pytest.raises(SerializationError, match="truncated or corrupt"):
            MsgpackSerializer().load(path)


def test_damaged_files_load_or_raise_serialization_error_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump(STATE, path)
    original = path.read_bytes()
    rng = random.Random(1234)
    refused = 0
    for _ in range(2000):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            MsgpackSerializer().load(path)
        except SerializationError:
            refused += 1
    assert refused > 0  # the loop did exercise the error path


@pytest.mark.parametrize("obj", [msgpack.ExtType(42, b"payload"), msgpack.ExtType(0, b"")])
def test_extension_types_are_refused_never_decoded(obj: msgpack.ExtType, tmp_path: Path) -> None:
    path = tmp_path / "crafted.msgpack"
    path.write_bytes(msgpack.packb({"x": obj}))
    with pytest.raises(SerializationError, match=rf"extension type \(code {obj.code}\)") as info:
        MsgpackSerializer().load(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- atomic writes


def test_a_refused_value_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"version": 1}, path)
    with pytest.raises(SerializationError):
        MsgpackSerializer().dump({"version": 2, "padding": "x" * 100_000, "bad": object()}, path)
    assert MsgpackSerializer().load(path) == {"version": 1}
    assert _leftovers(tmp_path, {"state.msgpack"}) == []


def test_a_failure_mid_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"version": 1}, path)
    written: list[Path] = []

    def disk_full(fd: int) -> None:
        # called once the new bytes are in the temporary file, before it replaces the target
        written.extend(p for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        MsgpackSerializer().dump({"version": 2, "padding": "x" * 100_000}, path)
    monkeypatch.undo()
    assert written and written[0].name.startswith(".state.msgpack.")  # the write really was under way
    assert MsgpackSerializer().load(path) == {"version": 1}
    assert _leftovers(tmp_path, {"state.msgpack"}) == []


def test_a_crash_at_the_rename_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"version": 1}, path)

    def interrupted(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        MsgpackSerializer().dump({"version": 2}, path)
    monkeypatch.undo()
    assert MsgpackSerializer().load(path) == {"version": 1}
    assert _leftovers(tmp_path, {"state.msgpack"}) == []


def test_saving_over_an_existing_file_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "state.msgpack"
    MsgpackSerializer().dump({"version": 1}, path)
    MsgpackSerializer().dump({"version": 2}, path)
    assert MsgpackSerializer().load(path) == {"version": 2}

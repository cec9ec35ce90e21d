"""The installed plugin: found by suffix through its entry point, saving and loading real programs."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import bestofn_msgpack.plugin
import importlib_metadata
import msgpack
import pytest
from bestofn_msgpack import MsgpackSerializer

import bestofn_core as bon
from bestofn_core.cli import main as bestofn_cli
from bestofn_core.errors import SerializationError
from bestofn_core.plugins import get_plugin_manager, get_registry, reset_plugins
from bestofn_core.protocols import LMRequest
from bestofn_core.serialization import load_state_file
from bestofn_core.testing.dummy_lm import DummyLM

SECRET = "sk-SECRET-MARKER-msgpack-51c"


class Program(bon.Module):
    """Two predictors, one of them inside a ChainOfThought: parameters at two depths."""

    def __init__(self) -> None:
        super().__init__()
        self.qa = bon.ChainOfThought("question -> answer")
        self.extra = bon.Predict("answer -> verdict: bool")

    def forward(self, question: str) -> bon.Prediction:
        return self.qa(question=question)


def _program() -> Program:
    program = Program()
    program.qa.predict.demos = [
        bon.Example(question="1+1?", reasoning="add", answer="2"),
        bon.Example(question="Capital of France?", reasoning="known", answer="Paris"),
    ]
    program.extra.demos = [bon.Example(answer="2", verdict=True)]
    program.set_lm(
        bon.LM("openai/test-model", api_base="http://127.0.0.1:9", api_key=SECRET, temperature=0.4)
    )
    return program


def _answer_length(inputs: dict[str, Any], prediction: bon.Prediction) -> float:
    return float(len(prediction.answer))


def _min_length(n: int) -> Any:
    return lambda inputs, prediction: float(len(prediction.answer) >= n)


class RewardPlugin:
    """An in-process plugin offering rewards, so a BestOfN has a reward reference to save."""

    @bon.hookimpl
    def register_rewards(self, register: Any) -> None:
        register(_answer_length, name="answer_length")
        register(_min_length, name="min_length", factory=True)


# ---------------------------------------------------------------- found through the entry point


@pytest.mark.parametrize("filename", ["x.msgpack", "x.mpk", "dir.v2/X.MsgPack", "STATE.MPK"])
def test_the_installed_entry_point_serves_msgpack_suffixes(filename: str) -> None:
    registration = get_registry().serializer_for(filename)
    assert registration.plugin == "msgpack" and registration.name == "msgpack"
    assert registration.qualified_name == "msgpack:msgpack"
    assert isinstance(registration.obj, MsgpackSerializer)
    assert get_registry().get("serializer", "msgpack:msgpack") is registration.obj


def test_the_registry_names_the_distribution_and_its_version() -> None:
    (info,) = [info for info in get_registry().plugins if info.name == "msgpack"]
    assert info.distribution == "bestofn-msgpack"
    assert info.version == importlib_metadata.version("bestofn-msgpack") == "0.1.0"
    assert info.module == "bestofn_msgpack.plugin" and not info.builtin
    assert info.error is None and not info.blocked
    assert info.registered["serializer"] == ["msgpack:msgpack"]


def test_bestofn_plugins_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert bestofn_cli(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    plugins = listed["plugins"] if isinstance(listed, dict) else listed
    (entry,) = [entry for entry in plugins if entry["name"] == "msgpack"]
    assert entry["distribution"] == "bestofn-msgpack"
    assert entry["registered"]["serializer"] == ["msgpack:msgpack"]


def test_other_suffixes_are_left_to_the_builtins() -> None:
    assert get_registry().serializer_for("x.json").plugin == "json"
    assert get_registry().serializer_for("x.msgpack.json").plugin == "json"
    assert get_registry().serializer_for("x.json.msgpack").plugin == "msgpack"


# ---------------------------------------------------------------- real programs


def test_program_round_trip_restores_demos_signatures_and_lm_settings(tmp_path: Path) -> None:
    path = tmp_path / "p.msgpack"
    program = _program()
    program.save(path)
    fresh = Program()
    with bon.context(allow_lm_from_file=True):  # our own file: it may choose the LM too
        fresh.load(path)  # no allow_pickle: msgpack never runs code
    assert [demo.toDict() for demo in fresh.qa.predict.demos] == [
        demo.toDict() for demo in program.qa.predict.demos
    ]
    assert fresh.extra.demos[0].verdict is True
    assert fresh.qa.predict.signature.dump_state() == program.qa.predict.signature.dump_state()
    assert fresh.qa.predict.lm.model == "openai/test-model"
    assert fresh.qa.predict.lm.kwargs["temperature"] == 0.4
    assert fresh.dump_state()["qa.predict"]["demos"] == program.dump_state()["qa.predict"]["demos"]


def test_the_file_holds_exactly_what_the_json_file_holds(tmp_path: Path) -> None:
    program = _program()
    program.save(tmp_path / "p.msgpack")
    program.save(tmp_path / "p.json")
    raw = msgpack.unpackb((tmp_path / "p.msgpack").read_bytes())
    assert raw["metadata"]["format_version"] == 1
    assert "bestofn-core" in raw["metadata"]["dependency_versions"]
    from_msgpack = load_state_file(tmp_path / "p.msgpack")
    from_json = load_state_file(tmp_path / "p.json")
    assert from_msgpack == from_json
    assert json.dumps(from_msgpack) == json.dumps(from_json)  # same key order and same int/float/bool
    assert from_msgpack == json.loads(json.dumps(program.dump_state(json_mode=True)))


def test_no_secret_is_written(tmp_path: Path) -> None:
    path = tmp_path / "p.msgpack"
    _program().save(path)
    assert SECRET.encode() not in path.read_bytes()


def test_a_loaded_program_answers_with_its_demos(tmp_path: Path) -> None:
    path = tmp_path / "p.mpk"
    _program().save(path)
    fresh = Program()
    fresh.load(path)
    lm = DummyLM(lambda request, index: {"reasoning": "r", "answer": "Berlin"})
    fresh.set_lm(lm)
    assert fresh(question="Capital of Germany?").answer == "Berlin"
    prompt = json.dumps(lm.requests[0].messages)
    assert "Capital of France?" in prompt and "Paris" in prompt  # the loaded demos reached the LM


def test_best_of_n_round_trip_restores_its_configuration(tmp_path: Path) -> None:
    pm = get_plugin_manager()
    pm.register(RewardPlugin(), name="testrewards")
    at_least_3 = bon.reward("testrewards:min_length", n=3)
    best = bon.BestOfN(
        bon.ChainOfThought("question -> answer"),
        N=4,
        reward_fn=at_least_3,
        threshold=1.0,
        fail_count=1,
        concurrency=2,
    )
    best.module.predict.demos = [bon.Example(question="q", reasoning="r", answer="abc")]
    path = tmp_path / "best.msgpack"
    best.save(path)

    fresh = bon.BestOfN(bon.ChainOfThought("question -> answer"), N=1, reward_fn=lambda a, p: 0.0)
    fresh.load(path)
    assert (fresh.N, fresh.threshold, fresh.fail_count, fresh.concurrency) == (4, 1.0, 1, 2)
    assert (fresh.sampling, fresh.temperature, fresh.policy_ref) == (
        best.sampling,
        best.temperature,
        best.policy_ref,
    )
    assert fresh.reward_fn.ref == "testrewards:min_length" and fresh.reward_fn.params == {"n": 3}
    assert fresh.module.predict.demos[0].answer == "abc"

    answers = {0: "a", 1: "ab", 2: "abcd", 3: "abcde"}

    def by_rollout(request: LMRequest, index: int) -> dict[str, str]:
        return {"reasoning": "r", "answer": answers[int(request.rollout_id or 0) + index]}

    bon.configure(lm=DummyLM(by_rollout))
    prediction = fresh(question="q")
    assert prediction.answer == "abcd"  # the restored reward and threshold chose it and stopped there
    assert len(prediction.candidates) == 3


def test_a_value_msgpack_cannot_hold_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    program = Program()
    program.qa.predict.demos = [bon.Example(question="q", when=datetime.date(2024, 1, 2), answer="a")]
    path = tmp_path / "p.msgpack"
    with pytest.raises(SerializationError) as info:
        program.save(path)
    message = str(info.value)
    assert str(path) in message and "of type date" in message
    assert "state['qa.predict']['demos'][0]['when']" in message
    assert not path.exists()


def test_loading_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.msgpack"
    _program().save(path)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(SerializationError, match=r"p\.msgpack: it is not a valid msgpack state file"):
        Program().load(path)


def test_a_file_that_is_not_a_state_mapping_is_refused_by_the_kernel(tmp_path: Path) -> None:
    path = tmp_path / "p.msgpack"
    MsgpackSerializer().dump([1, 2, 3], path)
    with pytest.raises(SerializationError, match="expected a mapping, got list"):
        Program().load(path)


# ---------------------------------------------------------------- in-process registration, blocking


def test_registered_in_process_without_entry_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")  # built-ins only: the entry point is not loaded
    reset_plugins()
    with pytest.raises(SerializationError, match=r'No serializer handles "\.msgpack" files'):
        get_registry().serializer_for("x.msgpack")

    pm = get_plugin_manager()
    pm.register(bestofn_msgpack.plugin, name="msgpack")
    registration = get_registry().serializer_for("x.msgpack")
    assert registration.qualified_name == "msgpack:msgpack"
    path = tmp_path / "p.msgpack"
    _program().save(path)
    fresh = Program()
    fresh.load(path)
    assert fresh.qa.predict.demos[1].answer == "Paris"

    pm.unregister(bestofn_msgpack.plugin)
    with pytest.raises(SerializationError, match=r'No serializer handles "\.msgpack" files'):
        Program().load(path)


def test_blocking_the_plugin_makes_msgpack_an_unknown_suffix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "p.msgpack"
    _program().save(path)  # while the plugin is loaded

    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "msgpack")
    reset_plugins()
    (info,) = [info for info in get_registry().plugins if info.name == "msgpack"]
    assert info.blocked and info.distribution == "bestofn-msgpack"
    assert info.registered["serializer"] == []

    with pytest.raises(SerializationError) as info_error:
        get_registry().serializer_for("x.msgpack")
    message = str(info_error.value)
    assert 'No serializer handles ".msgpack" files (x.msgpack)' in message
    supported = message.split("Supported suffixes:")[1]
    assert ".json" in supported and ".msgpack" not in supported and ".mpk" not in supported

    with pytest.raises(SerializationError, match=r'No serializer handles "\.msgpack" files'):
        Program().load(path)
    with pytest.raises(SerializationError, match=r'No serializer handles "\.mpk" files'):
        _program().save(tmp_path / "other.mpk")
    assert not (tmp_path / "other.mpk").exists()

    monkeypatch.delenv("BESTOFN_BLOCK_PLUGINS")
    reset_plugins()
    fresh = Program()
    fresh.load(path)  # unblocked again, the same file loads
    assert fresh.qa.predict.demos[0].answer == "2"

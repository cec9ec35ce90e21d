"""The rewards as a plugin: through the installed entry point (``text``), in real BestOfN runs, saved and
loaded, and registered in-process."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import bestofn_rewards
import bestofn_rewards.plugin
import pydantic
import pytest
from bestofn_rewards import MissingFieldError

import bestofn_core as bon
from bestofn_core import cli
from bestofn_core.errors import BestOfNError, ConfigurationError
from bestofn_core.plugins import get_plugin_manager, get_registry
from bestofn_core.protocols import LMRequest
from bestofn_core.testing.dummy_lm import DummyLM
from bestofn_core.testing.openai_server import OpenAICompatServer


def by_rollout(answers: dict[int, str]) -> Any:
    """A DummyLM script answering ``answers[rollout_id]``."""

    def answer(request: LMRequest, index: int) -> dict[str, str]:
        return {"answer": answers[int(request.rollout_id or 0) + index]}

    return answer


def qa() -> bon.Predict:
    return bon.Predict("question -> answer")


# ---------------------------------------------------------------- the installed entry point


def test_the_installed_distribution_provides_the_text_plugin(only_text_plugin: None) -> None:
    registry = get_registry()
    info = next(info for info in registry.plugins if info.name == "text")
    assert (info.distribution, info.version, info.builtin, info.error) == (
        "bestofn-rewards",
        "0.1.0",
        False,
        None,
    )
    assert info.module == "bestofn_rewards.plugin"
    expected = sorted(f"text:{name}" for name in bestofn_rewards.REWARDS)
    assert info.registered["reward"] == expected
    assert all(registry.resolve("reward", name).options["factory"] for name in expected)


def test_bestofn_plugins_lists_the_text_plugin(
    only_text_plugin: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    plugins = listed["plugins"] if isinstance(listed, dict) else listed
    text = next(plugin for plugin in plugins if plugin["name"] == "text")
    assert text["distribution"] == "bestofn-rewards" and "text:one_word" in text["registered"]["reward"]


def test_reward_fn_by_name_picks_the_one_word_answer(only_text_plugin: None) -> None:
    lm = DummyLM(by_rollout({0: "The capital is Brussels", 1: "Brussels", 2: "It is Brussels"}))
    bon.configure(lm=lm)
    pred = bon.BestOfN(qa(), N=3, reward_fn="text:one_word")(question="Capital of Belgium?")
    assert pred.answer == "Brussels" and pred.winner.rollout_id == 1
    assert [candidate.reward for candidate in pred.candidates] == [0.0, 1.0, 0.0]


def test_a_bare_name_resolves_when_only_one_plugin_offers_it(only_text_plugin: None) -> None:
    assert get_registry().resolve("reward", "one_word").qualified_name == "text:one_word"
    bon.configure(lm=DummyLM(by_rollout({0: "two words", 1: "one"})))
    pred = bon.BestOfN(qa(), N=2, reward_fn="one_word", threshold=1.0, concurrency=1)(question="q")
    assert pred.answer == "one" and len(pred.candidates) == 2


def test_a_parameterised_reward_by_reference(only_text_plugin: None) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a b c", 1: "a b", 2: "a"})))
    max_two = bon.reward("text:max_words", n=2)
    assert (max_two.ref, max_two.params) == ("text:max_words", {"n": 2})
    pred = bon.BestOfN(qa(), N=3, reward_fn=max_two, threshold=1.0)(question="q")
    assert pred.answer == "a b" and pred.winner.rollout_id == 1


def test_bad_parameters_are_clear_errors_when_the_reward_is_built(only_text_plugin: None) -> None:
    with pytest.raises(
        ConfigurationError, match="text:max_words.*missing 1 required .*'n'.*Pass its parameters"
    ):
        bon.reward("text:max_words")
    with pytest.raises(ConfigurationError, match="unexpected keyword argument 'm'"):
        bon.reward("text:max_words", m=2)
    with pytest.raises(ConfigurationError, match="max_words: n must be a positive integer, got '2'"):
        bon.reward("text:max_words", n="2")
    with pytest.raises(ValueError, match="n must be at least 1"):
        bon.reward("text:max_words", n=0)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        bon.reward("text:regex", pattern="(")
    with pytest.raises(ConfigurationError, match="pass exactly one of expected="):
        bon.BestOfN(qa(), N=2, reward_fn="text:exact_match")


def test_a_missing_field_fails_each_attempt_with_a_message_naming_it(only_text_plugin: None) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "b"})))
    best = bon.BestOfN(qa(), N=2, reward_fn=bon.reward("text:one_word", field="title"))
    with pytest.raises(BestOfNError) as info:
        best(question="q")
    assert len(info.value.exceptions) == 2
    assert all(isinstance(exc, MissingFieldError) for exc in info.value.exceptions)
    message = str(info.value.exceptions[0])
    assert "'title'" in message and "its fields are: answer" in message


def test_the_gold_answer_can_come_from_an_input_the_lm_never_sees(only_text_plugin: None) -> None:
    class QA(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = bon.Predict("question -> answer")

        def forward(self, question: str, gold: Any = None) -> bon.Prediction:
            return self.predict(question=question)

    lm = DummyLM(by_rollout({0: "Paris", 1: "brussels.", 2: "Brussels"}))
    bon.configure(lm=lm)
    best = bon.BestOfN(
        QA(), N=3, reward_fn=bon.reward("text:normalized_match", input_field="gold"), threshold=1.0
    )
    pred = best(question="Capital of Belgium?", gold="Brussels")
    assert pred.winner.rollout_id == 1 and pred.answer == "brussels."
    assert all("Brussels" not in str(request.messages) for request in lm.requests)


def test_json_schema_over_http_picks_the_valid_choice(only_text_plugin: None) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    answers = ['{"age": "old"}', "age: 36", '{"age": 36}']
    with OpenAICompatServer() as server:
        server.set_responder(lambda request, index: {"answer": answers[index]})
        bon.configure(lm=bon.LM("openai/test", api_base=server.url, api_key="k", cache=False))
        best = bon.BestOfN(
            qa(), N=3, reward_fn=bon.reward("text:json_schema", schema=schema), sampling="batched"
        )
        pred = best(question="How old?")
        assert len(server.requests) == 1
    assert pred.answer == '{"age": 36}' and [c.reward for c in pred.candidates] == [0.0, 0.0, 1.0]


# ---------------------------------------------------------------- save and load


class Person(pydantic.BaseModel):
    name: str


@pytest.mark.parametrize(
    ("ref", "params"),
    [
        ("text:one_word", {}),
        ("text:max_words", {"n": 2}),
        ("text:exact_match", {"expected": ["a b", "c"]}),
        ("text:json_schema", {"schema": {"type": "object"}, "field": "answer"}),
        ("text:pydantic_model", {"model": "bestofn_rewards_plugin_test_models:Person", "strict": True}),
        ("text:length_penalty", {"target": 2, "unit": "chars", "scale": 0.5}),
    ],
)
def test_saving_and_loading_a_bestofn_restores_its_text_reward(
    only_text_plugin: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ref: str, params: dict[str, Any]
) -> None:
    models = types.ModuleType("bestofn_rewards_plugin_test_models")
    models.Person = Person  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, models.__name__, models)
    reward_fn = bon.reward(ref, **params) if params else ref
    bon.BestOfN(qa(), N=3, reward_fn=reward_fn, threshold=1.0).save(tmp_path / "best.json")
    fresh = bon.BestOfN(qa(), N=1, reward_fn=lambda inputs, pred: 0.0)
    fresh.load(tmp_path / "best.json")
    assert (fresh.reward_fn.ref, fresh.reward_fn.params, fresh.N) == (ref, params, 3)
    assert fresh.reward_fn.fn.__name__.startswith(ref.partition(":")[2] + "(")


def test_a_loaded_bestofn_scores_as_the_saved_one(only_text_plugin: None, tmp_path: Path) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a b c", 1: "a b", 2: "a"})))
    best = bon.BestOfN(qa(), N=3, reward_fn=bon.reward("text:max_words", n=2), threshold=1.0)
    best.save(tmp_path / "best.json")
    fresh = bon.BestOfN(qa(), N=1, reward_fn=lambda inputs, pred: 0.0)
    fresh.load(tmp_path / "best.json")
    pred = fresh(question="q")
    assert pred.winner.rollout_id == 1 and [c.reward for c in pred.candidates] == [0.0, 1.0]


def test_a_pydantic_class_parameter_cannot_be_saved_as_json(only_text_plugin: None, tmp_path: Path) -> None:
    # Why the README says to pass the import path: the kernel saves parameters as JSON.
    best = bon.BestOfN(qa(), N=2, reward_fn=bon.reward("text:pydantic_model", model=Person))
    with pytest.raises(bon.errors.SerializationError, match="reward_params"):
        best.save(tmp_path / "best.json")


# ---------------------------------------------------------------- in-process registration


def test_the_plugin_module_registered_in_process(no_entry_point_plugins: None) -> None:
    pm = get_plugin_manager()
    assert "text" not in [info.name for info in get_registry().plugins]
    pm.register(bestofn_rewards.plugin, name="myrewards")
    try:
        registry = get_registry()
        assert registry.names("reward") == sorted(f"myrewards:{name}" for name in bestofn_rewards.REWARDS)
        info = next(info for info in registry.plugins if info.name == "myrewards")
        assert info.distribution is None and info.error is None
        bon.configure(lm=DummyLM(by_rollout({0: "no", 1: "yes it is", 2: "yes"})))
        best = bon.BestOfN(qa(), N=3, reward_fn=bon.reward("myrewards:regex", pattern="yes", full=True))
        assert best(question="q").winner.rollout_id == 2
    finally:
        pm.unregister(bestofn_rewards.plugin)
    assert get_registry().names("reward") == []


def test_a_factory_called_directly_is_a_reward_fn() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a b c d e f", 1: "a b c d", 2: "a b c d e"})))
    pred = bon.BestOfN(qa(), N=3, reward_fn=bestofn_rewards.length_penalty(3))(question="q")
    assert pred.winner.rollout_id == 1
    assert [round(c.reward, 4) for c in pred.candidates] == [0.3679, 0.7165, 0.5134]

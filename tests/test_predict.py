"""Predict and ChainOfThought against the real test server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import AdapterParseError, ConfigurationError, SignatureError


def test_predict_typed_fields_round_trip(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": ["a", "b"], "confidence": 0.75})
    qa = bon.Predict("question: str, k: int -> answer: list[str], confidence: float")
    pred = qa(question="two letters?", k=2)
    assert pred.answer == ["a", "b"] and pred.confidence == 0.75
    assert "[[ ## k ## ]]\n2" in server.requests[0].last_user_text


def test_predict_with_n_returns_every_completion(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": f"answer-{i}"})
    qa = bon.Predict("question -> answer", n=3)
    pred = qa(question="q")
    assert pred.completions.answer == ["answer-0", "answer-1", "answer-2"]
    assert pred.answer == "answer-0"
    assert len(server.requests) == 1 and server.requests[0].body["n"] == 3


def test_call_config_and_lm_override_the_predictor(make_lm: Any, server: Any) -> None:
    default_lm = make_lm(model="openai/default-model")
    other_lm = make_lm(model="openai/other-model")
    bon.configure(lm=default_lm)
    qa = bon.Predict("question -> answer", temperature=0.3)
    qa(question="q1")
    qa(question="q2", config={"temperature": 0.9}, lm=other_lm)
    first, second = server.requests
    assert first.body["model"] == "default-model" and first.body["temperature"] == 0.3
    assert second.body["model"] == "other-model" and second.body["temperature"] == 0.9


def test_demos_are_shown_to_the_lm(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer")
    qa.demos = [bon.Example(question="1+1?", answer="2"), {"question": "2+2?", "answer": "4"}]
    qa(question="3+3?")
    contents = [m["content"] for m in server.requests[0].messages]
    assert any("1+1?" in c for c in contents) and any("[[ ## answer ## ]]\n4" in c for c in contents)


def test_trace_records_predictor_inputs_and_prediction(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer")
    with bon.context(trace=[]):
        pred = qa(question="q")
        (entry,) = bon.settings.trace
    assert entry[0] is qa and entry[1] == {"question": "q"} and entry[2] is pred
    with bon.context(trace=None):
        qa(question="q2")  # tracing off: no error


def test_the_trace_keeps_the_newest_max_trace_size_entries(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer")
    best = bon.BestOfN(qa, N=2, reward_fn=lambda inputs, pred: 0.0)
    with bon.context(trace=[], max_trace_size=3):
        for index in range(4):
            qa(question=f"q{index}")
        assert [entry[1]["question"] for entry in bon.settings.trace] == ["q1", "q2", "q3"]
        best(question="q4")  # BestOfN adds its winner's entries through the same bound
        assert [entry[1]["question"] for entry in bon.settings.trace] == ["q2", "q3", "q4"]
    assert bon.settings.max_trace_size == 10_000


def test_positional_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(SignatureError, match=r"keyword arguments only.*question=\.\.\."):
        bon.Predict("question -> answer")("What?")


def test_unknown_and_missing_inputs_are_clear_errors(lm: bon.LM) -> None:
    qa = bon.Predict("question, context -> answer")
    with pytest.raises(SignatureError, match="Unknown input field.*questoin.*question, context"):
        qa(questoin="typo", context="c")
    with pytest.raises(SignatureError, match="Missing input field.*context"):
        qa(question="q")


def test_no_lm_configured_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="No LM is configured.*configure"):
        bon.Predict("question -> answer")(question="q")


def test_chain_of_thought_adds_reasoning_first(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"reasoning": "think", "answer": "42"})
    cot = bon.ChainOfThought("question -> answer: int")
    pred = cot(question="6*7?")
    assert pred.reasoning == "think" and pred.answer == 42
    assert list(cot.predict.signature.output_fields) == ["reasoning", "answer"]
    assert "starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`" in (
        server.requests[0].last_user_text
    )


def test_malformed_output_falls_back_to_json_then_raises_with_the_raw_text(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: "I refuse to use your format.")
    with pytest.raises(AdapterParseError) as info:
        bon.Predict("question -> answer")(question="q")
    assert info.value.lm_response == "I refuse to use your format." or "I refuse" in str(info.value)
    assert "answer" in info.value.missing_fields
    assert len(server.requests) == 2  # ChatAdapter, then one JSONAdapter attempt
    assert server.requests[1].body.get("response_format") == {"type": "json_object"}


def test_json_fallback_recovers(lm: bon.LM, server: Any) -> None:
    replies = iter(["garbage", '{"answer": "recovered"}'])
    server.set_responder(lambda req, i: next(replies))
    assert bon.Predict("question -> answer")(question="q").answer == "recovered"


def test_json_adapter_configured_globally(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": "json answer"})
    bon.configure(adapter=bon.JSONAdapter())
    assert bon.Predict("question -> answer")(question="q").answer == "json answer"
    assert "Respond with a JSON object" in server.requests[0].last_user_text


async def test_predict_acall_runs_concurrently_on_the_callers_loop(lm: bon.LM, server: Any) -> None:
    server.latency = 0.3
    qa = bon.Predict("question -> answer")
    started = time.perf_counter()
    preds = await asyncio.gather(*(qa.acall(question=f"q{i}") for i in range(8)))
    assert time.perf_counter() - started < 1.5
    assert len({p.answer for p in preds}) == 8


def test_class_signature_with_instructions(lm: bon.LM, server: Any) -> None:
    class QA(bon.Signature):
        """Answer with one word."""

        question: str = bon.InputField()
        answer: str = bon.OutputField(desc="a single word")

    bon.Predict(QA)(question="q")
    system = server.requests[0].messages[0]["content"]
    assert "Answer with one word." in system and "a single word" in system


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"temperature": "hot"}, "temperature: Input should be a valid number (got 'hot')"),
        ({"temperature": -0.5}, "temperature: Input should be greater than or equal to 0"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than 0"),
        ({"max_tokens": 2.5}, "max_tokens: Input should be a valid integer"),
        ({"n": True}, "n: Input should be a valid integer (got True)"),
        ({"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
        ({"rollout_id": "1"}, "rollout_id: Input should be a valid integer"),
    ],
)
def test_bad_lm_parameters_are_refused_at_construction(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match="Invalid argument") as caught:
        bon.Predict("question -> answer", **config)
    assert message in str(caught.value)
    with pytest.raises(ConfigurationError):
        bon.ChainOfThought("question -> answer", **config)


def test_provider_specific_parameters_pass_through() -> None:
    predict = bon.Predict("question -> answer", temperature=1, max_tokens=10, top_k=3, seed=7)
    assert predict.config == {"temperature": 1, "max_tokens": 10, "top_k": 3, "seed": 7}

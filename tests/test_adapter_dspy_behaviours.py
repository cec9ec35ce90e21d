"""DSPy behaviours of the adapters and Predict, through the public API and the real HTTP test server.

Structured outputs (JSONAdapter's ``response_format``, decided by what litellm reports for the model),
optional and defaulted outputs an answer may leave out, and inputs with a default.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import bestofn_tests_dspy_prompts as dspy_prompts
import pytest

import bestofn_core as bon
from bestofn_core.adapters.structured_output import structured_response_format
from bestofn_core.errors import AdapterParseError, LMRequestError
from bestofn_core.testing.dummy_lm import DummyLM

RECORDED = dspy_prompts.load_recording()


class Report(bon.Signature):
    """Answer, and say how sure you are."""

    question: str = bon.InputField()
    answer: str = bon.OutputField()
    confidence: float = bon.OutputField(default=0.5)
    notes: Optional[str] = bon.OutputField()  # noqa: UP045 - the spelling DSPy users write
    source: str | None = bon.OutputField()


class Translate(bon.Signature):
    """Translate the text."""

    text: str = bon.InputField()
    language: str = bon.InputField(default="French")
    translation: str = bon.OutputField()


# ------------------------------------------------------------------------------ structured outputs


def test_json_adapter_asks_for_dspys_json_schema_when_litellm_says_the_model_supports_it(
    make_lm: Any, server: Any
) -> None:
    lm = make_lm("openai/gpt-4o-mini")  # litellm: supports_response_schema -> True
    bon.configure(lm=lm, adapter=bon.JSONAdapter())
    server.set_responder(lambda req, i: {"reasoning": "r", "answer": "Paris"})
    prediction = bon.Predict("context, question -> reasoning, answer")(context="c", question="q")
    assert prediction.answer == "Paris"
    (request,) = server.requests
    # exactly what DSPy 3.3.1 puts on the wire for this signature (recorded by running DSPy)
    assert (
        request.body["response_format"]
        == RECORDED["response_formats"]["context, question -> reasoning, answer"]
    )


def test_the_schema_of_typed_and_nested_outputs_is_dspys() -> None:
    checked = 0
    for case in dspy_prompts.build_cases(bon):
        expected = RECORDED["response_formats"][case.signature.signature]
        if expected is None:
            continue
        assert structured_response_format(case.signature) == expected, case.name
        checked += 1
    assert checked >= 10


def test_json_mode_when_the_model_has_no_schema_support(make_lm: Any, server: Any) -> None:
    bon.configure(lm=make_lm("openai/test-model"), adapter=bon.JSONAdapter())
    server.set_responder(lambda req, i: {"answer": "Paris"})
    assert bon.Predict("question -> answer")(question="q").answer == "Paris"
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


def test_json_mode_for_an_open_ended_mapping_even_when_the_model_has_schema_support(
    make_lm: Any, server: Any
) -> None:
    bon.configure(lm=make_lm("openai/gpt-4o-mini"), adapter=bon.JSONAdapter())
    server.set_responder(lambda req, i: {"counts": {"a": 1}})
    assert bon.Predict("question -> counts: dict[str, int]")(question="q").counts == {"a": 1}
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


def test_no_response_format_for_a_provider_that_supports_neither(make_lm: Any, server: Any) -> None:
    # litellm lists no "response_format" among featherless_ai's parameters (and refuses to send one)
    bon.configure(lm=make_lm("featherless_ai/some-model"), adapter=bon.JSONAdapter())
    server.set_responder(lambda req, i: '{"answer": "Paris"}')
    assert bon.Predict("question -> answer")(question="q").answer == "Paris"
    (request,) = server.requests
    assert "response_format" not in request.body
    assert request.last_user_text.endswith(
        "Respond with a JSON object in the following order of fields: `answer`."
    )


def test_a_rejected_structured_output_request_is_not_retried_in_json_mode(make_lm: Any, server: Any) -> None:
    bon.configure(lm=make_lm("openai/gpt-4o-mini", num_retries=0), adapter=bon.JSONAdapter())
    server.fail_next(400, body='{"error": {"message": "Invalid schema for response_format", "type": "x"}}')
    with pytest.raises(LMRequestError, match="Invalid schema"):
        bon.Predict("question -> answer")(question="q")
    (request,) = server.requests
    assert request.body["response_format"]["type"] == "json_schema"


def test_an_unparseable_structured_answer_is_retried_once_in_json_mode_with_a_warning(
    make_lm: Any, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bon.configure(lm=make_lm("openai/gpt-4o-mini"), adapter=bon.JSONAdapter())
    server.set_responder(
        lambda req, i: (
            "not JSON" if req.body["response_format"]["type"] == "json_schema" else '{"answer": "ok"}'
        )
    )
    with caplog.at_level(logging.WARNING, logger="bestofn_core.adapters.json_adapter"):
        assert bon.Predict("question -> answer")(question="q").answer == "ok"
    assert [r.body["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object"]
    assert "falling back to JSON mode" in caplog.text


def test_a_custom_lm_that_declares_nothing_gets_no_response_format() -> None:
    # DSPy's BaseLM declares no supported parameters: its JSONAdapter sends such an LM no response_format
    lm = DummyLM([{"answer": "Paris"}])
    with bon.context(lm=lm, adapter=bon.JSONAdapter()):
        assert bon.Predict("question -> answer")(question="q").answer == "Paris"
    assert "response_format" not in lm.requests[0].params


# ------------------------------------------------------------------------------ optional outputs


def test_outputs_with_a_default_or_optional_type_may_be_left_out(lm: Any, server: Any) -> None:
    server.set_responder(lambda req, i: "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]")
    prediction = bon.Predict(Report)(question="Capital of France?")
    assert (prediction.answer, prediction.confidence, prediction.notes, prediction.source) == (
        "Paris",
        0.5,
        None,
        None,
    )
    assert len(server.requests) == 1  # parsed at once: no JSON fallback call


def test_optional_outputs_may_be_left_out_of_a_json_answer(lm: Any, server: Any) -> None:
    bon.configure(adapter=bon.JSONAdapter())
    server.set_responder(lambda req, i: '{"answer": "Paris", "notes": "n"}')
    prediction = bon.Predict(Report)(question="Capital of France?")
    assert (prediction.answer, prediction.confidence, prediction.notes, prediction.source) == (
        "Paris",
        0.5,
        "n",
        None,
    )


def test_a_required_output_left_out_still_fails(lm: Any, server: Any) -> None:
    bon.configure(adapter=bon.ChatAdapter(use_json_adapter_fallback=False))
    server.set_responder(lambda req, i: "[[ ## confidence ## ]]\n0.9\n\n[[ ## completed ## ]]")
    with pytest.raises(AdapterParseError) as info:
        bon.Predict(Report)(question="q")
    assert info.value.missing_fields == ["answer"]
    assert "Expected to find output fields in the LM response: [answer, confidence, notes, source]" in str(
        info.value
    )


# ------------------------------------------------------------------------------ input defaults


def test_an_omitted_input_takes_its_default(lm: Any, server: Any) -> None:
    server.set_responder(lambda req, i: {"translation": "Bonjour"})
    predict = bon.Predict(Translate)
    with bon.context(trace=[]):
        assert predict(text="Hello").translation == "Bonjour"
        ((_, inputs, _),) = bon.settings.trace
    assert "[[ ## text ## ]]\nHello\n\n[[ ## language ## ]]\nFrench\n\n" in server.requests[-1].last_user_text
    assert inputs == {"text": "Hello", "language": "French"}
    # given, it is used; a required input is still required
    predict(text="Hello", language="German")
    assert "[[ ## language ## ]]\nGerman" in server.requests[-1].last_user_text
    with pytest.raises(bon.errors.SignatureError, match="Missing input field"):
        predict(language="German")


class TwoSteps(bon.Module):
    """A program written the sync way: DSPy users' usual ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = bon.Predict("question -> answer")

    def forward(self, question: str) -> Any:
        self.predict(question=question)
        return self.predict(question=question + "?")


@pytest.mark.slow
async def test_json_adapter_in_more_sync_programs_than_worker_threads_does_not_deadlock(
    lm: Any, server: Any
) -> None:
    # Every sync forward holds a worker thread while it waits for its LM call. JSONAdapter must not need
    # a worker thread of its own on each call to learn what the LM supports: with the pool full of
    # waiting programs, that thread never comes (this hung before).
    import asyncio

    from bestofn_core.runtime import MAX_WORKER_THREADS

    server.set_responder(lambda req, i: {"answer": "a"})
    program = TwoSteps()
    with bon.context(adapter=bon.JSONAdapter()):
        calls = [program.acall(question=str(i)) for i in range(MAX_WORKER_THREADS + 36)]
        # a guard against hanging the suite, not a speed check: this takes seconds
        results = await asyncio.wait_for(asyncio.gather(*calls), timeout=300)
    assert [result.answer for result in results] == ["a"] * (MAX_WORKER_THREADS + 36)

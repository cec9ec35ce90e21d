"""DSPy behaviours of the adapters and Predict, through the public API and the real HTTP test server.

Optional and defaulted outputs an answer may leave out, and inputs with a default.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

import bestofn_core as bon
from bestofn_core.errors import AdapterParseError


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

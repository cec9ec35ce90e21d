"""An answer that copies the prompt's template is a parse failure in every adapter, never a candidate.

The issue's symptom, on the real HTTP path: a small model answered DSPy's layout with the placeholder it
shows (``{answer}``), which the JSON grammar accepts, and the copy won the vote.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

import bestofn_core as bon
from bestofn_core.adapters import ChatAdapter, CompactAdapter, JSONAdapter
from bestofn_core.adapters.template_copy import template_copy
from bestofn_core.errors import AdapterParseError
from bestofn_core.testing.openai_server import OpenAICompatServer

QA = bon.Signature("question -> answer")


@pytest.mark.parametrize(
    "copy",
    [
        "{answer}",
        "Answer",
        "answer",
        "`answer`",
        "Answer:",
        "{question}",
        "[[ ## answer ## ]]\n{answer}",
        "{answer}        # note: the value you produce must be a single int value",
        "Given the fields `question`, produce the fields `answer`.",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
    ],
)
def test_copies_of_the_template_are_recognised(copy: str) -> None:
    assert template_copy(copy, QA, [_structure_intro()]) is not None


@pytest.mark.parametrize("answer", ["Brussels", "The answer is Brussels.", "?", "...", "answers", "{x} + 1"])
def test_answers_are_not_copies(answer: str) -> None:
    assert template_copy(answer, QA, [_structure_intro()]) is None


def _structure_intro() -> str:
    from bestofn_core.adapters.chat_adapter import STRUCTURE_INTRO

    return STRUCTURE_INTRO


@pytest.mark.parametrize(
    ("adapter", "reply"),
    [
        (
            ChatAdapter(use_json_adapter_fallback=False),
            "[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]",
        ),
        (ChatAdapter(use_json_adapter_fallback=False), "[[ ## answer ## ]]\nAnswer\n\n[[ ## completed ## ]]"),
        (JSONAdapter(), '{"answer": "{answer}"}'),
        (JSONAdapter(), '{"answer": "answer"}'),
        (CompactAdapter(), "{answer}"),
    ],
)
def test_every_adapter_refuses_a_template_copy(adapter: Any, reply: str) -> None:
    with pytest.raises(AdapterParseError, match="copies the prompt's template"):
        adapter.parse(QA, reply)


def test_a_value_of_a_typed_field_is_never_a_copy() -> None:
    signature = bon.Signature(
        {"question": (str, bon.InputField()), "answer": (Literal["answer", "other"], bon.OutputField())}
    )
    assert JSONAdapter().parse(signature, '{"answer": "answer"}') == {"answer": "answer"}


def test_through_the_json_grammar_path_a_placeholder_is_a_failed_attempt(
    lm: bon.LM, server: OpenAICompatServer
) -> None:
    # what the 135M model did under the JSON-schema grammar: five placeholders, three answers
    replies = iter(
        ["{answer}", "Brussels", "{answer}", "{answer}", "Brussels", "{answer}", "Antwerp", "{answer}"]
    )
    server.set_responder(lambda request, index: {"answer": next(replies)})
    best = bon.BestOfN(bon.Predict("question -> answer"), N=8, policy="voting:majority", concurrency=1)
    with bon.context(adapter=JSONAdapter()):
        prediction = best(question="What is the capital of Belgium?")
    assert prediction.answer == "Brussels"  # before: "{answer}" won the vote, 5 to 2
    failed = [candidate for candidate in prediction.candidates if not candidate.ok]
    assert len(failed) == 5
    assert all(isinstance(candidate.error, AdapterParseError) for candidate in failed)

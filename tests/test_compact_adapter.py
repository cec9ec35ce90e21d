"""CompactAdapter: the prompt for small local models, how it is chosen, and how replies are read.

The prompts asserted here are the ones docs/concepts.md shows; the calls go through litellm to the test
server, which answers in the compact form the prompt asks for.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

import bestofn_core as bon
from bestofn_core.adapters import ChatAdapter, CompactAdapter
from bestofn_core.errors import AdapterParseError, UnknownNameError
from bestofn_core.testing.dummy_lm import DummyLM
from bestofn_core.testing.openai_server import OpenAICompatServer

QUESTION = "What is the capital of Belgium?"


def last_request(server: OpenAICompatServer) -> list[dict[str, Any]]:
    return server.requests[-1].messages


def test_the_prompt_of_question_to_answer_is_the_question_and_one_request(
    lm: bon.LM, server: OpenAICompatServer
) -> None:
    server.set_responder(lambda request, index: {"answer": "The capital of Belgium is Brussels."})
    with bon.context(adapter="compact"):
        prediction = bon.Predict("question -> answer")(question=QUESTION)
    assert last_request(server) == [
        {"role": "user", "content": "What is the capital of Belgium?\n\nReply with the answer only."}
    ]
    assert prediction.answer == "The capital of Belgium is Brussels."


def test_the_prompt_of_chain_of_thought_asks_for_labelled_lines(
    lm: bon.LM, server: OpenAICompatServer
) -> None:
    server.set_responder(lambda request, index: {"reasoning": "Brussels is its seat.", "answer": "Brussels"})
    with bon.context(adapter="compact"):
        prediction = bon.ChainOfThought("question -> answer")(question=QUESTION)
    assert last_request(server) == [
        {
            "role": "user",
            "content": "What is the capital of Belgium?\n\n"
            'Reply with a "Reasoning:" line, then an "Answer:" line.',
        }
    ]
    assert (prediction.reasoning, prediction.answer) == ("Brussels is its seat.", "Brussels")


def test_several_inputs_typed_outputs_instructions_and_demos(lm: bon.LM, server: OpenAICompatServer) -> None:
    class Count(bon.Signature):
        """Count the words of the text."""

        text: str = bon.InputField()
        unit: str = bon.InputField()
        count: int = bon.OutputField()

    server.set_responder(lambda request, index: {"count": 3})
    predict = bon.Predict(Count)
    predict.demos = [bon.Example(text="a b", unit="words", count=2), bon.Example(text="no count")]
    with bon.context(adapter="compact"):
        prediction = predict(text="one two three", unit="words")
    request = "Count the words of the text.\n\nReply with the count only, a whole number."
    assert last_request(server) == [
        {"role": "user", "content": f"Text: a b\nUnit: words\n\n{request}"},
        {"role": "assistant", "content": "2"},  # the incomplete demo is left out
        {"role": "user", "content": f"Text: one two three\nUnit: words\n\n{request}"},
    ]
    assert prediction.count == 3


def test_no_placeholder_or_marker_is_ever_shown() -> None:
    signature = bon.ChainOfThought("question, context: list[str] -> answer: int, label: Literal['a', 'b']")
    messages = CompactAdapter().format(
        signature.predict.signature,
        [{"question": "q", "context": ["x"], "reasoning": "r", "answer": 1, "label": "a"}],
        {"question": "q2", "context": ["y", "z"]},
    )
    text = "\n".join(message["content"] for message in messages)
    for shown in ("{", "[[", "##", "`"):
        assert shown not in text.replace('["y", "z"]', "").replace('["x"]', ""), text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("The capital of Belgium is Brussels.", "The capital of Belgium is Brussels."),
        ("Answer: Brussels", "Brussels"),
        ("**Answer:** Brussels\n", "Brussels"),
        ("  Brussels  ", "Brussels"),
    ],
)
def test_a_single_output_is_the_whole_reply(reply: str, expected: str) -> None:
    assert CompactAdapter().parse(bon.Signature("question -> answer"), reply) == {"answer": expected}


@pytest.mark.parametrize(
    ("annotation", "reply", "expected"),
    [
        (int, "56", 56),
        (int, "7 x 8 = 56.", 56),
        (int, "The answer is 1,024.", 1024),
        (float, "It is 2.5 m", 2.5),
        # the minus between two operands is not a sign; a minus after "=" is
        (int, "52-26=26", 26),
        (int, "5 - 9 = -4", -4),
        (int, "1, 2, 3", 3),
    ],
)
def test_a_number_output_reads_the_last_number_of_a_sentence(
    annotation: Any, reply: str, expected: Any
) -> None:
    signature = bon.Signature(
        {"question": (str, bon.InputField()), "answer": (annotation, bon.OutputField())}
    )
    assert CompactAdapter().parse(signature, reply) == {"answer": expected}


def test_labelled_lines_are_read_in_any_case_and_a_missing_first_label_is_forgiven() -> None:
    signature = bon.ChainOfThought("question -> answer").predict.signature
    adapter = CompactAdapter()
    assert adapter.parse(signature, "reasoning: It is the seat.\nANSWER: Brussels") == {
        "reasoning": "It is the seat.",
        "answer": "Brussels",
    }
    assert (
        adapter.parse(signature, "It is the seat.\nSo:\nAnswer: Brussels")["reasoning"]
        == "It is the seat.\nSo:"
    )


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("Reasoning: I think.\nThe answer is Brussels.", "parsed from the LM response: [reasoning]"),
        ("Reasoning: I think.\nAnswer: Answer", "`answer` copies the prompt's template ('Answer')"),
        ("Reasoning: {reasoning}\nAnswer: Brussels", "`reasoning` copies the prompt's template"),
    ],
)
def test_a_missing_output_or_a_template_copy_is_a_parse_error(reply: str, problem: str) -> None:
    signature = bon.ChainOfThought("question -> answer").predict.signature
    with pytest.raises(AdapterParseError, match="CompactAdapter failed") as caught:
        CompactAdapter().parse(signature, reply)
    assert problem in str(caught.value)


def test_literal_choices_that_look_like_field_names_are_answers() -> None:
    signature = bon.Signature(
        {"text": (str, bon.InputField()), "answer": (Literal["answer", "question"], bon.OutputField())}
    )
    assert CompactAdapter().parse(signature, "answer") == {"answer": "answer"}


# ------------------------------------------------------------------------------------ which adapter runs


class SmallLocalLM(DummyLM):
    """A DummyLM whose backend, like llama.cpp's, says the compact prompt suits it."""

    preferred_adapter = "compact"  # type: ignore[assignment]


def test_an_lm_that_prefers_compact_gets_it_without_configuration() -> None:
    lm = SmallLocalLM(lambda request, index: {"answer": "Brussels"})
    bon.configure(lm=lm)
    assert bon.Predict("question -> answer")(question=QUESTION).answer == "Brussels"
    assert lm.requests[-1].messages[-1]["content"].endswith("Reply with the answer only.")


def test_a_configured_adapter_always_wins_over_the_lm_preference() -> None:
    lm = SmallLocalLM(lambda request, index: {"answer": "Brussels"})
    bon.configure(lm=lm, adapter=ChatAdapter())
    assert bon.Predict("question -> answer")(question=QUESTION).answer == "Brussels"
    assert "[[ ## answer ## ]]" in lm.requests[-1].messages[-1]["content"]
    with bon.context(adapter="json"):
        bon.Predict("question -> answer")(question=QUESTION)
    assert "Respond with a JSON object" in lm.requests[-1].messages[-1]["content"]


def test_an_lm_without_a_preference_gets_dspys_chat_layout(lm: bon.LM, server: OpenAICompatServer) -> None:
    assert lm.preferred_adapter is None
    bon.Predict("question -> answer")(question=QUESTION)
    assert "[[ ## answer ## ]]" in server.requests[-1].last_user_text


def test_an_unknown_adapter_name_lists_the_registered_ones(lm: bon.LM, server: OpenAICompatServer) -> None:
    with bon.context(adapter="compakt"), pytest.raises(UnknownNameError) as caught:
        bon.Predict("question -> answer")(question=QUESTION)
    message = str(caught.value)
    assert 'Unknown adapter "compakt"' in message and 'Did you mean "compact"?' in message
    assert "adapters:chat, adapters:compact, adapters:json" in message
    assert server.requests == []

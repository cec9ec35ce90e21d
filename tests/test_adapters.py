"""ChatAdapter and JSONAdapter: prompts, typed round trips, the JSON fallback, errors and callbacks."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any, Literal

import pydantic
import pytest

from bestofn_core.adapters import Adapter, ChatAdapter, JSONAdapter
from bestofn_core.adapters.values import format_value, parse_value, to_jsonable
from bestofn_core.errors import AdapterParseError, LMServerError
from bestofn_core.primitives.callbacks import BaseCallback
from bestofn_core.primitives.example import Example
from bestofn_core.settings import context
from bestofn_core.signatures import InputField, OutputField, Signature, make_signature

CHAT_CLOSING_TWO = (
    "Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, "
    "then `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
)
CHAT_CLOSING_ONE = (
    "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, "
    "and then ending with the marker for `[[ ## completed ## ]]`."
)


class ScriptedLM:
    """A fake LM: answers each call with the next scripted reply (a string, a list of strings, or an
    exception to raise) and records every call's messages and keyword arguments. It accepts a
    ``response_format`` (JSON mode), but no JSON schema."""

    supported_params = frozenset({"response_format", "temperature", "n"})

    def __init__(self, *replies: str | list[str] | BaseException) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    async def acall(self, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> list[str]:
        self.calls.append({"messages": messages, **kwargs})
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply if isinstance(reply, list) else [reply]


class QA(Signature):
    """Answer questions with short factoid answers."""

    question: str = InputField()
    reasoning: str = OutputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


class Point(pydantic.BaseModel):
    x: int
    label: str


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


TYPED_VALUES: list[tuple[Any, Any]] = [
    (str, "Paris, France"),
    (str, "multi\nline\n\ntext"),
    (int, 42),
    (int, -7),
    (float, 3.25),
    (bool, True),
    (bool, False),
    (list[str], ["a", "b, c", "d\ne"]),
    (list[str], []),
    (dict[str, int], {"one": 1, "two": 2}),
    (Literal["yes", "no"], "no"),
    (Literal[1, 2], 2),
    (Color, Color.BLUE),
    (Point, Point(x=3, label="p")),
    (list[Point], [Point(x=1, label="a")]),
    (int | None, 5),
    (int | None, None),
    (str | None, "text"),
]


def one_output(annotation: Any) -> type[Signature]:
    return make_signature({"question": (str, InputField()), "out": (annotation, OutputField())})


def all_outputs() -> type[Signature]:
    fields: dict[str, Any] = {"question": (str, InputField())}
    fields.update({f"f{i}": (annotation, OutputField()) for i, (annotation, _) in enumerate(TYPED_VALUES)})
    return make_signature(fields)


# ------------------------------------------------------------------------------------------- format


def test_chat_format_system_and_user_messages() -> None:
    messages = ChatAdapter().format(QA, [], {"question": "What is the capital of France?"})
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert system.startswith(
        "Your input fields are:\n1. `question` (str):\n"
        "Your output fields are:\n1. `reasoning` (str): \n2. `answer` (str): often between 1 and 5 words\n"
        "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
        "[[ ## question ## ]]\n{question}\n\n[[ ## reasoning ## ]]\n{reasoning}\n\n"
        "[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]\n"
    )
    assert system.endswith(
        "In adhering to this structure, your objective is: \n"
        "        Answer questions with short factoid answers."
    )
    user = messages[1]["content"]
    assert user == "[[ ## question ## ]]\nWhat is the capital of France?\n\n" + CHAT_CLOSING_TWO


def test_chat_closing_sentence_for_one_and_three_outputs() -> None:
    user = ChatAdapter().format(Signature("question -> answer"), [], {"question": "q"})[-1]["content"]
    assert user.endswith(CHAT_CLOSING_ONE)
    three = ChatAdapter().format(Signature("q -> a, b, c"), [], {"q": "x"})[-1]["content"]
    assert three.endswith(
        "Respond with the corresponding output fields, starting with the field `[[ ## a ## ]]`, "
        "then `[[ ## b ## ]]`, then `[[ ## c ## ]]`, "
        "and then ending with the marker for `[[ ## completed ## ]]`."
    )


def test_chat_format_describes_typed_outputs() -> None:
    sig = Signature("q -> n: int, tags: list[str], choice: Literal['x', 'y'], ok: bool")
    system, user = (m["content"] for m in ChatAdapter().format(sig, [], {"q": "x"}))
    assert "{n}        # note: the value you produce must be a single int value" in system
    assert (
        "# note: the value you produce must adhere to the JSON schema: "
        '{"type": "array", "items": {"type": "string"}' in system
    )
    assert "must exactly match (no extra characters) one of: x; y" in system
    assert "must be True or False" in system
    assert "2. `tags` (list[str])" in system
    assert user.startswith("[[ ## q ## ]]\nx\n\nRespond with the corresponding output fields")
    assert "`[[ ## n ## ]]` (must be formatted as a valid Python int), then `[[ ## tags ## ]]`" in user
    assert user.endswith("and then ending with the marker for `[[ ## completed ## ]]`.")


def test_chat_format_multiline_instructions_and_typed_inputs() -> None:
    sig = make_signature("context: list[str], k: int, data: dict[str, int] -> answer", "Line one.\nLine two.")
    system, user = (
        m["content"]
        for m in ChatAdapter().format(sig, [], {"context": ["p1", "p2"], "k": 3, "data": {"a": 1}})
    )
    assert system.endswith("your objective is: \n        Line one.\n        Line two.")
    assert '[[ ## context ## ]]\n["p1", "p2"]' in user and "[[ ## k ## ]]\n3" in user
    assert '[[ ## data ## ]]\n{"a": 1}' in user


def test_chat_format_demos_complete_and_incomplete() -> None:
    demos = [
        {"question": "1+1?", "reasoning": "add", "answer": "2"},
        Example(question="2+2?", answer="4"),  # no reasoning: incomplete
        {"question": "no outputs"},  # skipped: nothing to show as an answer
    ]
    messages = ChatAdapter().format(QA, demos, {"question": "3+3?"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    incomplete_user, incomplete_assistant, user, assistant = (m["content"] for m in messages[1:5])
    assert incomplete_user == (
        "This is an example of the task, though some input or output fields are not supplied.\n\n"
        "[[ ## question ## ]]\n2+2?"
    )
    assert incomplete_assistant == (
        "[[ ## reasoning ## ]]\nNot supplied for this particular example. \n\n"
        "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]\n"
    )
    assert user == "[[ ## question ## ]]\n1+1?"
    assert assistant == "[[ ## reasoning ## ]]\nadd\n\n[[ ## answer ## ]]\n2\n\n[[ ## completed ## ]]\n"
    assert messages[-1]["content"].endswith(CHAT_CLOSING_TWO)


def test_list_given_for_a_str_input_is_a_numbered_list() -> None:
    user = ChatAdapter().format(
        Signature("context, question -> answer"), [], {"context": ["a", "b"], "question": "q"}
    )
    assert "[[ ## context ## ]]\n[1] «a»\n[2] «b»" in user[-1]["content"]


def test_json_format_messages() -> None:
    messages = JSONAdapter().format(
        QA, [{"question": "1+1?", "reasoning": "add", "answer": "2"}], {"question": "q"}
    )
    system = messages[0]["content"]
    assert "Your input fields are:\n1. `question` (str)" in system
    assert "Outputs will be a JSON object with the following fields." in system
    assert '"answer": "{answer}"' in system
    assert system.endswith("your objective is: \n        Answer questions with short factoid answers.")
    assert json.loads(messages[2]["content"]) == {"reasoning": "add", "answer": "2"}
    assert messages[-1]["content"] == (
        "[[ ## question ## ]]\nq\n\n"
        "Respond with a JSON object in the following order of fields: `reasoning`, then `answer`."
    )
    one = JSONAdapter().format(Signature("question -> answer"), [], {"question": "q"})[-1]["content"]
    assert one.endswith("Respond with a JSON object in the following order of fields: `answer`.")


# ------------------------------------------------------------------------------------------- parse


def test_chat_parse_tolerates_prose_spacing_unknown_markers_and_duplicates() -> None:
    completion = (
        "Sure, here you go.\n[[ ## reasoning ## ]]\nsimple\n[[ ## note ## ]]\nignored\n"
        "[[##answer##]]   Paris  \n\n[[ ## answer ## ]]\nLyon"
    )
    assert ChatAdapter().parse(QA, completion) == {"reasoning": "simple", "answer": "Paris"}


def test_chat_markers_must_start_a_line_and_completed_ends_a_value() -> None:
    sig = Signature("question -> answer, tags: list[str]")
    completion = (
        '[[ ## answer ## ]] Paris [[ ## completed ## ]]\n[[ ## tags ## ]]\n["see [[ ## answer ## ]]"]'
    )
    assert ChatAdapter().parse(sig, completion) == {"answer": "Paris", "tags": ["see [[ ## answer ## ]]"]}
    quoted = "[[ ## answer ## ]]\nthe marker [[ ## tags ## ]] is quoted here\n  [[ ## tags ## ]]\n[]"
    assert ChatAdapter().parse(sig, quoted) == {
        "answer": "the marker [[ ## tags ## ]] is quoted here",
        "tags": [],
    }


def test_chat_parse_missing_and_invalid_fields() -> None:
    sig = Signature("q -> reasoning, n: int, label: Literal['a', 'b']")
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(sig, "[[ ## reasoning ## ]]\nok\n\n[[ ## n ## ]]\nforty\n\n[[ ## completed ## ]]")
    error = info.value
    assert error.adapter_name == "ChatAdapter" and error.signature is sig
    assert error.missing_fields == ["n", "label"]
    assert error.parsed_result == {"reasoning": "ok"}
    assert error.lm_response.endswith("[[ ## completed ## ]]")
    assert str(error).startswith(
        "Failed to parse field n with value forty from the LM response. Error message: expected int, "
    )
    assert str(error).endswith(
        "Expected to find output fields in the LM response: [reasoning, n, label] \n\n"
        "Actual output fields parsed from the LM response: [reasoning] \n\n"
    )


@pytest.mark.parametrize(("annotation", "value"), TYPED_VALUES)
def test_chat_round_trip(annotation: Any, value: Any) -> None:
    sig = one_output(annotation)
    adapter = ChatAdapter()
    completion = f"[[ ## out ## ]]\n{format_value(value, annotation)}\n\n[[ ## completed ## ]]"
    assert adapter.parse(sig, completion) == {"out": value}
    if value is not None:  # a demo's assistant turn is written exactly the way the LM should answer
        assert adapter.parse(sig, adapter.format_assistant_message_content(sig, {"out": value})) == {
            "out": value
        }


@pytest.mark.parametrize(("annotation", "value"), TYPED_VALUES)
def test_json_round_trip(annotation: Any, value: Any) -> None:
    sig = one_output(annotation)
    adapter = JSONAdapter()
    assert adapter.parse(sig, json.dumps({"out": to_jsonable(value)})) == {"out": value}
    assert adapter.parse(sig, adapter.format_assistant_message_content(sig, {"out": value})) == {"out": value}


def test_round_trip_of_every_type_at_once() -> None:
    sig = all_outputs()
    values = {f"f{i}": value for i, (_, value) in enumerate(TYPED_VALUES)}
    chat = ChatAdapter()
    assert chat.parse(sig, chat.format_assistant_message_content(sig, values)) == values
    json_adapter = JSONAdapter()
    assert json_adapter.parse(sig, json_adapter.format_assistant_message_content(sig, values)) == values


@pytest.mark.parametrize(
    ("annotation", "text", "expected"),
    [
        (int, " 42 ", 42),
        (int, "42.0", 42),
        (float, "7", 7.0),
        (bool, "true", True),
        (bool, "False", False),
        (list[str], "['a', 'b']", ["a", "b"]),  # Python literal
        (list[int], "```json\n[1, 2]\n```", [1, 2]),  # code fence
        (dict[str, int], "{'a': 1}", {"a": 1}),
        (Literal["yes", "no"], "'yes'", "yes"),
        (Literal["yes", "no"], "Literal['no']", "no"),
        (Literal["yes", "no"], '"no"', "no"),
        (int | None, "null", None),
        (int | None, "", None),
        (Point, '{"x": 1, "label": "a"}', Point(x=1, label="a")),
        (Color, "red", Color.RED),
        (Color, "BLUE", Color.BLUE),  # by member name
    ],
)
def test_parse_value_is_forgiving_about_form(annotation: Any, text: str, expected: Any) -> None:
    assert parse_value(text, annotation) == expected


@pytest.mark.parametrize(
    ("annotation", "text", "message"),
    [
        (int, "forty", "expected int"),
        (int, "4.5", "expected int"),
        (int, "true", "expected int, got the boolean True"),
        (float, "abc", "expected float"),
        (list[str], "not a list", "expected list\\[str\\]"),
        (Literal["yes", "no"], "maybe", "expected one of 'yes', 'no'"),
        (Point, '{"x": "one"}', "expected Point"),
    ],
)
def test_parse_value_is_strict_about_content(annotation: Any, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_value(text, annotation)


def test_json_parse_tolerates_fences_prose_and_extra_keys() -> None:
    completion = 'Here it is:\n```json\n{"reasoning": "r", "answer": "Paris", "extra": 1}\n```\nDone.'
    assert JSONAdapter().parse(QA, completion) == {"reasoning": "r", "answer": "Paris"}
    prose = 'I considered {braces} first. {"reasoning": "r", "answer": "x"} trailing'
    assert JSONAdapter().parse(QA, prose) == {"reasoning": "r", "answer": "x"}
    assert JSONAdapter().parse(QA, "{'reasoning': 'r', 'answer': 'py'}") == {"reasoning": "r", "answer": "py"}


def test_json_parse_coerces_values() -> None:
    sig = Signature("q -> n: int, text, items: list[str]")
    parsed = JSONAdapter().parse(sig, '{"n": "42", "text": 7, "items": "[\\"a\\"]"}')
    assert parsed == {"n": 42, "text": "7", "items": ["a"]}


def test_json_parse_errors() -> None:
    with pytest.raises(AdapterParseError, match="cannot be serialized to a JSON object") as info:
        JSONAdapter().parse(QA, '[{"reasoning": "r", "answer": "a"}]')
    assert info.value.adapter_name == "JSONAdapter" and info.value.missing_fields == ["reasoning", "answer"]
    assert info.value.parsed_result is None
    with pytest.raises(AdapterParseError, match="cannot be serialized to a JSON object"):
        JSONAdapter().parse(QA, "just text")
    with pytest.raises(AdapterParseError) as info:
        JSONAdapter().parse(QA, '{"answer": "a"}')
    assert info.value.missing_fields == ["reasoning"] and info.value.parsed_result == {"answer": "a"}
    with pytest.raises(AdapterParseError, match="expected str, got null"):
        JSONAdapter().parse(Signature("q -> answer"), '{"answer": null}')


# ------------------------------------------------------------------------------------------- acall


CHAT_ANSWER = "[[ ## reasoning ## ]]\nbecause\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


async def test_acall_formats_calls_and_parses_every_choice() -> None:
    lm = ScriptedLM([CHAT_ANSWER, CHAT_ANSWER.replace("Paris", "Lyon")])
    outputs = await ChatAdapter().acall(lm, {"n": 2, "temperature": 1.0}, QA, [], {"question": "q"})
    assert outputs == [
        {"reasoning": "because", "answer": "Paris"},
        {"reasoning": "because", "answer": "Lyon"},
    ]
    (call,) = lm.calls
    assert call["n"] == 2 and call["temperature"] == 1.0 and "response_format" not in call
    assert call["messages"][-1]["content"].endswith(CHAT_CLOSING_TWO)


def test_sync_call() -> None:
    lm = ScriptedLM(CHAT_ANSWER)
    assert ChatAdapter()(lm, {}, QA, [], {"question": "q"}) == [{"reasoning": "because", "answer": "Paris"}]


async def test_malformed_chat_answer_falls_back_to_json(caplog: pytest.LogCaptureFixture) -> None:
    lm = ScriptedLM("I will not use markers.", '{"reasoning": "r", "answer": "Paris"}')
    with caplog.at_level(logging.WARNING, logger="bestofn_core.adapters.chat_adapter"):
        outputs = await ChatAdapter().acall(lm, {"temperature": 0.5}, QA, [], {"question": "q"})
    assert outputs == [{"reasoning": "r", "answer": "Paris"}]
    assert len(lm.calls) == 2
    first, second = lm.calls
    assert "response_format" not in first
    assert second["response_format"] == {"type": "json_object"} and second["temperature"] == 0.5
    assert second["messages"][-1]["content"].endswith(
        "Respond with a JSON object in the following order of fields: `reasoning`, then `answer`."
    )
    assert "retrying once with JSONAdapter" in caplog.text


class SchemaLM(ScriptedLM):
    """A ScriptedLM whose backend honours a JSON-schema ``response_format`` (grammar-constrained)."""

    supports_response_schema = True


async def test_json_adapter_sends_the_output_schema_when_the_lm_honours_one() -> None:
    signature = make_signature(
        "question -> reasoning, answer: int, point: Point", custom_types={"Point": Point}
    )
    lm = SchemaLM('{"reasoning": "r", "answer": 3, "point": {"x": 1, "label": "a"}}')
    outputs = await JSONAdapter().acall(lm, {}, signature, [], {"question": "q"})
    assert outputs == [{"reasoning": "r", "answer": 3, "point": Point(x=1, label="a")}]
    response_format = lm.calls[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "DSPyProgramOutputs"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["reasoning", "answer", "point"] and schema["additionalProperties"] is False
    assert schema["properties"]["reasoning"] == {"type": "string", "title": "Reasoning"}
    assert schema["properties"]["answer"] == {"type": "integer", "title": "Answer"}
    assert schema["properties"]["point"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Point"]["required"] == ["x", "label"]
    # a response_format the caller chose is kept, schema or not
    lm = SchemaLM('{"reasoning": "r", "answer": 3, "point": {"x": 1, "label": "a"}}')
    await JSONAdapter().acall(
        lm, {"response_format": {"type": "json_object"}}, signature, [], {"question": "q"}
    )
    assert lm.calls[0]["response_format"] == {"type": "json_object"}


def test_output_schema_closes_nested_objects() -> None:
    from bestofn_core.adapters.structured_output import structured_response_format

    signature = make_signature("question -> points: list[Point]", custom_types={"Point": Point})
    schema = structured_response_format(signature)["json_schema"]["schema"]
    assert schema["properties"]["points"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Point"},
        "title": "Points",
    }
    assert schema["$defs"]["Point"]["required"] == ["x", "label"]
    assert schema["$defs"]["Point"]["additionalProperties"] is False
    # each call gets its own copy: changing one never changes the next request
    schema["$defs"].clear()
    assert structured_response_format(signature)["json_schema"]["schema"]["$defs"]


async def test_an_output_type_without_a_schema_gets_json_mode_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Opaque:
        """A type pydantic cannot describe."""

    signature = make_signature({"q": (str, InputField()), "out": (Opaque, OutputField())})
    lm = SchemaLM('{"out": "x"}')
    with (
        caplog.at_level(logging.WARNING, logger="bestofn_core.adapters.json_adapter"),
        pytest.raises(AdapterParseError, match="cannot be read from text"),
    ):
        await JSONAdapter().acall(lm, {}, signature, [], {"q": "q"})
    assert lm.calls[0]["response_format"] == {"type": "json_object"}
    assert "Failed to use structured output format, falling back to JSON mode" in caplog.text


async def test_chat_adapter_fallback_asks_a_schema_lm_for_its_schema() -> None:
    lm = SchemaLM("no markers", '{"reasoning": "r", "answer": "Paris"}')
    assert await ChatAdapter().acall(lm, {}, QA, [], {"question": "q"}) == [
        {"reasoning": "r", "answer": "Paris"}
    ]
    assert "response_format" not in lm.calls[0]
    assert lm.calls[1]["response_format"]["json_schema"]["name"] == "DSPyProgramOutputs"


async def test_both_adapters_failing_raises_with_both_texts() -> None:
    lm = ScriptedLM("[[ ## reasoning ## ]]\nonly reasoning", "still not JSON")
    with pytest.raises(AdapterParseError) as info:
        await ChatAdapter().acall(lm, {}, QA, [], {"question": "q"})
    error = info.value
    assert error.adapter_name == "ChatAdapter->JSONAdapter"
    assert error.lm_response == "still not JSON"
    assert error.missing_fields == ["reasoning", "answer"]
    assert "only reasoning" in str(error) and "still not JSON" in str(error)
    assert isinstance(error.__cause__, AdapterParseError)
    assert error.__cause__.adapter_name == "ChatAdapter" and error.__cause__.missing_fields == ["answer"]
    assert len(lm.calls) == 2


async def test_no_fallback_when_disabled() -> None:
    lm = ScriptedLM("garbage")
    with pytest.raises(AdapterParseError) as info:
        await ChatAdapter(use_json_adapter_fallback=False).acall(lm, {}, QA, [], {"question": "q"})
    assert info.value.adapter_name == "ChatAdapter" and len(lm.calls) == 1


async def test_lm_errors_propagate_without_fallback() -> None:
    lm = ScriptedLM(LMServerError("boom", status_code=503))
    with pytest.raises(LMServerError, match="boom"):
        await ChatAdapter().acall(lm, {}, QA, [], {"question": "q"})
    assert len(lm.calls) == 1


async def test_json_adapter_keeps_callers_response_format_and_does_not_fall_back() -> None:
    schema_format = {"type": "json_schema", "json_schema": {"name": "x"}}
    lm = ScriptedLM('{"reasoning": "r", "answer": "a"}', "garbage")
    adapter = JSONAdapter()
    kwargs = {"response_format": schema_format}
    assert await adapter.acall(lm, kwargs, QA, [], {"question": "q"}) == [{"reasoning": "r", "answer": "a"}]
    assert lm.calls[0]["response_format"] == schema_format
    with pytest.raises(AdapterParseError) as info:
        await adapter.acall(lm, {}, QA, [], {"question": "q"})
    assert info.value.adapter_name == "JSONAdapter" and len(lm.calls) == 2


def test_base_adapter_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Adapter().format(QA, [], {})
    with pytest.raises(NotImplementedError):
        Adapter().parse(QA, "")


# ------------------------------------------------------------------------------------------- callbacks


class Recorder(BaseCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("format_start", type(instance).__name__, inputs))

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.events.append(("format_end", outputs, exception))

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("parse_start", type(instance).__name__, inputs))

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.events.append(("parse_end", outputs, exception))


def test_callbacks_hear_format_and_parse() -> None:
    recorder = Recorder()
    with context(callbacks=[recorder]):
        ChatAdapter()(ScriptedLM(CHAT_ANSWER), {}, QA, [], {"question": "q"})
    assert [event[0] for event in recorder.events] == [
        "format_start",
        "format_end",
        "parse_start",
        "parse_end",
    ]
    format_start, format_end, parse_start, parse_end = recorder.events
    assert format_start[1] == "ChatAdapter" and format_start[2]["inputs"] == {"question": "q"}
    assert format_start[2]["signature"] is QA
    assert isinstance(format_end[1], list) and format_end[2] is None
    assert parse_start[2]["completion"] == CHAT_ANSWER
    assert parse_end[1] == {"reasoning": "because", "answer": "Paris"}


async def test_callbacks_hear_the_failed_parse_and_the_fallback() -> None:
    recorder = Recorder()
    lm = ScriptedLM("garbage", '{"reasoning": "r", "answer": "a"}')
    await ChatAdapter(callbacks=[recorder]).acall(lm, {}, QA, [], {"question": "q"})
    names = [(event[0], event[1] if event[0].endswith("start") else None) for event in recorder.events]
    assert names == [
        ("format_start", "ChatAdapter"),
        ("format_end", None),
        ("parse_start", "ChatAdapter"),
        ("parse_end", None),
        ("format_start", "JSONAdapter"),
        ("format_end", None),
        ("parse_start", "JSONAdapter"),
        ("parse_end", None),
    ]
    assert isinstance(recorder.events[3][2], AdapterParseError)  # the ChatAdapter parse failed
    assert recorder.events[7][1] == {"reasoning": "r", "answer": "a"}

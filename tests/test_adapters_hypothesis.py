"""Property: whatever text the LM returns, parse gives every output field or raises AdapterParseError."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

from bestofn_core.adapters import ChatAdapter, JSONAdapter
from bestofn_core.adapters.template_copy import template_copy
from bestofn_core.errors import AdapterParseError
from bestofn_core.signatures import InputField, OutputField, make_signature


class Point(pydantic.BaseModel):
    x: int
    label: str


SIGNATURE = make_signature(
    {
        "question": (str, InputField()),
        "answer": (str, OutputField()),
        "n": (int, OutputField()),
        "score": (float, OutputField()),
        "ok": (bool, OutputField()),
        "tags": (list[str], OutputField()),
        "counts": (dict[str, int], OutputField()),
        "choice": (Literal["a", "b"], OutputField()),
        "point": (Point, OutputField()),
        "maybe": (int | None, OutputField()),
    }
)
NAMES = list(SIGNATURE.output_fields)

# Pieces that steer random text toward the parsers' interesting paths: markers, braces, JSON and literals.
FRAGMENTS = st.sampled_from(
    [
        *(f"[[ ## {name} ## ]]\n" for name in [*NAMES, "completed", "unknown"]),
        "[[##answer##]]",
        "{",
        "}",
        "[",
        "]",
        '"',
        "'",
        "```json\n",
        "```",
        ":",
        ",",
        "null",
        "None",
        "true",
        "NaN",
        "1e999",
        "9" * 50,
        '{"answer": "x", "n": 1}',
        '{"point": {"x": 1, "label": "p"}}',
        "['a', 'b']",
        "{'a': 1}",
        "Literal['a']",
        *(f'"{name}": ' for name in NAMES),
    ]
)
TEXTS = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=20)), max_size=40).map("".join),
)


def _check(adapter: Any, text: str) -> None:
    try:
        result = adapter.parse(SIGNATURE, text)
    except AdapterParseError:
        return
    assert isinstance(result, dict) and list(result) == NAMES


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_chat_parse_returns_all_fields_or_raises_adapter_parse_error(text: str) -> None:
    _check(ChatAdapter(), text)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_json_parse_returns_all_fields_or_raises_adapter_parse_error(text: str) -> None:
    _check(JSONAdapter(), text)


# Text that cannot start a line with a marker: a value that did would be read as a field (as in DSPy).
PLAIN_TEXT = st.text().filter(lambda text: "[[" not in text)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            # a value that is a field name or a placeholder is refused by design (tests/test_template_copy.py)
            "answer": PLAIN_TEXT.filter(lambda text: template_copy(text, SIGNATURE) is None),
            "n": st.integers(),
            "score": st.floats(allow_nan=False),
            "ok": st.booleans(),
            "tags": st.lists(st.text()),
            "counts": st.dictionaries(st.text(), st.integers()),
            "choice": st.sampled_from(["a", "b"]),
            "point": st.builds(Point, x=st.integers(), label=st.text()),
            "maybe": st.one_of(st.none(), st.integers()),
        }
    )
)
def test_formatted_answers_always_parse_back(values: dict[str, Any]) -> None:
    expected = {**values, "answer": values["answer"].strip()}  # text values are read stripped
    for adapter in (ChatAdapter(), JSONAdapter()):
        completion = adapter.format_assistant_message_content(SIGNATURE, values)
        assert adapter.parse(SIGNATURE, completion) == expected

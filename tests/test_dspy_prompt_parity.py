"""ChatAdapter and JSONAdapter against DSPy's own output, recorded by running DSPy 3.3.1 itself.

The cases live in ``fixtures/dspy_prompts/cases.py`` (written in DSPy's API, built here with
``bestofn_core``); ``fixtures/dspy_prompts/record_dspy_prompts.py`` recorded DSPy's messages, parse
results and parse errors into ``dspy-3.3.1.json``. Prompts must match byte for byte; parse errors must
keep DSPy's message and attributes.
"""

from __future__ import annotations

from typing import Any

import bestofn_tests_dspy_prompts as cases
import pydantic
import pytest

import bestofn_core as bon
from bestofn_core.adapters import ChatAdapter, JSONAdapter
from bestofn_core.errors import AdapterParseError

RECORDED = cases.load_recording()
ADAPTERS = {"ChatAdapter": ChatAdapter, "JSONAdapter": JSONAdapter}
PROMPT_CASES = {case.name: case for case in cases.build_cases(bon)}
PARSE_CASES = {case.name: case for case in cases.build_parse_cases(bon)}


def test_every_recorded_case_is_replayed() -> None:
    assert set(PROMPT_CASES) == set(RECORDED["prompts"])
    assert set(PARSE_CASES) == set(RECORDED["parses"])


@pytest.mark.parametrize("adapter_name", list(ADAPTERS))
@pytest.mark.parametrize("case_name", list(RECORDED["prompts"]))
def test_messages_are_dspys_byte_for_byte(case_name: str, adapter_name: str) -> None:
    case = PROMPT_CASES[case_name]
    recorded = RECORDED["prompts"][case_name]
    assert case.signature.signature == recorded["signature"]
    messages = ADAPTERS[adapter_name]().format(case.signature, case.demos, case.inputs)
    expected = recorded["messages"][adapter_name]
    assert [m["role"] for m in messages] == [m["role"] for m in expected]
    for ours, theirs in zip(messages, expected, strict=True):
        assert ours["content"] == theirs["content"]
    assert messages == expected


def _jsonable(value: Any) -> Any:
    return pydantic.TypeAdapter(Any).dump_python(value, mode="json")


@pytest.mark.parametrize(
    ("case_name", "adapter_name"),
    [(name, adapter) for name, by_adapter in RECORDED["parses"].items() for adapter in by_adapter],
)
def test_parse_results_and_errors_are_dspys(case_name: str, adapter_name: str) -> None:
    case = PARSE_CASES[case_name]
    recorded = RECORDED["parses"][case_name][adapter_name]
    adapter = ADAPTERS[adapter_name]()
    if "result" in recorded:
        assert _jsonable(adapter.parse(case.signature, case.completion)) == recorded["result"]
        return
    expected = recorded["error"]
    with pytest.raises(AdapterParseError) as info:
        adapter.parse(case.signature, case.completion)
    error = info.value
    assert error.adapter_name == expected["adapter_name"]
    assert error.lm_response == expected["lm_response"]
    assert _jsonable(error.parsed_result) == expected["parsed_result"]
    assert str(error) == expected["str"]

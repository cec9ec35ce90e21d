"""The structured-output rewards, called directly: valid_json, json_schema, pydantic_model."""

from __future__ import annotations

import sys
import types
import urllib.request
from typing import Any

import pydantic
import pytest
from bestofn_rewards import MissingFieldError, json_schema, pydantic_model, valid_json

import bestofn_core as bon


def score(reward: Any, answer: Any) -> float:
    return reward({}, bon.Prediction(answer=answer))


class Person(pydantic.BaseModel):
    name: str
    age: int


PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


# ---------------------------------------------------------------- valid_json


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", '"text"', "42", "null", "true", ' \n{"a": [ ]}\n '])
def test_valid_json_accepts_json_text(text: str) -> None:
    assert score(valid_json(), text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "{'a': 1}",  # Python, not JSON
        '{"a": 1',
        "",
        "hello",
        "NaN",  # Python's json would accept these; JSON does not
        '{"a": Infinity}',
        '```json\n{"a": 1}\n```',  # a Markdown fence is not JSON
    ],
)
def test_valid_json_rejects_what_is_not_json(text: str) -> None:
    assert score(valid_json(), text) == 0.0


def test_valid_json_checks_already_parsed_values() -> None:
    assert score(valid_json(), {"a": [1, 2.5, None]}) == 1.0
    assert score(valid_json(), 3) == 1.0
    assert score(valid_json(), Person(name="a", age=1)) == 1.0
    assert score(valid_json(), {"a": {1, 2}}) == 0.0  # a set has no JSON form
    assert score(valid_json(), float("nan")) == 0.0


def test_valid_json_names_a_missing_field() -> None:
    with pytest.raises(MissingFieldError, match="'data'.*its fields are: answer"):
        valid_json(field="data")({}, bon.Prediction(answer="{}"))


# ---------------------------------------------------------------- json_schema


def test_json_schema_validates_json_text_and_parsed_values() -> None:
    reward = json_schema(PERSON_SCHEMA)
    assert score(reward, '{"name": "Ada", "age": 36}') == 1.0
    assert score(reward, '{"name": "Ada"}') == 0.0  # required field missing
    assert score(reward, '{"name": "Ada", "age": -1}') == 0.0  # minimum
    assert score(reward, '{"name": "Ada", "age": "36"}') == 0.0  # no coercion in JSON Schema
    assert score(reward, "not json") == 0.0
    assert score(reward, {"name": "Ada", "age": 36}) == 1.0
    assert score(reward, Person(name="Ada", age=36)) == 1.0


def test_json_schema_resolves_local_refs() -> None:
    schema = {
        "$defs": {"point": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}},
        "type": "array",
        "items": {"$ref": "#/$defs/point"},
    }
    assert score(json_schema(schema), "[[0, 1], [2.5, 3]]") == 1.0
    assert score(json_schema(schema), "[[0, 1, 2]]") == 0.0


def test_json_schema_never_fetches_a_remote_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[Any] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: fetched.append(args))
    reward = json_schema({"$ref": "https://example.invalid/schema.json"})
    with pytest.raises(ValueError, match=r"\$ref 'https://example.invalid/schema.json' cannot be resolved"):
        score(reward, "1")
    assert fetched == []


def test_json_schema_follows_the_draft_named_by_dollar_schema() -> None:
    # Draft 4's boolean exclusiveMaximum is a schema error in later drafts.
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": True}
    assert score(json_schema(draft4), "4") == 1.0
    assert score(json_schema(draft4), "5") == 0.0
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        json_schema({"maximum": 5, "exclusiveMaximum": True})


def test_json_schema_checks_the_schema_when_built() -> None:
    with pytest.raises(ValueError, match="schema is not a valid JSON Schema: 'nope' is not valid"):
        json_schema({"type": "nope"})
    with pytest.raises(TypeError, match="schema must be a JSON Schema document .* json.loads"):
        json_schema('{"type": "object"}')  # type: ignore[arg-type]


def test_json_schema_is_named_without_the_whole_schema() -> None:
    reward = json_schema(PERSON_SCHEMA, field="person")
    assert reward.__name__ == "json_schema(schema={...}, field='person')"  # type: ignore[attr-defined]


# ---------------------------------------------------------------- pydantic_model


def test_pydantic_model_validates_json_text_dicts_and_instances() -> None:
    reward = pydantic_model(Person)
    assert score(reward, '{"name": "Ada", "age": 36}') == 1.0
    assert score(reward, '{"name": "Ada", "age": "36"}') == 1.0  # pydantic's lax mode coerces
    assert score(reward, '{"name": "Ada"}') == 0.0
    assert score(reward, "not json") == 0.0
    assert score(reward, {"name": "Ada", "age": 36}) == 1.0
    assert score(reward, {"name": "Ada", "age": "old"}) == 0.0
    assert score(reward, Person(name="Ada", age=36)) == 1.0
    assert score(reward, None) == 0.0


def test_pydantic_model_strict_turns_off_coercion() -> None:
    reward = pydantic_model(Person, strict=True)
    assert score(reward, '{"name": "Ada", "age": 36}') == 1.0
    assert score(reward, '{"name": "Ada", "age": "36"}') == 0.0
    with pytest.raises(TypeError, match="strict must be True or False"):
        pydantic_model(Person, strict="yes")  # type: ignore[arg-type]


def test_pydantic_model_takes_an_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bestofn_rewards_test_models")
    module.Person = Person  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for path in ("bestofn_rewards_test_models:Person", "bestofn_rewards_test_models.Person"):
        assert score(pydantic_model(path), '{"name": "Ada", "age": 36}') == 1.0


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        ("no_such_module_xyz:Model", ValueError, "cannot import 'no_such_module_xyz'"),
        ("pydantic:NoSuchModel", ValueError, "module 'pydantic' has no 'NoSuchModel'"),
        ("Person", ValueError, "is not an import path"),
        ("json:dumps", TypeError, "must be a pydantic.BaseModel subclass"),
        (dict, TypeError, "must be a pydantic.BaseModel subclass .* got dict"),
        (Person(name="a", age=1), TypeError, "got Person"),
        (PERSON_SCHEMA, TypeError, "For a JSON Schema dict use text:json_schema"),
    ],
)
def test_pydantic_model_checks_the_model(model: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        pydantic_model(model)

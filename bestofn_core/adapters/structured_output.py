"""Structured outputs: the JSON-schema ``response_format`` that ``JSONAdapter`` asks a provider for.

The request is the one DSPy 3.3.1 sends: a schema named ``DSPyProgramOutputs`` for an object holding the
signature's output fields (each with pydantic's schema for its type, a default where the field has one),
made strict the way OpenAI's Structured Outputs require (every object lists all its properties as
required and allows no others), with ``"strict": true``. Providers that honour it can only answer an
object with exactly those fields; a local backend turns it into a grammar.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any, get_origin

import pydantic

if TYPE_CHECKING:
    from bestofn_core.signatures.signature import Signature

#: The schema's name (and title), DSPy's, so that a provider sees the same request from both libraries.
SCHEMA_NAME = "DSPyProgramOutputs"

#: Plain JSON mode, for models without schema support and for outputs no strict schema can describe.
JSON_MODE: dict[str, Any] = {"type": "json_object"}


def has_open_ended_mapping(signature: type[Signature]) -> bool:
    """Whether an output is a ``dict[...]``: a strict schema must name every key, so JSON mode is used."""
    return any(get_origin(info.annotation) is dict for info in signature.output_fields.values())


def structured_response_format(signature: type[Signature]) -> dict[str, Any]:
    """``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` for the outputs.

    Raises ``ValueError`` when an output is an open-ended mapping or pydantic cannot describe its type.
    """
    return copy.deepcopy(_response_format(signature))


@functools.lru_cache(maxsize=256)
def _response_format(signature: type[Signature]) -> dict[str, Any]:
    # building a pydantic model and its schema costs milliseconds: once per signature class
    if has_open_ended_mapping(signature):
        raise ValueError(
            f"the outputs of `{signature.signature}` include an open-ended mapping (dict[...]), which a "
            "strict JSON schema cannot describe"
        )
    fields: dict[str, Any] = {
        name: (info.annotation, info.default) for name, info in signature.output_fields.items()
    }
    try:
        model = pydantic.create_model(SCHEMA_NAME, __config__=pydantic.ConfigDict(extra="forbid"), **fields)
        schema: dict[str, Any] = model.model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ValueError(f"no JSON schema for the outputs of `{signature.signature}`: {exc}") from exc
    _close_objects(schema)
    _make_strict(schema, schema)
    return {"type": "json_schema", "json_schema": {"schema": schema, "name": SCHEMA_NAME, "strict": True}}


def _close_objects(schema: dict[str, Any]) -> None:
    """Every object (in properties, array items and definitions) requires all its properties and allows
    no other; an object without properties gets none."""
    if schema.get("type") == "object":
        properties = schema.setdefault("properties", {})
        schema["required"] = list(properties)
        schema["additionalProperties"] = False
        for sub_schema in properties.values():
            if isinstance(sub_schema, dict):
                _close_objects(sub_schema)
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        _close_objects(schema["items"])
    for key in ("$defs", "definitions"):
        for definition in schema.get(key, {}).values():
            _close_objects(definition)


def _make_strict(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's strict-mode rules, everywhere (unions and intersections included): objects closed with
    all properties required, ``null`` defaults dropped, a ``$ref`` with sibling keys inlined."""
    for key in ("$defs", "definitions"):
        for definition in schema.get(key, {}).values():
            _make_strict(definition, root)
    if schema.get("type") == "object":
        schema.setdefault("additionalProperties", False)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        schema["required"] = list(properties)
        schema["properties"] = {name: _make_strict(sub, root) for name, sub in properties.items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _make_strict(schema["items"], root)
    if isinstance(schema.get("anyOf"), list):
        schema["anyOf"] = [_make_strict(variant, root) for variant in schema["anyOf"]]
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            schema.update(_make_strict(all_of[0], root))
            schema.pop("allOf")
        else:
            schema["allOf"] = [_make_strict(part, root) for part in all_of]
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    ref = schema.get("$ref")
    if isinstance(ref, str) and len(schema) > 1:
        # a $ref may not have siblings (e.g. a description): inline what it points to
        schema.update({**_resolve(root, ref), **schema})
        del schema["$ref"]
        return _make_strict(schema, root)
    return schema


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"unexpected $ref {ref!r} in an output schema")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    if not isinstance(target, dict):
        raise ValueError(f"$ref {ref!r} does not point to a schema")
    return target

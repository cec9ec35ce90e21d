"""Structured-output rewards: valid JSON, valid against a JSON Schema, valid for a pydantic model.

Factories, like those in ``bestofn_rewards.text``. A field holding a string is read as JSON text (the
model's raw output); a field already parsed by a typed signature (a dict, a list, a number, a pydantic
model instance) is checked as it is. JSON text here is strict: ``NaN``/``Infinity`` and Markdown code
fences around the JSON are not valid.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

import pydantic

from bestofn_rewards._common import Reward, check_bool, check_field, describe, named, output_value

__all__ = ["json_schema", "pydantic_model", "valid_json"]


class _InvalidJSON(Exception):
    """The field's text is not JSON (internal: it scores 0.0, it is not an error)."""


class _Elided:
    def __repr__(self) -> str:
        return "{...}"


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON: a strict parser would refuse them.
    raise ValueError(f"{name} is not valid JSON")


def _json_value(value: Any) -> Any:
    """``value`` as a JSON value: strings parsed strictly, pydantic models dumped, the rest as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value, parse_constant=_reject_constant)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise _InvalidJSON(str(exc)) from exc
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    return value


def valid_json(*, field: str = "answer") -> Reward:
    """1.0 when ``field`` is valid JSON, else 0.0.

    A string must parse as JSON; a value a typed signature already parsed counts as valid when it is a
    JSON value (dicts, lists, strings, finite numbers, booleans, ``None``, pydantic models).
    """
    check_field("valid_json", field)
    label = describe("valid_json", {"field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        value = output_value(prediction, field, label)
        try:
            parsed = _json_value(value)
        except _InvalidJSON:
            return 0.0
        if isinstance(value, str):
            return 1.0
        try:
            json.dumps(parsed, allow_nan=False)
        except (TypeError, ValueError):
            return 0.0
        return 1.0

    return named(reward, label)


def json_schema(schema: Mapping[str, Any], *, field: str = "answer") -> Reward:
    """1.0 when ``field`` is JSON that validates against the JSON Schema ``schema``, else 0.0.

    ``schema`` is a JSON Schema document (a dict); its ``$schema`` picks the draft (default: the latest
    the installed ``jsonschema`` supports). It is checked when the reward is built, so a malformed schema
    is a ``ValueError`` then. ``format`` is an annotation, not checked (the JSON Schema default). No remote
    ``$ref`` is ever fetched: scoring with a schema whose ``$ref`` cannot be resolved raises ``ValueError``.
    """
    # Imported here, not at module level: the plugin module is imported whenever the registry is built,
    # and only users of this reward should pay for jsonschema's import.
    import jsonschema
    import jsonschema.validators
    import referencing.exceptions
    from jsonschema_specifications import REGISTRY as METASCHEMAS

    if not isinstance(schema, Mapping):
        raise TypeError(
            f"json_schema: schema must be a JSON Schema document (a dict), got {type(schema).__name__}. "
            "Parse a schema kept as text with json.loads first."
        )
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_schema: schema is not a valid JSON Schema: {exc.message}.") from exc
    # An explicit registry (the JSON Schema meta-schemas only) turns off jsonschema's deprecated fallback
    # that downloads remote $refs: scoring an answer must never make a network request.
    validator = validator_class(schema, registry=METASCHEMAS)
    check_field("json_schema", field)
    # The schema can be long: messages name the reward, not the whole document.
    label = describe("json_schema", {"schema": _Elided(), "field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        try:
            value = _json_value(output_value(prediction, field, label))
        except _InvalidJSON:
            return 0.0
        try:
            return 1.0 if validator.is_valid(value) else 0.0
        except referencing.exceptions.Unresolvable as exc:
            # A broken schema, not a bad answer: an error, so it is not mistaken for a low score.
            raise ValueError(
                f"Reward {label}: the schema's $ref {exc.ref!r} cannot be resolved (remote references are "
                "never fetched); put the referenced schema under $defs and refer to it as '#/$defs/<name>'."
            ) from exc

    return named(reward, label)


def pydantic_model(
    model: type[pydantic.BaseModel] | str, *, strict: bool = False, field: str = "answer"
) -> Reward:
    """1.0 when ``field`` validates as an instance of the pydantic model ``model``, else 0.0.

    ``model`` is a ``pydantic.BaseModel`` subclass, or its import path as a string (``"pkg.mod:Model"`` or
    ``"pkg.mod.Model"``). Pass the string when the BestOfN will be saved: a saved reward keeps its
    parameters as JSON, which a class is not. A string field is validated as JSON text
    (``model_validate_json``), any other value with ``model_validate``. ``strict=True`` turns off pydantic's
    type coercion (``"3"`` is then not an int).
    """
    model_class = _model_class(model)
    check_bool("pydantic_model", strict, "strict")
    check_field("pydantic_model", field)
    label = describe("pydantic_model", {"model": model, "strict": strict, "field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        value = output_value(prediction, field, label)
        try:
            if isinstance(value, str):
                model_class.model_validate_json(value, strict=strict)
            else:
                model_class.model_validate(value, strict=strict)
        except pydantic.ValidationError:
            return 0.0
        return 1.0

    return named(reward, label)


def _model_class(model: Any) -> type[pydantic.BaseModel]:
    if isinstance(model, str):
        model = _import_object(model)
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return model
    shown = model.__qualname__ if isinstance(model, type) else type(model).__name__
    raise TypeError(
        f"pydantic_model: model must be a pydantic.BaseModel subclass (or its import path as a string, "
        f"'package.module:Model'), got {shown}. For a JSON Schema dict use text:json_schema."
    )


def _import_object(path: str) -> Any:
    """The object at ``"pkg.mod:Name"`` (or ``"pkg.mod.Name"``); ``ValueError`` saying why not."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"pydantic_model: model {path!r} is not an import path; write 'package.module:Model'."
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"pydantic_model: cannot import {module_name!r} (from model={path!r}): {exc}."
        ) from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(
                f"pydantic_model: module {module_name!r} has no {attribute!r} (from model={path!r})."
            ) from None
    return found

"""``InputField`` / ``OutputField``: pydantic fields that know which side of a signature they are on.

A signature field is a plain pydantic ``FieldInfo`` whose ``json_schema_extra`` carries the field kind
(``FIELD_TYPE_KEY``), a description (``desc``) and a display prefix (``prefix``), exactly where DSPy keeps
them, so saved state and prompts look the same. Defaults for ``desc`` and ``prefix`` depend on the field's
name, which a field does not know until its signature class is built: ``with_defaults`` fills them then.
"""

from __future__ import annotations

import copy
import inspect
import re
from typing import Any, Literal

import pydantic
from pydantic.fields import FieldInfo

#: The ``json_schema_extra`` key that marks a field as an input or an output.
FIELD_TYPE_KEY = "__bestofn_field_type"
#: The ``json_schema_extra`` key that marks a field declared without a type (typed ``str`` by default), so
#: that its values are never reported as not matching ``str`` (where DSPy keeps the same mark).
TYPE_UNDEFINED_KEY = "__bestofn_type_undefined"

FieldKind = Literal["input", "output"]

# Everything pydantic.Field accepts goes to pydantic; any other keyword is prompt metadata (DSPy's rule).
_PYDANTIC_FIELD_ARGS = frozenset(inspect.signature(pydantic.Field).parameters) - {"json_schema_extra"}

# DSPy shows numeric and length constraints to the LM in words; keep the same wording.
_CONSTRAINT_WORDS = {
    "gt": "greater than",
    "ge": "greater than or equal to",
    "lt": "less than",
    "le": "less than or equal to",
    "multiple_of": "a multiple of",
    "min_length": "minimum length",
    "max_length": "maximum length",
}


def InputField(
    *, desc: str | None = None, prefix: str | None = None, format: Any = None, **kwargs: Any
) -> Any:
    """Declare an input field: ``question: str = InputField(desc="a trivia question")``.

    Args:
        desc: what the field holds, shown to the LM (default: ``"${name}"``, which prompts omit).
        prefix: a display label (default: the name in words, ``"Question:"``); kept for DSPy parity.
        format: an optional formatter, stored as metadata for DSPy parity.
        **kwargs: pydantic ``Field`` arguments (``default``, ``ge``, ``max_length``, ...); any other keyword
            is stored in ``json_schema_extra``.
    """
    return _make_field("input", desc=desc, prefix=prefix, format=format, **kwargs)


def OutputField(
    *, desc: str | None = None, prefix: str | None = None, format: Any = None, **kwargs: Any
) -> Any:
    """Declare an output field: ``answer: int = OutputField(desc="a single number")``.

    Takes the same arguments as ``InputField``.
    """
    return _make_field("output", desc=desc, prefix=prefix, format=format, **kwargs)


def _make_field(kind: FieldKind, *, desc: str | None, prefix: str | None, format: Any, **kwargs: Any) -> Any:
    pydantic_kwargs = {k: v for k, v in kwargs.items() if k in _PYDANTIC_FIELD_ARGS}
    extra: dict[str, Any] = dict(kwargs.get("json_schema_extra") or {})
    extra.update(
        {k: v for k, v in kwargs.items() if k not in _PYDANTIC_FIELD_ARGS and k != "json_schema_extra"}
    )
    extra[FIELD_TYPE_KEY] = kind
    if desc is None and isinstance(kwargs.get("description"), str):
        desc = kwargs["description"]
    if desc is not None:
        extra["desc"] = desc
    if prefix is not None:
        extra["prefix"] = prefix
    if format is not None:
        extra["format"] = format
    constraints = ", ".join(
        f"{words}: {kwargs[key]}" for key, words in _CONSTRAINT_WORDS.items() if key in kwargs
    )
    if constraints:
        extra["constraints"] = constraints
    return pydantic.Field(json_schema_extra=extra, **pydantic_kwargs)


def field_extra(field: FieldInfo) -> dict[str, Any]:
    """A copy of the field's ``json_schema_extra`` dict (empty when it has none or a callable)."""
    extra = field.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def field_kind(field: FieldInfo) -> FieldKind | None:
    """``"input"`` or ``"output"`` for a signature field, ``None`` for any other pydantic field."""
    kind = field_extra(field).get(FIELD_TYPE_KEY)
    return kind if kind in ("input", "output") else None


def replace_extra(field: FieldInfo, extra: dict[str, Any]) -> FieldInfo:
    """A copy of ``field`` with ``json_schema_extra`` replaced; ``field`` itself is left untouched.

    pydantic rebuilds a field from the attributes recorded in its private ``_attributes_set`` when the
    field is reused in a new model, so the new value is recorded there too, or the old one would come back.
    """
    new = copy.copy(field)
    new.json_schema_extra = extra
    attributes_set = getattr(field, "_attributes_set", None)
    if isinstance(attributes_set, dict):
        new._attributes_set = {**attributes_set, "json_schema_extra": extra}
    new.metadata = list(field.metadata)  # copy.copy shares the list; the new class must own its own
    return new


def with_defaults(name: str, field: FieldInfo) -> FieldInfo:
    """``field`` with the name-based defaults of ``desc`` and ``prefix`` filled in (copied if needed)."""
    extra = field_extra(field)
    if "desc" in extra and "prefix" in extra:
        return field
    extra.setdefault("prefix", infer_prefix(name) + ":")
    extra.setdefault("desc", default_desc(name))
    return replace_extra(field, extra)


def default_desc(name: str) -> str:
    """The placeholder description of a field that has none (``"${question}"``, as DSPy writes it)."""
    return f"${{{name}}}"


def infer_prefix(name: str) -> str:
    """Turn a field name into title-case words: ``"question"`` -> ``"Question"``,
    ``"camelCase2x"`` -> ``"Camel Case 2 X"``, ``"user_ID"`` -> ``"User ID"`` (acronyms stay upper case)."""
    spaced = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    spaced = re.sub(r"([a-zA-Z])(\d)", r"\1_\2", spaced)
    spaced = re.sub(r"(\d)([a-zA-Z])", r"\1_\2", spaced)
    words = [word if word.isupper() else word.capitalize() for word in spaced.split("_") if word]
    return " ".join(words)


def mark_untyped(field: FieldInfo) -> FieldInfo:
    """A copy of ``field`` marked as declared without a type (see ``TYPE_UNDEFINED_KEY``)."""
    return replace_extra(field, {**field_extra(field), TYPE_UNDEFINED_KEY: True})


def is_untyped(field: FieldInfo) -> bool:
    """Whether ``field`` was declared without a type (``"a -> b"``, or ``a = InputField()`` in a class)."""
    return bool(field_extra(field).get(TYPE_UNDEFINED_KEY))

"""Input type checks: a warning, as DSPy logs it, when an input's value does not match its field's type.

A mismatch is only a warning: the value is still sent (formatted as text), exactly as DSPy does, because
LMs read text and a near miss (``"3"`` for an ``int``) usually works.
``configure(warn_on_type_mismatch=False)`` turns the warning off. Fields declared without a type, and
``None`` values, are never checked.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from bestofn_core.adapters.values import annotation_name
from bestofn_core.settings import settings
from bestofn_core.signatures import Signature
from bestofn_core.signatures.field import is_untyped

logger = logging.getLogger(__name__)

_COLLECTIONS: dict[Any, type[list[Any] | set[Any] | frozenset[Any]]] = {
    list: list,
    set: set,
    frozenset: frozenset,
}


def warn_on_type_mismatches(signature: type[Signature], inputs: Mapping[str, Any]) -> None:
    """Log one warning per input whose value does not match its field's annotation (see the module doc)."""
    if not settings.warn_on_type_mismatch:
        return
    for name, field in signature.input_fields.items():
        value = inputs.get(name)
        if value is None or is_untyped(field) or value_matches(value, field.annotation):
            continue
        logger.warning(
            "Type mismatch for field '%s': expected %s based on given Signature, but the provided value is "
            "incompatible: %s.",
            name,
            annotation_name(field.annotation),
            value,
        )


def value_matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation``, looking inside unions, literals and containers.

    A ``str`` field also takes a list of strings, and a ``float`` field an ``int`` (the numeric tower).
    Annotations this check does not understand (type variables, protocols, ...) accept every value.
    """
    if annotation is Any or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return value_matches(value, args[0])
    if origin in (Union, types.UnionType):
        return any(value_matches(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if origin in _COLLECTIONS:
        return isinstance(value, _COLLECTIONS[origin]) and (
            not args or all(value_matches(v, args[0]) for v in value)
        )
    if origin is tuple:
        return isinstance(value, tuple) and _tuple_matches(value, args)
    if origin is dict:
        return isinstance(value, dict) and (
            not args or all(value_matches(k, args[0]) and value_matches(v, args[1]) for k, v in value.items())
        )
    if origin is not None or not isinstance(annotation, type):
        return True
    if annotation is str and isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, annotation)


def _tuple_matches(value: tuple[Any, ...], args: tuple[Any, ...]) -> bool:
    if not args:
        return True
    if len(args) == 2 and args[1] is Ellipsis:
        return all(value_matches(item, args[0]) for item in value)
    return len(value) == len(args) and all(
        value_matches(item, arg) for item, arg in zip(value, args, strict=True)
    )

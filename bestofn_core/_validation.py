"""Validating user-facing arguments, turning each problem into one clear message naming the field."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bestofn_core.errors import ConfigurationError

M = TypeVar("M", bound=BaseModel)

#: What a number that is not finite gets told, in pydantic's words (``allow_inf_nan=False``).
NOT_FINITE = "Input should be a finite number"


def invalid_arguments(what: str, problems: Sequence[tuple[str, str, Any]]) -> ConfigurationError:
    """The error for ``(field, message, given)`` problems of the call ``what`` (e.g. ``"LM(...)"``)."""
    lines = [f"  {field}: {message} (got {given!r})" for field, message, given in problems]
    return ConfigurationError(f"Invalid argument(s) to {what}:\n" + "\n".join(lines))


def validate_arguments(model: type[M], what: str, /, **values: Any) -> M:
    """Validate ``values`` with ``model``; raise ``ConfigurationError`` naming each bad field.

    ``what`` names the call being checked in the message, e.g. ``"LM(...)"``.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        problems = [
            (".".join(str(part) for part in error["loc"]) or "(arguments)", error["msg"], error.get("input"))
            for error in exc.errors(include_url=False)
        ]
        raise invalid_arguments(what, problems) from None


def check_finite(what: str, values: Mapping[str, Any]) -> None:
    """Refuse any float in ``values`` (nested in mappings and lists too) that is infinite or NaN.

    JSON has no such numbers: sent to a server they become ``null`` or an invalid body, so a parameter
    holding one is a configuration error, named by its path (``logit_bias.50256``, ``weights[1]``).
    """
    problems = [(path, NOT_FINITE, value) for path, value in _floats(values, "") if not math.isfinite(value)]
    if problems:
        raise invalid_arguments(what, problems)


def _floats(value: Any, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _floats(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _floats(item, f"{path}[{index}]")

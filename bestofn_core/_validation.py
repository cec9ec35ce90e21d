"""Validating user-facing arguments with pydantic, turning its errors into one clear message."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bestofn_core.errors import ConfigurationError

M = TypeVar("M", bound=BaseModel)


def validate_arguments(model: type[M], what: str, /, **values: Any) -> M:
    """Validate ``values`` with ``model``; raise ``ConfigurationError`` naming each bad field.

    ``what`` names the call being checked in the message, e.g. ``"LM(...)"``.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "(arguments)"
            given = error.get("input")
            problems.append(f"  {field}: {error['msg']} (got {given!r})")
        raise ConfigurationError(f"Invalid argument(s) to {what}:\n" + "\n".join(problems)) from None

"""What every reward here shares: reading fields, checking factory parameters, naming the reward."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: A reward as BestOfN calls it: ``reward(inputs, prediction) -> float``.
Reward = Callable[[Mapping[str, Any], Any], float]


class MissingFieldError(KeyError):
    """A reward needs a field that the prediction (or the call's inputs) does not have.

    A ``KeyError``, so ``except KeyError`` catches it; its message names the field, the fields that are
    there and how to pick another one. BestOfN records it as that attempt's error.
    """

    def __str__(self) -> str:
        # KeyError's own __str__ quotes its argument (it expects a key), which garbles a sentence.
        return str(self.args[0]) if self.args else ""


def describe(name: str, params: Mapping[str, Any]) -> str:
    """``max_words(n=2, field='answer')``: how a built reward is shown in messages and reprs."""
    shown = ", ".join(f"{key}={_show(value)}" for key, value in params.items())
    return f"{name}({shown})"


def _show(value: Any) -> str:
    if isinstance(value, type):
        return value.__qualname__
    return repr(value)


def named(reward: Reward, label: str) -> Reward:
    """``reward`` with ``label`` as its name, which BestOfN's error messages show (not ``<locals>``)."""
    reward.__name__ = label
    reward.__qualname__ = label
    return reward


def check_field(reward: str, value: Any, param: str = "field") -> str:
    """``value`` if it is a usable field name; a ``TypeError``/``ValueError`` naming ``param`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{reward}: {param} must be a field name (a str), got {type(value).__name__}.")
    if not value:
        raise ValueError(f"{reward}: {param} must be a non-empty field name, e.g. {param}='answer'.")
    return value


def check_bool(reward: str, value: Any, param: str) -> bool:
    """``value`` if it is a bool (``0``/``1`` are refused: they usually mean a mistyped parameter)."""
    if not isinstance(value, bool):
        raise TypeError(f"{reward}: {param} must be True or False, got {value!r}.")
    return value


def check_positive_int(reward: str, value: Any, param: str) -> int:
    """``value`` if it is an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{reward}: {param} must be a positive integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{reward}: {param} must be at least 1, got {value}.")
    return value


def field_names(record: Any) -> list[str]:
    """The field names of a Prediction, Example or mapping, for error messages."""
    keys = getattr(record, "keys", None)
    if callable(keys):
        return [str(key) for key in keys()]
    if hasattr(record, "__dict__"):
        return sorted(name for name in vars(record) if not name.startswith("_"))
    return []


def output_value(prediction: Any, field: str, label: str) -> Any:
    """The value of ``prediction``'s ``field``; ``MissingFieldError`` naming the fields it has otherwise.

    ``prediction`` is a ``bestofn_core.Prediction`` in BestOfN; a plain mapping works too (handy in tests).
    """
    try:
        if field in prediction:
            return prediction[field]
    except TypeError:  # not a container: an object with attributes
        if hasattr(prediction, field):
            return getattr(prediction, field)
    fields = ", ".join(field_names(prediction)) or "(none)"
    raise MissingFieldError(
        f"Reward {label} scores the output field {field!r}, but the prediction has no such field; its "
        f"fields are: {fields}. Build the reward with field='<name>' to score another one."
    )


def input_value(inputs: Mapping[str, Any], field: str, label: str) -> Any:
    """The value of the call's input ``field``; ``MissingFieldError`` naming the inputs given otherwise."""
    if field in inputs:
        return inputs[field]
    given = ", ".join(str(key) for key in inputs) or "(none)"
    raise MissingFieldError(
        f"Reward {label} reads the expected answer from the input {field!r}, but the call has no such input; "
        f"its inputs are: {given}. Pass the gold answer as that input (e.g. best({field}=...)), or build the "
        "reward with expected=<literal> instead of input_field=."
    )


def as_text(value: Any) -> str:
    """``value`` as text: strings as they are, ``None`` as ``""``, anything else through ``str()``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(value)

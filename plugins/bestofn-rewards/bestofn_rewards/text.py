"""Text rewards: word counts, exact and normalised match, substring, regex, length penalty.

Every function here is a factory: called with its parameters, it returns the reward
``reward(inputs, prediction) -> float``. The plugin registers them with ``factory=True``, so
``reward_fn="text:one_word"`` builds one with the defaults and ``bestofn_core.reward("text:max_words", n=2)``
one with parameters. Parameters are checked when the reward is built, so a mistake fails at once, not
N attempts later. Non-string field values are read as ``str(value)`` (``None`` as ``""``).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from bestofn_rewards._common import (
    Reward,
    as_text,
    check_bool,
    check_field,
    check_positive_int,
    describe,
    input_value,
    named,
    output_value,
)

__all__ = [
    "contains",
    "exact_match",
    "length_penalty",
    "max_words",
    "nonempty",
    "normalize_answer",
    "normalized_match",
    "one_word",
    "regex",
]


def one_word(*, field: str = "answer") -> Reward:
    """1.0 when ``field`` holds exactly one word (whitespace-separated; ``"Brussels."`` is one), else 0.0."""
    check_field("one_word", field)
    label = describe("one_word", {"field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        return 1.0 if len(as_text(output_value(prediction, field, label)).split()) == 1 else 0.0

    return named(reward, label)


def nonempty(*, field: str = "answer") -> Reward:
    """1.0 when ``field`` holds something other than whitespace, else 0.0 (``None`` is empty)."""
    check_field("nonempty", field)
    label = describe("nonempty", {"field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        return 1.0 if as_text(output_value(prediction, field, label)).strip() else 0.0

    return named(reward, label)


def max_words(n: int, *, field: str = "answer") -> Reward:
    """1.0 when ``field`` holds at most ``n`` words (``n >= 1``), else 0.0.

    Words are whitespace-separated, so an empty answer has 0 words and passes: combine with
    ``nonempty`` if that matters.
    """
    check_positive_int("max_words", n, "n")
    check_field("max_words", field)
    label = describe("max_words", {"n": n, "field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        return 1.0 if len(as_text(output_value(prediction, field, label)).split()) <= n else 0.0

    return named(reward, label)


def exact_match(expected: Any = None, *, input_field: str | None = None, field: str = "answer") -> Reward:
    """1.0 when ``field`` equals the expected answer exactly (case and whitespace count), else 0.0.

    The expected answer is either ``expected`` (a literal, or a list of acceptable answers) or, with
    ``input_field``, the call's input of that name (a string or a list of strings): BestOfN gives a reward
    the call's inputs, so a per-question gold answer must arrive as an input. Exactly one of the two.
    """
    gold = _gold("exact_match", expected, input_field)
    check_field("exact_match", field)
    label = describe("exact_match", {**_gold_params(expected, input_field), "field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        answer = as_text(output_value(prediction, field, label))
        return 1.0 if answer in gold(inputs, label) else 0.0

    return named(reward, label)


def normalized_match(
    expected: Any = None, *, input_field: str | None = None, field: str = "answer"
) -> Reward:
    """1.0 when ``field`` equals the expected answer after ``normalize_answer`` (SQuAD-style), else 0.0.

    ``"The  Eiffel tower!"`` matches ``"eiffel Tower"``. ``expected`` / ``input_field`` as for
    ``exact_match``.
    """
    gold = _gold("normalized_match", expected, input_field)
    check_field("normalized_match", field)
    label = describe("normalized_match", {**_gold_params(expected, input_field), "field": field})

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        answer = normalize_answer(as_text(output_value(prediction, field, label)))
        return 1.0 if answer in {normalize_answer(text) for text in gold(inputs, label)} else 0.0

    return named(reward, label)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation, Unicode-aware: case, punctuation, articles and whitespace.

    In order: Unicode NFKC (full-width letters, ligatures), case-folding, deleting punctuation (ASCII
    punctuation as SQuAD does, plus every Unicode punctuation character such as curly quotes), removing
    the English articles ``a``/``an``/``the``, and collapsing whitespace.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    # Deleted, not replaced by a space, as SQuAD does: "well-known" becomes "wellknown".
    text = "".join(
        char
        for char in text
        if char not in _ASCII_PUNCTUATION and not unicodedata.category(char).startswith("P")
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains(substring: str, *, case_sensitive: bool = False, field: str = "answer") -> Reward:
    """1.0 when ``field`` contains ``substring`` (case-insensitively unless ``case_sensitive``), else 0.0."""
    if not isinstance(substring, str):
        raise TypeError(f"contains: substring must be a str, got {type(substring).__name__}.")
    if not substring:
        raise ValueError("contains: substring must be non-empty (every text contains the empty string).")
    check_bool("contains", case_sensitive, "case_sensitive")
    check_field("contains", field)
    label = describe("contains", {"substring": substring, "case_sensitive": case_sensitive, "field": field})
    needle = substring if case_sensitive else substring.casefold()

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        text = as_text(output_value(prediction, field, label))
        return 1.0 if needle in (text if case_sensitive else text.casefold()) else 0.0

    return named(reward, label)


def regex(pattern: str, *, full: bool = False, field: str = "answer") -> Reward:
    """1.0 when ``pattern`` matches ``field``, else 0.0.

    By default the pattern may match anywhere (``re.search``); ``full=True`` requires it to match the
    whole text (``re.fullmatch``). Flags go inline: ``"(?i)^yes"``. The pattern is compiled when the
    reward is built, so a malformed one is a ``ValueError`` then.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"regex: pattern must be a str, got {type(pattern).__name__}.")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"regex: pattern {pattern!r} is not a valid regular expression: {exc}.") from exc
    check_bool("regex", full, "full")
    check_field("regex", field)
    label = describe("regex", {"pattern": pattern, "full": full, "field": field})
    match = compiled.fullmatch if full else compiled.search

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        return 1.0 if match(as_text(output_value(prediction, field, label))) else 0.0

    return named(reward, label)


Unit = Literal["words", "chars"]
_UNITS: dict[str, Callable[[str], int]] = {"words": lambda text: len(text.split()), "chars": len}


def length_penalty(
    target: int, *, unit: Unit = "words", scale: float | None = None, field: str = "answer"
) -> Reward:
    """1.0 up to ``target`` words (or chars), then ``exp(-(length - target) / scale)``.

    ``scale`` (default: ``target``) is how fast the reward falls: at ``length = target + scale`` it is
    ``1/e`` (about 0.37); with the default, twice the target scores 0.37 and three times 0.14. The reward
    is continuous and strictly decreasing above the target, so among over-long answers the shorter wins.
    ``unit`` is ``"words"`` (whitespace-separated) or ``"chars"``.
    """
    check_positive_int("length_penalty", target, "target")
    if unit not in _UNITS:
        raise ValueError(f"length_penalty: unit must be 'words' or 'chars', got {unit!r}.")
    if scale is None:
        scale = float(target)
    elif isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"length_penalty: scale must be a positive number, got {scale!r}.")
    elif not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"length_penalty: scale must be a positive, finite number, got {scale!r}.")
    check_field("length_penalty", field)
    label = describe("length_penalty", {"target": target, "unit": unit, "scale": scale, "field": field})
    measure = _UNITS[unit]
    decay = float(scale)

    def reward(inputs: Mapping[str, Any], prediction: Any) -> float:
        length = measure(as_text(output_value(prediction, field, label)))
        if length <= target:
            return 1.0
        return math.exp(-(length - target) / decay)

    return named(reward, label)


# ---------------------------------------------------------------- the expected answer of *_match


def _gold(
    reward: str, expected: Any, input_field: str | None
) -> Callable[[Mapping[str, Any], str], list[str]]:
    """Check ``expected``/``input_field`` and return ``gold(inputs, label)``: the acceptable answers."""
    if (expected is None) == (input_field is None):
        given = "both" if input_field is not None else "neither"
        raise TypeError(
            f"{reward}: pass exactly one of expected=<answer> (a literal, or a list of acceptable answers) "
            f"or input_field=<name> (read the answer from the call's input of that name); got {given}."
        )
    if input_field is not None:
        name = check_field(reward, input_field, "input_field")

        def from_inputs(inputs: Mapping[str, Any], label: str) -> list[str]:
            value = input_value(inputs, name, label)
            if isinstance(value, list | tuple):
                if not value:
                    raise ValueError(
                        f"Reward {label}: the input {name!r} is an empty list, so no answer can match; "
                        "give at least one acceptable answer."
                    )
                return [as_text(item) for item in value]
            return [as_text(value)]

        return from_inputs
    answers = _literal_answers(reward, expected)
    return lambda inputs, label: answers


def _literal_answers(reward: str, expected: Any) -> list[str]:
    scalars = (str, int, float)
    if isinstance(expected, scalars):
        return [str(expected)]
    if isinstance(expected, Sequence) and not isinstance(expected, bytes | bytearray):
        if not expected:
            raise ValueError(f"{reward}: expected is an empty list; give at least one acceptable answer.")
        bad = [item for item in expected if not isinstance(item, scalars)]
        if bad:
            raise TypeError(
                f"{reward}: every expected answer must be a str (or a number), got {type(bad[0]).__name__}."
            )
        return [str(item) for item in expected]
    raise TypeError(
        f"{reward}: expected must be a str, a number or a list of them, got {type(expected).__name__}."
    )


def _gold_params(expected: Any, input_field: str | None) -> dict[str, Any]:
    return {"expected": expected} if input_field is None else {"input_field": input_field}

"""Turning an output value into the key votes are counted by, so that "Paris", "paris." and "Paris " agree."""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable, Mapping, Set
from decimal import Decimal
from typing import Any

from bestofn_core.adapters.values import last_number

#: Sentence punctuation stripped from the end of an answer, plus the ideographic full stop and comma.
#: Deliberately not every punctuation mark: "C++", "C#" or "42%" must keep their last character to stay
#: distinct answers. Full-width forms and the ellipsis need no entry: NFKC folds them to these first.
TRAILING_PUNCTUATION = ".,;:!?\u3002\u3001"


def normalize_text(text: str) -> str:
    """``text`` as a vote key: NFKC, casefolded, whitespace collapsed, trailing ``. , ; : ! ?`` removed.

    ``"  Paris. "``, ``"paris"`` and ``"PARIS!"`` all become ``"paris"``.
    """
    # NFKC first, so full-width letters and punctuation compare like their ASCII forms
    folded = unicodedata.normalize("NFKC", text).casefold()
    collapsed = " ".join(folded.split())
    return collapsed.rstrip(TRAILING_PUNCTUATION + " ")


def normalize_answer(value: Any) -> Hashable:
    """The default normaliser of ``MajorityVote`` and ``WeightedVote``: a hashable vote key for ``value``.

    Strings go through ``normalize_text``. Numbers, booleans and ``None`` are kept as they are (so ``4`` and
    ``4.0`` agree). Lists and tuples become tuples, sets frozensets, mappings frozensets of their items,
    and objects with ``model_dump()`` (pydantic models) their dumped fields, with the strings inside
    normalised the same way; so typed outputs (``answer: list[str]``) can be voted on too.

    Raises ``TypeError`` for an unhashable value of another type, asking for a ``normalizer=``.
    """
    if isinstance(value, str):
        return normalize_text(value)
    if value is None or isinstance(value, (bool, int, float, complex, bytes)):
        return value
    if isinstance(value, Mapping):
        return frozenset((normalize_answer(k), normalize_answer(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(normalize_answer(item) for item in value)
    if isinstance(value, Set):
        return frozenset(normalize_answer(item) for item in value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return normalize_answer(dump())
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"normalize_answer cannot turn a {type(value).__name__} into a vote key; pass "
            "normalizer=<a function returning a hashable key> to the policy."
        ) from None
    return value


def final_number(value: Any) -> Hashable:
    """A vote key for arithmetic: the last number of the answer, so answers in sentences agree.

    ``"7 x 8 = 56."``, ``"The answer is 56"``, ``"56.0"`` and ``56`` all count for ``56``: self-consistency
    as it is done on arithmetic tasks, where votes are counted on the final answer, not on the wording
    around it. Thousands separators are read (``"1,234"`` is ``1234``). A value with no number in it (and
    anything that is not text or a number) falls back to ``normalize_answer``, so such answers still vote
    among themselves. ``MajorityVote(normalizer=final_number)`` is registered as
    ``"voting:majority_number"``.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return normalize_answer(value)
    number = last_number(unicodedata.normalize("NFKC", str(value)))
    if number is None:
        return normalize_answer(value)
    exact = Decimal(number)  # last_number returns finite decimal literals only
    # an int key for whole numbers: 56 and 56.0 agree, and the key reads as the answer does
    return int(exact) if exact == exact.to_integral_value() else exact.normalize()

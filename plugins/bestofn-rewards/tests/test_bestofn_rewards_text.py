"""The text rewards, called directly: behaviour, edge cases and parameter checks."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from bestofn_rewards import (
    MissingFieldError,
    contains,
    exact_match,
    length_penalty,
    max_words,
    nonempty,
    normalize_answer,
    normalized_match,
    one_word,
    regex,
)

import bestofn_core as bon


def pred(**fields: Any) -> bon.Prediction:
    return bon.Prediction(**fields)


def score(reward: Any, answer: Any, **inputs: Any) -> float:
    return reward(inputs, pred(answer=answer))


# ---------------------------------------------------------------- one_word, nonempty, max_words


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Brussels", 1.0),
        ("Brussels.", 1.0),  # punctuation sticks to its word
        ("  Brussels \n", 1.0),
        ("New York", 0.0),
        ("", 0.0),
        ("   ", 0.0),
        (None, 0.0),
        (42, 1.0),  # non-strings are read as str(value)
    ],
)
def test_one_word(answer: Any, expected: float) -> None:
    assert score(one_word(), answer) == expected


def test_one_word_scores_the_field_it_is_given() -> None:
    reward = one_word(field="title")
    assert reward({}, pred(answer="two words", title="Title")) == 1.0
    assert reward({}, pred(answer="one", title="two words")) == 0.0


@pytest.mark.parametrize(
    ("answer", "expected"), [("x", 1.0), (" x ", 1.0), ("", 0.0), (" \t\n", 0.0), (None, 0.0)]
)
def test_nonempty(answer: Any, expected: float) -> None:
    assert score(nonempty(), answer) == expected


@pytest.mark.parametrize(
    ("answer", "expected"), [("a", 1.0), ("a b", 1.0), ("  a   b  ", 1.0), ("a b c", 0.0), ("", 1.0)]
)
def test_max_words(answer: str, expected: float) -> None:
    assert score(max_words(2), answer) == expected


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (0, ValueError, "n must be at least 1"),
        (-1, ValueError, "n must be at least 1"),
        (True, TypeError, "n must be a positive integer"),
        ("2", TypeError, "n must be a positive integer"),
        (1.5, TypeError, "n must be a positive integer"),
    ],
)
def test_max_words_checks_n(n: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        max_words(n)


@pytest.mark.parametrize("factory", [one_word, nonempty, lambda **kw: max_words(3, **kw)])
def test_field_must_be_a_non_empty_string(factory: Any) -> None:
    with pytest.raises(TypeError, match="field must be a field name"):
        factory(field=1)
    with pytest.raises(ValueError, match="field must be a non-empty field name"):
        factory(field="")


@pytest.mark.parametrize(
    "reward",
    [
        one_word(),
        nonempty(),
        max_words(2),
        exact_match("x"),
        normalized_match("x"),
        contains("x"),
        regex("x"),
        length_penalty(3),
    ],
)
def test_a_missing_field_names_the_field_and_the_fields_there_are(reward: Any) -> None:
    with pytest.raises(MissingFieldError) as info:
        reward({}, pred(title="t", body="b"))
    message = str(info.value)
    assert "'answer'" in message and "title, body" in message and "field='<name>'" in message
    assert isinstance(info.value, KeyError)
    assert not message.startswith("'")  # not KeyError's quoted form


def test_plain_mappings_and_objects_work_as_predictions() -> None:
    class Obj:
        def __init__(self) -> None:
            self.answer = "one"

    assert one_word()({}, {"answer": "one"}) == 1.0
    assert one_word()({}, Obj()) == 1.0
    with pytest.raises(MissingFieldError, match="its fields are: answer"):
        one_word(field="title")({}, Obj())


def test_a_built_reward_is_named_after_its_parameters() -> None:
    reward = max_words(2, field="title")
    assert reward.__name__ == reward.__qualname__ == "max_words(n=2, field='title')"  # type: ignore[attr-defined]


# ---------------------------------------------------------------- exact_match, normalized_match


def test_exact_match_against_a_literal_is_exact() -> None:
    reward = exact_match("Paris")
    assert score(reward, "Paris") == 1.0
    assert score(reward, "paris") == 0.0
    assert score(reward, "Paris ") == 0.0
    assert score(reward, "Paris.") == 0.0


def test_exact_match_accepts_a_list_of_answers_and_numbers() -> None:
    reward = exact_match(["4", "four"])
    assert score(reward, "four") == 1.0 and score(reward, "4") == 1.0 and score(reward, "five") == 0.0
    assert score(exact_match(4), "4") == 1.0
    assert score(exact_match("4"), 4) == 1.0  # a typed int answer is read as "4"


def test_exact_match_reads_the_expected_answer_from_an_input() -> None:
    reward = exact_match(input_field="gold")
    assert score(reward, "Paris", question="q", gold="Paris") == 1.0
    assert score(reward, "Paris", question="q", gold="Rome") == 0.0
    assert score(reward, "Roma", gold=["Rome", "Roma"]) == 1.0


def test_exact_match_names_a_missing_input_and_the_inputs_given() -> None:
    with pytest.raises(MissingFieldError) as info:
        score(exact_match(input_field="gold"), "Paris", question="q")
    assert "'gold'" in str(info.value) and "its inputs are: question" in str(info.value)


def test_an_empty_list_of_expected_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty list"):
        exact_match([])
    with pytest.raises(ValueError, match="input 'gold' is an empty list"):
        score(exact_match(input_field="gold"), "x", gold=[])


@pytest.mark.parametrize("factory", [exact_match, normalized_match])
def test_match_needs_exactly_one_source_of_the_expected_answer(factory: Any) -> None:
    with pytest.raises(TypeError, match="exactly one of expected=.*got neither"):
        factory()
    with pytest.raises(TypeError, match="got both"):
        factory("x", input_field="gold")
    with pytest.raises(TypeError, match="expected must be a str"):
        factory({"a": 1})
    with pytest.raises(TypeError, match="every expected answer must be a str"):
        factory(["a", None])
    with pytest.raises(TypeError, match="input_field must be a field name"):
        factory(input_field=3)


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("an apple", "Apple"),
        ("“Brussels”", "brussels"),  # curly quotes are Unicode punctuation
        ("\uff22\uff32\uff35\uff33\uff33\uff25\uff2c\uff33", "brussels"),  # full-width letters (NFKC)
        ("STRASSE", "straße"),  # case-folding, not just lower()
        ("well-known", "wellknown"),  # SQuAD deletes punctuation, it does not split on it
    ],
)
def test_normalized_match_matches(answer: str, gold: str) -> None:
    assert score(normalized_match(gold), answer) == 1.0


@pytest.mark.parametrize(("answer", "gold"), [("Theatre", "atre"), ("Paris", "Rome"), ("New York", "York")])
def test_normalized_match_does_not_match(answer: str, gold: str) -> None:
    assert score(normalized_match(gold), answer) == 0.0


def test_normalized_match_reads_an_input_too() -> None:
    reward = normalized_match(input_field="gold")
    assert score(reward, "the Rome.", gold=["Paris", "rome"]) == 1.0


def test_normalize_answer() -> None:
    assert normalize_answer("  The Quick, brown FOX jumps over a dog!  ") == "quick brown fox jumps over dog"
    assert normalize_answer("the") == ""
    assert normalize_answer("$5 + 3") == "5 3"  # ASCII symbols count as punctuation, as in SQuAD


# ---------------------------------------------------------------- contains, regex


def test_contains() -> None:
    assert score(contains("paris"), "I think PARIS.") == 1.0
    assert score(contains("paris", case_sensitive=True), "I think PARIS.") == 0.0
    assert score(contains("PARIS", case_sensitive=True), "I think PARIS.") == 1.0
    assert score(contains("straße"), "STRASSE") == 1.0
    assert score(contains("x"), None) == 0.0


def test_contains_checks_its_parameters() -> None:
    with pytest.raises(ValueError, match="substring must be non-empty"):
        contains("")
    with pytest.raises(TypeError, match="substring must be a str"):
        contains(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="case_sensitive must be True or False"):
        contains("x", case_sensitive=1)  # type: ignore[arg-type]


def test_regex_searches_by_default_and_fullmatches_on_request() -> None:
    assert score(regex(r"\d{4}"), "in 1999, I think") == 1.0
    assert score(regex(r"\d{4}", full=True), "in 1999, I think") == 0.0
    assert score(regex(r"\d{4}", full=True), "1999") == 1.0
    assert score(regex(r"(?i)^yes\b"), "YES, it is") == 1.0
    assert score(regex(r"^yes"), "no") == 0.0


def test_a_bad_regex_fails_when_built() -> None:
    with pytest.raises(ValueError, match=r"pattern '\(' is not a valid regular expression"):
        regex("(")
    with pytest.raises(TypeError, match="pattern must be a str"):
        regex(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="full must be True or False"):
        regex("x", full="yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- length_penalty


def test_length_penalty_is_one_up_to_the_target_then_decays_exponentially() -> None:
    reward = length_penalty(3)
    assert score(reward, "") == 1.0
    assert score(reward, "a b c") == 1.0
    assert score(reward, "a b c d e f") == pytest.approx(math.exp(-1))  # twice the target
    assert score(reward, "a b c d e f g h i") == pytest.approx(math.exp(-2))
    scores = [score(reward, " ".join(["w"] * n)) for n in range(3, 30)]
    assert all(later < earlier for earlier, later in itertools.pairwise(scores))
    assert score(reward, "w " * 100_000) == 0.0  # underflows to 0.0, still a finite number


def test_length_penalty_in_chars_and_with_a_scale() -> None:
    assert score(length_penalty(5, unit="chars"), "abcde") == 1.0
    assert score(length_penalty(5, unit="chars"), "abcdefghij") == pytest.approx(math.exp(-1))
    assert score(length_penalty(3, scale=1), "a b c d") == pytest.approx(math.exp(-1))
    assert score(length_penalty(3, scale=0.5), "a b c d") == pytest.approx(math.exp(-2))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": 0}, ValueError, "target must be at least 1"),
        ({"target": "3"}, TypeError, "target must be a positive integer"),
        ({"target": 3, "unit": "tokens"}, ValueError, "unit must be 'words' or 'chars'"),
        ({"target": 3, "scale": 0}, ValueError, "scale must be a positive, finite number"),
        ({"target": 3, "scale": -1.0}, ValueError, "scale must be a positive, finite number"),
        ({"target": 3, "scale": float("nan")}, ValueError, "scale must be a positive, finite number"),
        ({"target": 3, "scale": "1"}, TypeError, "scale must be a positive number"),
        ({"target": 3, "scale": True}, TypeError, "scale must be a positive number"),
    ],
)
def test_length_penalty_checks_its_parameters(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        length_penalty(**kwargs)

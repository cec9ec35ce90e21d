"""The vote logic on hand-made candidates: counting, ties, failures, early stopping, argument checks."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from bestofn_voting import (
    MajorityVote,
    TopK,
    Vote,
    WeightedVote,
    final_number,
    normalize_answer,
    normalize_text,
    ranked,
    successful,
)
from hypothesis import given
from hypothesis import strategies as st

import bestofn_core as bon
from bestofn_core.best_of_n.candidates import Candidate
from bestofn_core.best_of_n.outcome import Outcome
from bestofn_core.errors import ConfigurationError
from bestofn_core.protocols import SelectionPolicy


def ok(index: int, answer: Any, reward: float = 0.0, **fields: Any) -> Candidate:
    """A successful candidate of rollout ``index``."""
    return Candidate(index, index, prediction=bon.Prediction(answer=answer, **fields), reward=reward)


def failed(index: int, answer: Any = None) -> Candidate:
    """A failed candidate; with ``answer``, one whose module answered but whose reward raised."""
    prediction = None if answer is None else bon.Prediction(answer=answer)
    return Candidate(index, index, prediction=prediction, error=RuntimeError("boom"))


def answers(*values: Any) -> list[Candidate]:
    return [ok(i, value) for i, value in enumerate(values)]


# ---------------------------------------------------------------- the normaliser


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Paris", "paris"),
        ("  Paris. ", "paris"),
        ("PARIS!", "paris"),
        ("Paris ?", "paris"),
        ("New   York\n", "new york"),
        ("\uff30\uff41\uff52\uff49\uff53\uff01", "paris"),  # full-width "Paris!"
        ("Paris\u2026", "paris"),  # an ellipsis
        ("Stra\u00dfe", "strasse"),  # casefold, not lower()
        ("3.14", "3.14"),
        ("C++", "c++"),
        ("C#", "c#"),
        ("42%", "42%"),
        ("...", ""),
    ],
)
def test_normalize_text(text: str, key: str) -> None:
    assert normalize_text(text) == key


def test_normalize_answer_handles_typed_values() -> None:
    class City(pydantic.BaseModel):
        name: str
        country: str

    assert normalize_answer(["Paris", "Lyon."]) == normalize_answer(("paris", "LYON")) == ("paris", "lyon")
    assert normalize_answer({"a": "X", "b": 1}) == normalize_answer({"b": 1, "a": "x."})
    assert normalize_answer({"Paris", "lyon"}) == frozenset({"paris", "lyon"})
    assert normalize_answer(4) == normalize_answer(4.0)
    assert normalize_answer(None) is None
    assert normalize_answer(City(name="Paris", country="FR")) == normalize_answer(
        City(name="paris.", country="fr")
    )
    assert normalize_answer(City(name="Paris", country="FR")) != normalize_answer(
        City(name="Lyon", country="FR")
    )


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("7 x 8 = 56.", 56),
        ("The answer is 56", 56),
        ("56.0", 56),
        (56, 56),
        (56.0, 56),
        ("It is 1,234.", 1234),
        ("\uff15\uff16", 56),  # full-width digits
        ("2.50", Decimal("2.5")),
        ("52-26=-4", -4),
        ("fifty-six", "fifty-six"),  # no number: the text's own key
        ("Paris.", "paris"),
        (True, True),
        (None, None),
        (["7", "8"], ("7", "8")),
    ],
)
def test_final_number(value: Any, key: Any) -> None:
    assert final_number(value) == key
    assert type(final_number(value)) is type(key)


def test_normalize_answer_rejects_unhashable_values_it_does_not_know() -> None:
    class Bag:
        __hash__ = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="normalizer="):
        normalize_answer(Bag())


# ---------------------------------------------------------------- majority vote


def test_majority_normalises_and_returns_the_earliest_holder() -> None:
    candidates = answers("Paris", "paris.", "Lyon", "Paris ", "Nice")
    winner = MajorityVote().select(candidates)
    assert winner.index == 0 and winner.prediction is not None and winner.prediction.answer == "Paris"
    tally = MajorityVote().tally(candidates)
    assert [(v.key, v.votes) for v in tally] == [("paris", 3), ("lyon", 1), ("nice", 1)]
    assert tally[0].value == "Paris" and [c.index for c in tally[0].candidates] == [0, 1, 3]
    assert isinstance(tally[0], Vote) and tally[0].score == 3.0


def test_majority_ignores_rewards() -> None:
    candidates = [ok(0, "Lyon", 1.0), ok(1, "Paris", 0.0), ok(2, "paris", -5.0)]
    assert MajorityVote().select(candidates).index == 1


def test_majority_winner_is_the_earliest_holder_even_when_the_value_first_appears_later() -> None:
    candidates = answers("Nice", "Lyon", "Paris", "paris", "Lyon", "PARIS")
    assert MajorityVote().select(candidates).index == 2


def test_majority_ties_go_to_the_value_seen_first() -> None:
    assert MajorityVote().select(answers("b", "a", "a", "b")).index == 0
    assert MajorityVote().select(answers("a", "b", "b", "a")).index == 0
    # "a" and "b" both have two votes; "b" is seen first (rollout 1)
    assert MajorityVote().select(answers("c", "b", "a", "a", "b")).index == 1


def test_majority_ignores_failed_candidates() -> None:
    # the failed "Lyon"s answered but their reward raised: they must not vote
    candidates = [ok(0, "Paris"), failed(1, "Lyon"), failed(2, "Lyon"), failed(3), ok(4, "Lyon")]
    assert MajorityVote().select(candidates).index == 0
    assert [(v.key, v.votes) for v in MajorityVote().tally(candidates)] == [("paris", 1), ("lyon", 1)]
    assert [c.index for c in successful(candidates)] == [0, 4]


def test_majority_does_not_depend_on_the_order_candidates_are_given_in() -> None:
    candidates = answers("c", "b", "a", "a", "b", "c", "d")
    expected = MajorityVote().select(candidates).index
    rng = random.Random(0)
    for _ in range(20):
        shuffled = candidates[:]
        rng.shuffle(shuffled)
        assert MajorityVote().select(shuffled).index == expected == 0


def test_majority_on_another_field_and_with_other_normalisers() -> None:
    candidates = [
        ok(0, "x", label="Spam"),
        ok(1, "y", label="ham"),
        ok(2, "z", label="HAM"),
    ]
    assert MajorityVote(field="label").select(candidates).index == 1
    assert MajorityVote(field="label", normalizer=None).select(candidates).index == 0  # all distinct
    numbers = answers("3.0", "3", "2.999", "4")
    assert MajorityVote().select(numbers).index == 0  # as text: four distinct answers, tie -> first
    assert MajorityVote(normalizer=lambda v: round(float(v))).tally(numbers)[0].votes == 3


def test_majority_votes_on_list_values() -> None:
    candidates = answers(["b", "a"], ["A", "B"], ["a", "b."], ["b", "a"])
    tally = MajorityVote().tally(candidates)
    # lists are ordered: ("b", "a") and ("a", "b") have 2 votes each, and ("b", "a") is seen first
    assert [(v.key, v.votes) for v in tally] == [(("b", "a"), 2), (("a", "b"), 2)]
    assert MajorityVote().select(candidates).index == 0
    assert MajorityVote().select(candidates[1:]).index == 1
    with pytest.raises(TypeError, match="pass a normalizer"):
        MajorityVote(normalizer=None).select(candidates)


def test_a_normaliser_returning_an_unhashable_key_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="must return a hashable key"):
        MajorityVote(normalizer=lambda v: [v]).select(answers("a"))  # type: ignore[arg-type,return-value]


def test_missing_field_names_the_field_and_the_fields_there_are() -> None:
    candidates = [ok(0, "Paris", reasoning="because")]
    with pytest.raises(ConfigurationError) as caught:
        MajorityVote(field="label").select(candidates)
    message = str(caught.value)
    assert "'label'" in message and "'answer'" in message and "'reasoning'" in message
    assert "rollout 0" in message and "field=" in message
    with pytest.raises(ConfigurationError, match="'label'"):
        WeightedVote(field="label").select(candidates)


def test_missing_field_fails_at_the_first_prediction_even_without_a_threshold() -> None:
    with pytest.raises(ConfigurationError, match="'label'"):
        MajorityVote(field="label").should_stop([ok(0, "Paris")], None)
    # failed candidates have no prediction to check
    assert MajorityVote(field="label").should_stop([failed(0)], None) is False


def test_select_needs_a_successful_candidate() -> None:
    for policy in (MajorityVote(), WeightedVote(), TopK()):
        with pytest.raises(ValueError, match="at least one successful candidate"):
            policy.select([failed(0), failed(1, "x")])


# ---------------------------------------------------------------- majority early stopping


def test_majority_without_threshold_never_stops() -> None:
    assert MajorityVote().should_stop(answers("a", "a", "a", "a"), None) is False


def test_majority_threshold_is_a_vote_count() -> None:
    policy = MajorityVote()
    assert policy.should_stop(answers("Paris"), 2) is False
    assert policy.should_stop(answers("Paris", "Lyon"), 2) is False
    assert policy.should_stop(answers("Paris", "paris."), 2) is True
    assert policy.should_stop(answers("Paris", "Lyon", "paris"), 2.0) is True
    assert policy.should_stop(answers("Paris", "Lyon", "paris"), 3) is False
    # failed candidates do not count towards the threshold
    assert policy.should_stop([ok(0, "Paris"), failed(1, "Paris"), ok(2, "Lyon")], 2) is False


@pytest.mark.parametrize("threshold", [1.0, 1, 0.6, 0.0, -3, 2.5, True, float("nan"), "3"])
def test_majority_rejects_thresholds_that_are_not_vote_counts(threshold: Any) -> None:
    with pytest.raises(ConfigurationError, match="threshold") as caught:
        MajorityVote().should_stop(answers("a", "a"), threshold)
    assert "MajorityVote" in str(caught.value)


def test_majority_threshold_error_explains_the_rule() -> None:
    with pytest.raises(ConfigurationError) as caught:
        MajorityVote().should_stop(answers("a"), 0.6)
    message = str(caught.value)
    assert "vote count" in message and "N // 2 + 1" in message and "math.ceil(0.6 * N)" in message


def run_like_the_kernel(policy: Any, candidates: list[Candidate], threshold: float | None) -> Candidate:
    """Decide with the kernel's own ``Outcome``, feeding the attempts in a shuffled finishing order."""
    outcome = Outcome(len(candidates), len(candidates), threshold, policy)
    finishing = candidates[:]
    random.Random(len(candidates)).shuffle(finishing)
    for candidate in finishing:
        outcome.add(candidate)
    assert outcome.winner is not None, outcome.error
    return outcome.winner


values = st.lists(st.one_of(st.sampled_from(["a", "A.", "b", "c"]), st.none()), min_size=1, max_size=9)


@given(values)
def test_a_strict_majority_count_stops_with_the_winner_of_a_full_run(drawn: list[str | None]) -> None:
    """``threshold = N // 2 + 1`` never changes the winner, whatever the answers and failures."""
    candidates = [ok(i, v) if v is not None else failed(i) for i, v in enumerate(drawn)]
    if not any(c.ok for c in candidates):
        return
    full = MajorityVote().select(candidates)
    # N // 2 + 1 is 1 for N = 1, which the policy refuses (a one-vote "majority" is no vote)
    early = run_like_the_kernel(MajorityVote(), candidates, max(2, len(candidates) // 2 + 1))
    assert early is full


@given(values, st.integers(min_value=2, max_value=5))
def test_early_stop_winner_is_the_first_value_to_reach_the_count(drawn: list[str | None], count: int) -> None:
    candidates = [ok(i, v) if v is not None else failed(i) for i, v in enumerate(drawn)]
    if not any(c.ok for c in candidates):
        return
    winner = run_like_the_kernel(MajorityVote(), candidates, count)
    seen: dict[str, int] = {}
    first_to_reach = None
    for candidate in candidates:
        if candidate.ok:
            assert candidate.prediction is not None
            key = normalize_text(candidate.prediction.answer)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == count:
                first_to_reach = key
                break
    if first_to_reach is None:  # nobody reached the count: the full-run winner
        assert winner is MajorityVote().select(candidates)
    else:
        assert winner.prediction is not None
        assert normalize_text(winner.prediction.answer) == first_to_reach


# ---------------------------------------------------------------- weighted vote


def test_weighted_vote_sums_rewards_and_can_overrule_the_majority() -> None:
    candidates = [ok(0, "B", 0.2), ok(1, "A", 0.9), ok(2, "b", 0.2), ok(3, "C", 0.1), ok(4, "B.", 0.2)]
    assert MajorityVote().select(candidates).index == 0  # "b" has 3 votes
    assert WeightedVote().select(candidates).index == 1  # "a": 0.9 > "b": 0.6
    tally = WeightedVote().tally(candidates)
    assert [(v.key, v.votes) for v in tally] == [("a", 1), ("b", 3), ("c", 1)]
    assert tally[1].score == pytest.approx(0.6)


def test_weighted_winner_is_the_best_rewarded_holder_of_the_winning_value() -> None:
    candidates = [ok(0, "x", 0.2), ok(1, "y", 0.5), ok(2, "X", 0.4), ok(3, "x", 0.4)]
    assert WeightedVote().select(candidates).index == 2  # "x" scores 1.0; 0.4 at rollouts 2 and 3


def test_weighted_ties_go_to_the_value_seen_first() -> None:
    assert WeightedVote().select([ok(0, "a", 0.5), ok(1, "b", 0.25), ok(2, "b", 0.25)]).index == 0
    assert WeightedVote().select([ok(0, "b", 0.25), ok(1, "a", 0.5), ok(2, "b", 0.25)]).index == 0


def test_weighted_ignores_failed_candidates() -> None:
    candidates = [ok(0, "a", 0.3), failed(1, "b"), failed(2, "b"), ok(3, "b", 0.2)]
    assert WeightedVote().select(candidates).index == 0


def test_weighted_threshold_is_a_summed_reward() -> None:
    policy = WeightedVote()
    assert policy.should_stop([ok(0, "a", 0.9), ok(1, "b", 0.9)], 1.5) is False
    assert policy.should_stop([ok(0, "a", 0.9), ok(1, "b", 0.9), ok(2, "A", 0.6)], 1.5) is True
    assert policy.should_stop([ok(0, "a", 1.0)] * 3, None) is False
    bad: Any
    for bad in (0, -1.0, "1"):
        with pytest.raises(ConfigurationError, match="threshold"):
            policy.should_stop([ok(0, "a", 1.0)], bad)


# ---------------------------------------------------------------- top-k


def test_top_k_selects_the_best_reward_and_lists_the_k_best() -> None:
    candidates = [ok(0, "a", 0.5), failed(1), ok(2, "b", 0.9), ok(3, "c", 0.5), ok(4, "d", 0.7)]
    policy = TopK(k=3)
    assert policy.select(candidates).index == 2
    assert [c.index for c in policy.top(candidates)] == [2, 4, 0]  # 0 before 3: earliest among equals
    assert [c.index for c in TopK(k=10).top(candidates)] == [2, 4, 0, 3]  # fewer than k succeeded
    assert [c.index for c in ranked(candidates)] == [2, 4, 0, 3]


def test_top_k_stops_once_k_candidates_clear_the_threshold() -> None:
    policy = TopK(k=2)
    assert policy.should_stop([ok(0, "a", 0.9)], 0.8) is False
    assert policy.should_stop([ok(0, "a", 0.9), ok(1, "b", 0.1)], 0.8) is False
    assert policy.should_stop([ok(0, "a", 0.9), ok(1, "b", 0.1), ok(2, "c", 0.8)], 0.8) is True
    assert policy.should_stop([ok(0, "a", 0.9), ok(1, "b", 0.9)], None) is False
    assert TopK(k=1).should_stop([ok(0, "a", 0.8)], 0.8) is True  # k=1: the threshold policy
    with pytest.raises(ConfigurationError, match="threshold"):
        policy.should_stop([ok(0, "a", 0.9)], "0.8")  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", None])
def test_top_k_rejects_bad_k(k: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"TopK\(k=...\)"):
        TopK(k=k)


def test_helpers_reject_what_is_not_candidates() -> None:
    with pytest.raises(TypeError, match="Candidate"):
        ranked(["a", "b"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="BestOfN result"):
        TopK().top(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="BestOfN result"):
        MajorityVote().tally("abc")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the objects themselves


@pytest.mark.parametrize(
    "make",
    [
        lambda: MajorityVote(field=""),
        lambda: MajorityVote(field=3),  # type: ignore[arg-type]
        lambda: WeightedVote(field="  "),
        lambda: MajorityVote(normalizer="casefold"),  # type: ignore[arg-type]
        lambda: WeightedVote(normalizer=42),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_configuration_errors(make: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"(field|normalizer)=\.\.\."):
        make()


def test_policies_fit_the_protocol_and_hold_only_configuration() -> None:
    for policy in (MajorityVote(), WeightedVote(field="label"), TopK(k=2)):
        assert isinstance(policy, SelectionPolicy)
        with pytest.raises(dataclasses.FrozenInstanceError):
            policy.field = "other"  # type: ignore[misc,union-attr]
    assert MajorityVote() == MajorityVote() != WeightedVote()
    assert repr(MajorityVote()) == "MajorityVote(field='answer', normalizer=normalize_answer)"
    assert repr(WeightedVote("label", None)) == "WeightedVote(field='label', normalizer=None)"
    assert repr(TopK(k=2)) == "TopK(k=2)"

"""The rewards and the policy called directly: no registry, no LM."""

import pytest
from bestofn_tutorial import FirstOK, shorter_than, shortest

import bestofn_core as bon
from bestofn_core import Candidate


def test_shortest_prefers_fewer_words() -> None:
    assert shortest({}, bon.Prediction(answer="")) == 1.0
    assert shortest({}, bon.Prediction(answer="Paris")) == 0.5
    assert shortest({}, bon.Prediction(answer="It is Paris")) == 0.25


def test_a_prediction_without_an_answer_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'answer'; this prediction has: summary"):
        shortest({}, bon.Prediction(summary="short"))


def test_shorter_than_is_built_with_its_limit() -> None:
    reward = shorter_than(words=3)
    assert reward({}, bon.Prediction(answer="Paris")) == 1.0
    assert reward({}, bon.Prediction(answer="It is Paris")) == 0.0
    with pytest.raises(ValueError, match="needs an int words >= 1"):
        shorter_than(words=0)


def test_first_ok_stops_at_the_first_success_and_selects_it() -> None:
    failed = Candidate(index=0, rollout_id=0, error=RuntimeError("unparsable"))
    first = Candidate(index=1, rollout_id=1, prediction=bon.Prediction(answer="a"), reward=0.1)
    better = Candidate(index=2, rollout_id=2, prediction=bon.Prediction(answer="b"), reward=0.9)
    policy = FirstOK()
    assert not policy.should_stop([failed], threshold=None)
    assert policy.should_stop([failed, first], threshold=None)
    assert policy.select([failed, first, better]) is first
    with pytest.raises(ValueError, match="no candidate succeeded"):
        policy.select([failed])

"""The policies through BestOfN: by the installed entry point, in-process, concurrent and sequential."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import bestofn_voting
import bestofn_voting.plugin
import pytest
from bestofn_voting import MajorityVote, TopK, WeightedVote, final_number

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError, UnknownNameError
from bestofn_core.plugins import get_plugin_manager, get_registry, reset_plugins
from bestofn_core.protocols import LMRequest
from bestofn_core.testing.dummy_lm import DummyLM

CITIES = ["Paris", "paris.", "Lyon", "Paris ", "Nice"]


def by_rollout(answers: list[str], field: str = "answer") -> Callable[[LMRequest, int], dict[str, str]]:
    """A DummyLM script answering ``answers[rollout_id]`` (one choice per request), or ``answers[i]``."""

    def answer(request: LMRequest, index: int) -> dict[str, str]:
        value = answers[int(request.rollout_id or 0) + index]
        if value == "<fail>":
            raise RuntimeError(f"rollout {request.rollout_id} fails on purpose")
        return {field: value}

    return answer


def reward_of(scores: Mapping[str, float], field: str = "answer") -> Callable[[Any, Any], float]:
    return lambda inputs, pred: scores.get(pred[field], 0.0)


def qa() -> bon.Predict:
    return bon.Predict("question -> answer")


# ---------------------------------------------------------------- the installed entry point


def test_the_installed_distribution_registers_its_four_policies() -> None:
    reset_plugins()
    registry = get_registry()
    (info,) = [p for p in registry.plugins if p.name == "voting"]
    assert (info.distribution, info.version, info.error, info.builtin) == (
        "bestofn-voting",
        "0.1.0",
        None,
        False,
    )
    assert info.module == "bestofn_voting.plugin"
    assert sorted(info.registered["selection_policy"]) == [
        "voting:majority",
        "voting:majority_number",
        "voting:top_k",
        "voting:weighted",
    ]
    assert registry.get("selection_policy", "voting:majority") == MajorityVote()
    assert registry.get("selection_policy", "voting:majority_number") == MajorityVote(normalizer=final_number)
    assert registry.get("selection_policy", "voting:weighted") == WeightedVote()
    assert registry.get("selection_policy", "voting:top_k") == TopK(k=3)
    assert bestofn_voting.__version__ == info.version


def test_arithmetic_self_consistency_votes_on_the_final_number() -> None:
    sentences = ["7 x 8 = 54.", "The answer is 56.", "56", "7 times 8 is 56", "54"]
    bon.configure(lm=DummyLM(by_rollout(sentences)))
    # no two texts agree, so a vote on the wording goes to the first answer, which is wrong
    assert bon.BestOfN(qa(), N=5, policy="voting:majority")(question="What is 7 x 8?").answer == "7 x 8 = 54."
    pred = bon.BestOfN(qa(), N=5, policy="voting:majority_number")(question="What is 7 x 8?")
    assert pred.answer == "The answer is 56." and pred.winner.rollout_id == 1
    policy = get_registry().get("selection_policy", "voting:majority_number")
    assert [(vote.key, vote.votes) for vote in policy.tally(pred)] == [(56, 3), (54, 2)]


def test_self_consistency_by_reference() -> None:
    lm = DummyLM(by_rollout(CITIES))
    bon.configure(lm=lm)
    # the reward favours "Nice": the majority vote must not care
    best = bon.BestOfN(qa(), N=5, reward_fn=reward_of({"Nice": 1.0}), policy="voting:majority")
    pred = best(question="What is the capital of France?")
    assert pred.answer == "Paris" and pred.winner.rollout_id == 0
    assert [c.rollout_id for c in pred.candidates] == [0, 1, 2, 3, 4]
    assert len(lm.requests) == 5
    assert isinstance(best.policy, MajorityVote)


def test_weighted_and_top_k_by_reference() -> None:
    answers = ["B", "A", "b", "C", "B."]
    scores = {"A": 0.9, "B": 0.2, "b": 0.2, "B.": 0.2, "C": 0.1}
    bon.configure(lm=DummyLM(by_rollout(answers)))
    majority = bon.BestOfN(qa(), N=5, reward_fn=reward_of(scores), policy="voting:majority")(question="q")
    weighted = bon.BestOfN(qa(), N=5, reward_fn=reward_of(scores), policy="voting:weighted")(question="q")
    top_k = bon.BestOfN(qa(), N=5, reward_fn=reward_of(scores), policy="voting:top_k")(question="q")
    assert (majority.answer, majority.winner.rollout_id) == ("B", 0)
    assert (weighted.answer, weighted.winner.rollout_id) == ("A", 1)
    assert (top_k.answer, top_k.winner.rollout_id) == ("A", 1)


def test_an_unknown_voting_policy_lists_what_is_installed() -> None:
    with pytest.raises(UnknownNameError, match="voting:majority"):
        bon.BestOfN(qa(), N=3, reward_fn=lambda i, p: 0.0, policy="voting:plurality")


def test_a_policy_saved_by_reference_is_restored(tmp_path: Path) -> None:
    bon.configure(lm=DummyLM(by_rollout(CITIES)))
    bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0, policy="voting:weighted").save(tmp_path / "best.json")
    restored = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0)
    assert not isinstance(restored.policy, WeightedVote)
    restored.load(tmp_path / "best.json")
    assert restored.policy == WeightedVote() and restored.policy_ref == "voting:weighted"


# ---------------------------------------------------------------- in-process


def test_the_plugin_module_registered_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")  # no entry points: only what is registered below
    reset_plugins()
    with pytest.raises(UnknownNameError):
        get_registry().get("selection_policy", "voting:majority")
    get_plugin_manager().register(bestofn_voting.plugin, name="voting")
    assert get_registry().get("selection_policy", "voting:majority") == MajorityVote()
    bon.configure(lm=DummyLM(by_rollout(CITIES)))
    pred = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0, policy="voting:majority")(question="q")
    assert (pred.answer, pred.winner.rollout_id) == ("Paris", 0)


class LabelPolicies:
    """An in-process plugin offering a configured vote under its own namespace."""

    @bon.hookimpl
    def register_selection_policies(self, register: Any) -> None:
        register(MajorityVote(field="label", normalizer=None), name="exact_label")


def test_a_configured_vote_registered_by_another_plugin() -> None:
    get_plugin_manager().register(LabelPolicies(), name="labels")
    labels = ["spam", "ham", "Ham", "ham", "spam"]
    bon.configure(lm=DummyLM(by_rollout(labels, field="label")))
    classify = bon.Predict("text -> label")
    exact = bon.BestOfN(classify, N=5, reward_fn=lambda i, p: 0.0, policy="labels:exact_label")(text="t")
    assert (exact.label, exact.winner.rollout_id) == ("spam", 0)  # "ham" 2, "spam" 2, "Ham" 1: tie
    folded = bon.BestOfN(classify, N=5, reward_fn=lambda i, p: 0.0, policy=MajorityVote(field="label"))
    pred = folded(text="t")
    assert (pred.label, pred.winner.rollout_id) == ("ham", 1)  # "ham" 3 once casefolded


# ---------------------------------------------------------------- early stopping, failures, errors


def test_majority_stops_once_a_value_has_threshold_votes() -> None:
    answers = ["Paris", "Lyon", "paris", "Nice", "PARIS.", "Lyon", "Lyon"]
    lm = DummyLM(by_rollout(answers))
    bon.configure(lm=lm)
    best = bon.BestOfN(
        qa(), N=7, reward_fn=lambda i, p: 0.0, policy="voting:majority", threshold=3, concurrency=1
    )
    pred = best(question="q")
    assert (pred.answer, pred.winner.rollout_id) == ("Paris", 0)
    assert [c.rollout_id for c in pred.candidates] == [0, 1, 2, 3, 4]
    assert len(lm.requests) == 5  # sequential: nothing started after the deciding rollout


def test_top_k_stops_once_k_candidates_clear_the_threshold_and_lists_them() -> None:
    answers = ["ok", "great", "bad", "good", "great", "good"]
    scores = {"great": 1.0, "good": 0.8, "ok": 0.5, "bad": 0.0}
    lm = DummyLM(by_rollout(answers))
    bon.configure(lm=lm)
    policy = TopK(k=2)
    best = bon.BestOfN(qa(), N=6, reward_fn=reward_of(scores), policy=policy, threshold=0.8, concurrency=1)
    pred = best(question="q")
    assert (pred.answer, pred.winner.rollout_id) == ("great", 1)
    assert [c.rollout_id for c in pred.candidates] == [0, 1, 2, 3]  # rollout 3 is the second >= 0.8
    assert [(c.rollout_id, c.reward) for c in policy.top(pred)] == [(1, 1.0), (3, 0.8)]
    assert [c.rollout_id for c in bestofn_voting.ranked(pred)] == [1, 3, 0, 2]
    assert len(lm.requests) == 4


def test_failed_attempts_do_not_vote() -> None:
    answers = ["<fail>", "Lyon", "Paris", "paris", "<fail>"]
    bon.configure(lm=DummyLM(by_rollout(answers)))
    pred = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0, policy="voting:majority")(question="q")
    assert (pred.answer, pred.winner.rollout_id) == ("Paris", 2)
    assert [c.ok for c in pred.candidates] == [False, True, True, True, False]


def test_a_missing_field_fails_the_call_with_a_clear_error() -> None:
    bon.configure(lm=DummyLM(by_rollout(CITIES)))
    best = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0, policy=MajorityVote(field="label"))
    with pytest.raises(ConfigurationError, match=r"'label'.*its fields are: 'answer'"):
        best(question="q")


def test_a_reward_threshold_given_to_a_vote_fails_the_call_with_a_clear_error() -> None:
    bon.configure(lm=DummyLM(by_rollout(CITIES)))
    best = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 1.0, threshold=1.0, policy="voting:majority")
    with pytest.raises(ConfigurationError, match="vote count"):
        best(question="q")


def test_batched_sampling_votes_too() -> None:
    lm = DummyLM(lambda request, index: {"answer": CITIES[index]})
    bon.configure(lm=lm)
    best = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0, policy="voting:majority", sampling="batched")
    pred = best(question="q")
    assert (pred.answer, pred.winner.rollout_id) == ("Paris", 0)
    assert len(lm.requests) == 1


# ---------------------------------------------------------------- determinism and shared instances


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("policy", "threshold"), [("voting:majority", None), ("voting:majority", 3), ("voting:weighted", 1.5)]
)
def test_the_same_winner_whatever_order_attempts_finish_in(
    seed: int, policy: str, threshold: float | None
) -> None:
    rng = random.Random(seed)
    answers = [rng.choice(["Paris", "paris.", "Lyon", "lyon", "Nice", "<fail>"]) for _ in range(8)]
    if all(a == "<fail>" for a in answers):
        answers[0] = "Nice"
    delays = [rng.uniform(0, 0.03) for _ in range(8)]
    scores = {"Paris": 0.4, "paris.": 0.6, "Lyon": 0.9, "lyon": 0.7, "Nice": 0.8}
    outcomes = []
    for concurrency in (1, 3, None):
        lm = DummyLM(by_rollout(answers), delay=lambda r: delays[int(r.rollout_id or 0)])
        bon.configure(lm=lm)
        best = bon.BestOfN(
            qa(),
            N=8,
            reward_fn=reward_of(scores),
            policy=policy,
            threshold=threshold,
            concurrency=concurrency,
        )
        pred = best(question="q")
        outcomes.append((pred.answer, pred.winner.rollout_id, [c.rollout_id for c in pred.candidates]))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_one_shared_instance_serves_concurrent_calls() -> None:
    # each question has its own answers; concurrent calls through the one registered instance
    # must each get their own majority
    per_question = {
        "q-paris": ["Lyon", "Paris", "paris", "Nice", "Paris."],
        "q-lyon": ["Lyon", "Paris", "lyon", "LYON", "Nice"],
        "q-nice": ["Nice", "nice", "Paris", "Lyon", "Nice!"],
    }

    def script(request: LMRequest, index: int) -> dict[str, str]:
        prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        (question,) = [q for q in per_question if q in prompt]
        return {"answer": per_question[question][int(request.rollout_id or 0)]}

    bon.configure(lm=DummyLM(script, delay=lambda r: random.Random(r.rollout_id).uniform(0, 0.02)))
    best = bon.BestOfN(qa(), N=5, reward_fn=lambda i, p: 0.0, policy="voting:majority")

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(best.acall(question=q) for q in per_question))

    results = asyncio.run(run_all())
    assert [(p.answer, p.winner.rollout_id) for p in results] == [("Paris", 1), ("Lyon", 0), ("Nice", 0)]

"""BestOfN: the reference behaviour, without its defects, concurrent, async, batched, pluggable."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import BestOfNError, ConfigurationError, RewardError, UnknownNameError
from bestofn_core.plugins import get_plugin_manager
from bestofn_core.protocols import LMRequest
from bestofn_core.testing.dummy_lm import DummyLM

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


def by_rollout(answers: dict[int, str]) -> Any:
    """A DummyLM script answering ``answers[rollout_id]`` (ChatAdapter form)."""

    def answer(request: LMRequest, index: int) -> dict[str, str]:
        return {"answer": answers[int(request.rollout_id or 0) + index]}

    return answer


def reward_is(target: str) -> Any:
    return lambda inputs, pred: 1.0 if pred.answer == target else 0.0


def answer_length(inputs: dict[str, Any], pred: bon.Prediction) -> float:
    return float(len(pred.answer))


def min_length(n: int) -> Any:
    """A reward factory: 1.0 when the answer has at least ``n`` characters."""
    return lambda inputs, pred: float(len(pred.answer) >= n)


class RewardPlugin:
    """An in-process plugin offering rewards, registered for one test."""

    @bon.hookimpl
    def register_rewards(self, register: Any) -> None:
        register(answer_length, name="answer_length")
        register(min_length, name="min_length", factory=True)


@pytest.fixture
def reward_plugin() -> Iterator[None]:
    pm = get_plugin_manager()
    plugin = RewardPlugin()
    pm.register(plugin, name="testrewards")
    yield
    pm.unregister(plugin)


# ---------------------------------------------------------------- the reference's own tests


def test_never_passing_reward_returns_the_first_attempt_after_n_calls(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer")
    best = bon.BestOfN(qa, N=3, reward_fn=lambda args, pred: 0.0, threshold=1.0)
    pred = best(question="q")
    assert len(server.requests) == 3
    assert pred.winner.rollout_id == 0 and pred.answer == pred.candidates[0].prediction.answer
    assert [c.rollout_id for c in pred.candidates] == [0, 1, 2]


def test_always_raising_module_raises_one_error_with_every_attempt(lm: bon.LM, server: Any) -> None:
    class Broken(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = bon.Predict("question -> answer")

        def forward(self, question: str) -> bon.Prediction:
            raise RuntimeError("module bug")

    with pytest.raises(BestOfNError) as info:
        bon.BestOfN(Broken(), N=3, reward_fn=lambda a, p: 1.0, threshold=1.0)(question="q")
    assert isinstance(info.value, ExceptionGroup)
    assert len(info.value.exceptions) == 3 and all(isinstance(e, RuntimeError) for e in info.value.exceptions)
    assert [c.rollout_id for c in info.value.attempts] == [0, 1, 2]
    assert "all 3 attempts failed" in str(info.value)


def test_failures_beyond_fail_count_raise_after_exactly_that_many_calls() -> None:
    calls: list[int] = []

    class Flaky(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = bon.Predict("question -> answer")

        def forward(self, question: str) -> bon.Prediction:
            calls.append(1)
            if len(calls) <= 2:
                raise ValueError(f"failure {len(calls)}")
            return self.qa(question=question)

    bon.configure(lm=DummyLM(lambda r, i: {"answer": "ok"}))
    best = bon.BestOfN(Flaky(), N=3, reward_fn=lambda a, p: 1.0, threshold=1.0, fail_count=1, concurrency=1)
    with pytest.raises(BestOfNError, match="2 of 2 attempts failed.*fail_count=1"):
        best(question="q")
    assert len(calls) == 2


# ---------------------------------------------------------------- documented behaviour


def test_attempts_use_consecutive_rollout_ids_from_the_lms_own_at_temperature_one() -> None:
    lm = DummyLM(by_rollout({i: f"a{i}" for i in range(5, 9)}), temperature=0.0, rollout_id=5)
    bon.configure(lm=lm)
    pred = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=lambda a, p: 0.0)(question="q")
    assert sorted(r.rollout_id for r in lm.requests) == [5, 6, 7, 8]
    assert {r.params["temperature"] for r in lm.requests} == {1.0}
    assert [c.prediction.answer for c in pred.candidates] == ["a5", "a6", "a7", "a8"]
    assert lm.kwargs["rollout_id"] == 5 and lm.kwargs["temperature"] == 0.0  # the caller's LM is untouched


def test_highest_reward_wins_and_ties_go_to_the_earliest_rollout() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "bb", 1: "cccc", 2: "dddd", 3: "a"})))
    pred = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=answer_length)(question="q")
    assert pred.answer == "cccc" and pred.winner.rollout_id == 1 and pred.winner.reward == 4.0
    assert [c.reward for c in pred.candidates] == [2.0, 4.0, 4.0, 1.0]


def test_threshold_stops_at_the_lowest_rollout_that_clears_it() -> None:
    lm = DummyLM(by_rollout({0: "no", 1: "yes", 2: "yes", 3: "no"}))
    bon.configure(lm=lm)
    best = bon.BestOfN(
        bon.Predict("question -> answer"), N=4, reward_fn=reward_is("yes"), threshold=1.0, concurrency=1
    )
    pred = best(question="q")
    assert pred.winner.rollout_id == 1 and len(pred.candidates) == 2
    assert len(lm.requests) == 2  # sequential: exactly the reference's number of LM calls


def test_threshold_none_never_stops_early() -> None:
    lm = DummyLM(by_rollout({i: "yes" for i in range(4)}))
    bon.configure(lm=lm)
    pred = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=reward_is("yes"), threshold=None)(
        question="q"
    )
    assert len(lm.requests) == 4 and len(pred.candidates) == 4 and pred.winner.rollout_id == 0


@pytest.mark.parametrize("seed", range(5))
def test_concurrent_and_sequential_runs_choose_the_same_prediction(seed: int) -> None:
    rng = random.Random(seed)
    answers = {i: rng.choice(["yes", "no", "maybe"]) for i in range(8)}
    delays = {i: rng.uniform(0, 0.05) for i in range(8)}
    threshold = 1.0
    winners = []
    for concurrency in (1, 3, None):
        lm = DummyLM(by_rollout(answers), delay=lambda r: delays[int(r.rollout_id or 0)])
        bon.configure(lm=lm)
        best = bon.BestOfN(
            bon.Predict("question -> answer"),
            N=8,
            reward_fn=lambda a, p: {"yes": 1.0, "maybe": 0.5, "no": 0.0}[p.answer],
            threshold=threshold,
            concurrency=concurrency,
        )
        pred = best(question="q")
        winners.append((pred.winner.rollout_id, pred.answer, [c.rollout_id for c in pred.candidates]))
    assert winners[0] == winners[1] == winners[2]


def test_attempts_run_concurrently_against_the_server(lm: bon.LM, server: Any) -> None:
    server.latency = 0.5
    bon.BestOfN(bon.Predict("question -> answer"), N=6, reward_fn=lambda a, p: 0.0)(question="q")
    arrivals = sorted(r.received_at for r in server.requests)
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] < server.latency  # all in flight before the first answer came back


def test_early_stop_cancels_the_remaining_attempts() -> None:
    finished: list[int] = []

    def delay(request: LMRequest) -> float:
        return 0.0 if request.rollout_id == 0 else 5.0

    lm = DummyLM(by_rollout({i: "yes" for i in range(4)}), delay=delay)
    bon.configure(lm=lm)

    def reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        finished.append(1)
        return 1.0

    best = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=reward, threshold=1.0)
    loop_time = asyncio.run(_timed(best.acall(question="q")))
    assert loop_time < 2.0  # the 5 s attempts were cancelled, not awaited
    assert len(finished) == 1 and len(lm.requests) == 4


async def _timed(coro: Any) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await coro
    return loop.time() - started


# ---------------------------------------------------------------- fail_count and errors


def test_fail_count_zero_tolerates_no_failure() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "b"})))

    def reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        if pred.answer == "a":
            raise ValueError("reward crashed")
        return 1.0

    best = bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=reward, fail_count=0, concurrency=1)
    with pytest.raises(BestOfNError, match="fail_count=0") as info:
        best(question="q")
    assert isinstance(info.value.exceptions[0], ValueError)


def test_fail_count_is_a_per_call_budget_that_never_changes(caplog: pytest.LogCaptureFixture) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "bad", 1: "good", 2: "good"})))

    def reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        if pred.answer == "bad":
            raise ValueError("bad answer")
        return 1.0

    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=reward, threshold=1.0, fail_count=1)
    for _ in range(3):
        assert best(question="q").winner.rollout_id == 1
    assert best.fail_count == 1

    async def many() -> list[Any]:
        return await asyncio.gather(*(best.acall(question="q") for _ in range(5)))

    assert [p.winner.rollout_id for p in asyncio.run(many())] == [1] * 5
    assert best.fail_count == 1


def test_failures_are_logged_not_printed(capsys: Any, caplog: pytest.LogCaptureFixture) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "x", 1: "y"})))

    def reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        if pred.answer == "x":
            raise ValueError("x is wrong")
        return 1.0

    with caplog.at_level(logging.WARNING, logger="bestofn_core"):
        pred = bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=reward)(question="q")
    assert pred.answer == "y"
    assert "x is wrong" in caplog.text
    assert capsys.readouterr().out == ""
    assert isinstance(pred.candidates[0].error, ValueError) and pred.candidates[0].reward is None


def test_good_predictions_are_kept_when_the_budget_is_exceeded_late() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "good", 1: "bad", 2: "bad"})))

    def reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        if pred.answer == "bad":
            raise ValueError("bad")
        return 0.5

    with pytest.raises(BestOfNError) as info:
        bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=reward, fail_count=1)(question="q")
    assert info.value.attempts[0].prediction.answer == "good" and info.value.attempts[0].reward == 0.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"N": 0}, "N"),
        ({"N": "3"}, "N"),
        ({"N": True}, "N"),
        ({"N": 2, "fail_count": -1}, "fail_count"),
        ({"N": 2, "threshold": float("nan")}, "threshold"),
        ({"N": 2, "threshold": "high"}, "threshold"),
        ({"N": 2, "concurrency": 0}, "concurrency"),
        ({"N": 2, "sampling": "parallel"}, "sampling"),
    ],
)
def test_bad_arguments_are_clear_errors_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"BestOfN\(\.\.\.\):\n  {field}"):
        bon.BestOfN(bon.Predict("q -> a"), reward_fn=lambda a, p: 1.0, **kwargs)


def test_non_module_and_non_callable_reward_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs a Module"):
        bon.BestOfN(lambda **kw: None, N=2, reward_fn=lambda a, p: 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="reward_fn must be"):
        bon.BestOfN(bon.Predict("q -> a"), N=2, reward_fn=3)


@pytest.mark.parametrize("value", [None, "1.0", float("nan"), float("inf"), [1.0]])
def test_a_reward_that_is_not_a_finite_number_is_a_clear_error(value: Any) -> None:
    bon.configure(lm=DummyLM(lambda r, i: {"answer": "a"}))
    best = bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=lambda a, p: value)
    with pytest.raises(RewardError, match="<lambda>"):
        best(question="q")


def test_bool_rewards_count_as_one_and_zero() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "no", 1: "yes"})))
    pred = bon.BestOfN(
        bon.Predict("question -> answer"), N=2, reward_fn=lambda a, p: p.answer == "yes", threshold=1.0
    )(question="q")
    assert pred.winner.reward == 1.0 and pred.answer == "yes"


# ---------------------------------------------------------------- rewards and policies


def test_async_rewards_are_awaited_and_sync_ones_run_off_the_loop() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "bb"})))
    threads: list[str] = []

    async def async_reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        await asyncio.sleep(0)
        return float(len(pred.answer))

    def sync_reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        threads.append(threading.current_thread().name)
        return float(len(pred.answer))

    assert (
        bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=async_reward)(question="q").answer
        == "bb"
    )
    assert (
        bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=sync_reward)(question="q").answer
        == "bb"
    )
    assert threads and all(name.startswith("bestofn-worker") for name in threads)


def test_reward_receives_the_inputs_and_the_prediction() -> None:
    bon.configure(lm=DummyLM(lambda r, i: {"answer": "4"}))
    seen: list[tuple[dict[str, Any], str]] = []

    def reward(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        seen.append((inputs, pred.answer))
        return 1.0

    bon.BestOfN(bon.Predict("question -> answer"), N=1, reward_fn=reward)(question="2+2?")
    assert seen == [({"question": "2+2?"}, "4")]


def test_reward_by_plugin_reference(reward_plugin: None) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "abc", 2: "ab"})))
    pred = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn="testrewards:answer_length")(
        question="q"
    )
    assert pred.answer == "abc"
    bare = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn="answer_length")
    assert bare.reward_fn.fn is answer_length and bare.reward_fn.ref == "answer_length"


def test_unknown_reward_reference_lists_the_available_ones(reward_plugin: None) -> None:
    with pytest.raises(UnknownNameError, match="testrewards:answer_length"):
        bon.BestOfN(bon.Predict("q -> a"), N=2, reward_fn="testrewards:nope")


def test_policy_by_reference_and_by_object() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "abc", 2: "ab"})))

    class Shortest:
        def should_stop(self, candidates: Any, threshold: float | None) -> bool:
            return False

        def select(self, candidates: Any) -> Any:
            return min((c for c in candidates if c.ok), key=lambda c: c.reward)

    qa = bon.Predict("question -> answer")
    assert bon.BestOfN(qa, N=3, reward_fn=answer_length, policy="threshold")(question="q").answer == "abc"
    assert bon.BestOfN(qa, N=3, reward_fn=answer_length, policy=Shortest())(question="q").answer == "a"
    with pytest.raises(ConfigurationError, match="should_stop"):
        bon.BestOfN(qa, N=3, reward_fn=answer_length, policy=object())


def test_an_lm_judge_reward_module_stays_visible_and_out_of_the_trace(server: Any, make_lm: Any) -> None:
    server.set_responder(lambda req, i: {"answer": "Brussels", "score": 0.9})
    bon.configure(lm=make_lm())

    class Judge(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.grade = bon.Predict("question, answer -> score: float")

        def forward(self, inputs: dict[str, Any], pred: bon.Prediction) -> float:
            return float(self.grade(question=inputs["question"], answer=pred.answer).score)

    judge = Judge()
    qa = bon.Predict("question -> answer")
    best = bon.BestOfN(qa, N=2, reward_fn=judge, threshold=0.5)
    names = [name for name, _ in best.named_predictors()]
    assert names == ["module", "reward_fn.grade"]
    judge_lm = make_lm(model="openai/judge-model")
    best.set_lm(judge_lm)
    assert judge.grade.lm is judge_lm
    qa.lm = None
    with bon.context(trace=[]):
        pred = best(question="Capital of Belgium?")
        trace = bon.settings.trace
    assert pred.answer == "Brussels" and pred.winner.reward == 0.9
    assert len(trace) == 1 and trace[0][0] is qa  # the user's predictor, not a copy; no judge entry


def test_only_the_winners_trace_is_appended() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "bbb", 2: "bb"})))
    qa = bon.Predict("question -> answer")
    with bon.context(trace=[]):
        pred = bon.BestOfN(qa, N=3, reward_fn=answer_length)(question="q")
        trace = bon.settings.trace
    assert len(trace) == 1
    predictor, inputs, traced = trace[0]
    assert predictor is qa and inputs == {"question": "q"} and traced.answer == "bbb" == pred.answer


# ---------------------------------------------------------------- temperature, callbacks, history


def test_bestofn_temperature_wins_over_a_predictor_temperature_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lm = DummyLM(lambda r, i: {"answer": "a"})
    bon.configure(lm=lm)
    with caplog.at_level(logging.WARNING):
        best = bon.BestOfN(
            bon.Predict("question -> answer", temperature=0.2), N=2, reward_fn=lambda a, p: 0.0
        )
    assert "temperature=0.2 is ignored" in caplog.text
    best(question="q")
    assert {r.params["temperature"] for r in lm.requests} == {1.0}
    cooler = bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=lambda a, p: 0.0, temperature=0.7)
    cooler(question="q2")
    assert {r.params["temperature"] for r in lm.requests[2:]} == {0.7}


def test_callbacks_and_history_of_the_wrapped_module_see_the_attempts() -> None:
    lm = DummyLM(lambda r, i: {"answer": "a"})
    bon.configure(lm=lm)
    module_starts: list[str] = []

    class ModuleCount(bon.BaseCallback):
        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            module_starts.append(type(instance).__name__)

    qa = bon.Predict("question -> answer", callbacks=[ModuleCount()])
    bon.BestOfN(qa, N=3, reward_fn=lambda a, p: 0.0)(question="q")
    assert module_starts == ["Predict"] * 3
    assert len(qa.history) == 3 and len(lm.history) == 3


def test_candidates_report_reward_error_usage_and_latency() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "bb"}), delay=0.01))
    bon.configure(track_usage=True)
    pred = bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=answer_length)(question="q")
    first, second = pred.candidates
    assert first.reward == 1.0 and second.reward == 2.0 and first.error is None
    assert first.usage["dummy/model"]["prompt_tokens"] > 0 and first.latency >= 0.01
    total = pred.get_lm_usage()["dummy/model"]
    assert total["completion_tokens"] == (
        first.usage["dummy/model"]["completion_tokens"] + second.usage["dummy/model"]["completion_tokens"]
    )
    assert pred.winner is second
    assert second.to_dict()["prediction"] == {"answer": "bb"}


def test_the_callers_module_is_left_untouched() -> None:
    bon.configure(lm=DummyLM(lambda r, i: {"answer": "a"}))
    qa = bon.Predict("question -> answer", temperature=0.1)
    qa.demos = [bon.Example(question="d", answer="e")]
    bon.BestOfN(qa, N=2, reward_fn=lambda a, p: 0.0)(question="q")
    assert qa.lm is None and qa.config == {"temperature": 0.1} and len(qa.demos) == 1


# ---------------------------------------------------------------- async, batched, save/load


async def test_acall_and_aforward_are_native() -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "bb"})))
    best = bon.BestOfN(bon.Predict("question -> answer"), N=2, reward_fn=answer_length)
    assert (await best.acall(question="q")).answer == "bb"
    assert (await best.aforward(question="q")).answer == "bb"


def test_batched_sampling_is_one_request_with_prompt_tokens_paid_once(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": "x" * (i + 1)})
    bon.configure(track_usage=True)
    best = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=answer_length, sampling="batched")
    pred = best(question="How long?")
    assert len(server.requests) == 1 and server.requests[0].n == 4
    assert pred.answer == "xxxx" and [c.rollout_id for c in pred.candidates] == [0, 1, 2, 3]
    per_rollout = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=answer_length)
    with bon.context(lm=lm.copy(cache=False)):
        other = per_rollout(question="How long?")
    batched_prompt = pred.get_lm_usage()["openai/test-model"]["prompt_tokens"]
    per_rollout_prompt = other.get_lm_usage()["openai/test-model"]["prompt_tokens"]
    assert per_rollout_prompt == 4 * batched_prompt


def test_batched_sampling_tops_up_when_the_backend_returns_fewer_choices() -> None:
    lm = DummyLM(lambda r, i: {"answer": f"r{r.rollout_id}c{i}"}, max_choices=3)
    bon.configure(lm=lm)
    best = bon.BestOfN(bon.Predict("question -> answer"), N=5, reward_fn=lambda a, p: 0.0, sampling="batched")
    pred = best(question="q")
    assert [r.params["n"] for r in lm.requests] == [5, 2]
    assert [r.rollout_id for r in lm.requests] == [0, 3]
    assert len(pred.candidates) == 5 and pred.candidates[3].prediction.answer == "r3c0"


@pytest.mark.parametrize(
    ("adapter", "requests"),
    [(bon.JSONAdapter(), [4]), (bon.ChatAdapter(), [4, 4])],  # ChatAdapter's JSON retry is DSPy's
    ids=["json", "chat"],
)
def test_batched_sampling_keeps_the_choices_it_can_parse(
    lm: bon.LM, server: Any, adapter: Any, requests: list[int]
) -> None:
    # choice 2 copies the prompt's template: one failed attempt, not a failed request of all four
    server.set_responder(lambda req, i: {"answer": ["a", "bb", "{answer}", "dddd"][i]})
    bon.configure(adapter=adapter)
    best = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=answer_length, sampling="batched")
    pred = best(question="How long?")
    assert [request.n for request in server.requests] == requests
    assert pred.answer == "dddd"
    assert [(c.rollout_id, c.ok) for c in pred.candidates] == [(0, True), (1, True), (2, False), (3, True)]
    assert isinstance(pred.candidates[2].error, bon.errors.AdapterParseError)


def test_a_parse_error_of_several_choices_carries_every_choice(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": ["a", "{answer}", "c"][i]})
    bon.configure(adapter=bon.JSONAdapter())
    with pytest.raises(bon.errors.AdapterParseError) as caught:
        bon.Predict("question -> answer", n=3)(question="q")
    choices = caught.value.choices
    assert choices is not None and [type(choice).__name__ for choice in choices] == [
        "dict",
        "AdapterParseError",
        "dict",
    ]
    assert choices[1] is caught.value and choices[2] == {"answer": "c"}
    # one choice: as before, nothing to carry
    server.set_responder(lambda req, i: {"answer": "{answer}"})
    with pytest.raises(bon.errors.AdapterParseError) as single:
        bon.Predict("question -> answer")(question="q")
    assert single.value.choices is None


def test_batched_sampling_needs_n_support_and_one_predictor() -> None:
    bon.configure(lm=DummyLM(lambda r, i: {"answer": "a"}, supports_n=False))
    with pytest.raises(ConfigurationError, match="per_rollout"):
        bon.BestOfN(bon.Predict("q -> a"), N=2, reward_fn=lambda a, p: 0.0, sampling="batched")(q="x")


def test_batched_sampling_respects_the_threshold_in_rollout_order() -> None:
    bon.configure(lm=DummyLM(lambda r, i: {"answer": ["no", "yes", "yes"][i]}))
    pred = bon.BestOfN(
        bon.Predict("question -> answer"), N=3, reward_fn=reward_is("yes"), threshold=1.0, sampling="batched"
    )(question="q")
    assert pred.winner.rollout_id == 1 and len(pred.candidates) == 2


def test_save_and_load_restore_the_configuration(reward_plugin: None, tmp_path: Path) -> None:
    best = bon.BestOfN(
        bon.ChainOfThought("question -> answer"),
        N=5,
        reward_fn="testrewards:answer_length",
        threshold=2.0,
        fail_count=1,
        concurrency=2,
    )
    best.module.predict.demos = [bon.Example(question="q", reasoning="r", answer="a")]
    best.save(tmp_path / "best.json")
    fresh = bon.BestOfN(bon.ChainOfThought("question -> answer"), N=1, reward_fn=lambda a, p: 0.0)
    fresh.load(tmp_path / "best.json")
    assert (fresh.N, fresh.threshold, fresh.fail_count, fresh.concurrency) == (5, 2.0, 1, 2)
    assert fresh.reward_fn.fn is answer_length and fresh.reward_fn.ref == "testrewards:answer_length"
    assert fresh.module.predict.demos[0].answer == "a"


def test_a_callable_reward_is_not_saved_and_stays_as_it_is_on_load(tmp_path: Path) -> None:
    best = bon.BestOfN(bon.Predict("q -> a"), N=3, reward_fn=answer_length)
    best.save(tmp_path / "b.json")
    mine = bon.BestOfN(bon.Predict("q -> a"), N=1, reward_fn=reward_is("x"))
    original = mine.reward_fn
    mine.load(tmp_path / "b.json")
    assert mine.N == 3 and mine.reward_fn is original


def test_no_lm_anywhere_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="no LM"):
        bon.BestOfN(bon.Predict("q -> a"), N=2, reward_fn=lambda a, p: 0.0)(q="x")


def test_parameterised_rewards_are_built_saved_and_restored(reward_plugin: None, tmp_path: Path) -> None:
    bon.configure(lm=DummyLM(by_rollout({0: "a", 1: "abc", 2: "abcd"})))
    at_least_3 = bon.reward("testrewards:min_length", n=3)
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=at_least_3, threshold=1.0)
    assert best(question="q").answer == "abc"
    best.save(tmp_path / "b.json")
    fresh = bon.BestOfN(bon.Predict("question -> answer"), N=1, reward_fn=lambda a, p: 0.0)
    fresh.load(tmp_path / "b.json")
    assert fresh.reward_fn.ref == "testrewards:min_length" and fresh.reward_fn.params == {"n": 3}
    assert fresh(question="q").answer == "abc"
    with pytest.raises(ConfigurationError, match="min_length.*Pass its parameters"):
        bon.reward("testrewards:min_length")
    with pytest.raises(ConfigurationError, match="takes no parameters"):
        bon.reward("testrewards:answer_length", n=2)


def test_the_module_api_works_on_a_bestofn(tmp_path: Path) -> None:
    qa = bon.ChainOfThought("question -> answer")
    best = bon.BestOfN(qa, N=2, reward_fn=answer_length, threshold=5.0)
    assert [name for name, _ in best.named_predictors()] == ["module.predict"]
    assert [name for name, _ in best.named_sub_modules()][:2] == ["self", "self.module"]
    copied = best.deepcopy()
    assert copied.module is not qa and copied.N == 2 and copied.reward_fn is answer_length
    lm = DummyLM(lambda r, i: {"reasoning": "r", "answer": ["a", "bb"][int(r.rollout_id or 0)]})
    best.set_lm(lm)
    assert best.get_lm() is lm
    best.save(tmp_path / "whole", save_program=True)
    loaded = bon.load(tmp_path / "whole", allow_pickle=True)
    assert isinstance(loaded, bon.BestOfN) and loaded.threshold == 5.0
    loaded.set_lm(lm)
    assert loaded(question="q").answer == "bb"
    assert len(loaded.module.predict.history) == 2
    assert len(loaded.history) == 2 and "bb" in loaded.inspect_history(n=2)


# ---------------------------------------------------------------- no reward where none is used


def test_a_majority_vote_needs_no_reward(lm: bon.LM, server: Any) -> None:
    answers = iter(["Lyon", "Paris", "paris.", "Nice", "Paris"])
    server.set_responder(lambda request, index: {"answer": next(answers)})
    best = bon.BestOfN(bon.Predict("question -> answer"), N=5, policy="voting:majority", concurrency=1)
    pred = best(question="What is the capital of France?")
    assert pred.answer == "Paris" and pred.winner.rollout_id == 1
    assert [c.reward for c in pred.candidates] == [None] * 5
    assert all(c.ok for c in pred.candidates)
    assert len(server.requests) == 5


def test_a_majority_vote_without_a_reward_still_counts_failures(lm: bon.LM, server: Any) -> None:
    # a template copy is a failed attempt (a parse error, also in the JSON retry), not a vote
    answers = iter(["{answer}", "{answer}", "Paris", "Lyon", "Paris"])
    server.set_responder(lambda request, index: {"answer": next(answers)})
    best = bon.BestOfN(
        bon.Predict("question -> answer"), N=4, policy="voting:majority", concurrency=1, fail_count=1
    )
    pred = best(question="What is the capital of France?")
    assert pred.answer == "Paris"
    assert [c.ok for c in pred.candidates] == [False, True, True, True]
    first_try = pred.candidates[0].error.__cause__  # ChatAdapter's, before its JSON retry failed too
    assert "`answer` copies the prompt's template ('{answer}')" in str(first_try)


@pytest.mark.parametrize("policy", ["threshold", "voting:weighted", "voting:top_k"])
def test_a_policy_that_chooses_by_reward_without_one_is_refused_at_construction(
    lm: bon.LM, server: Any, policy: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"has no reward_fn, but the selection policy '{policy}'"):
        bon.BestOfN(bon.Predict("question -> answer"), N=3, policy=policy)
    assert server.requests == []


def test_a_policy_that_does_not_say_is_taken_to_need_rewards(lm: bon.LM) -> None:
    class Earliest:
        def should_stop(self, candidates: Any, threshold: float | None) -> bool:
            return False

        def select(self, candidates: Any) -> Any:
            return candidates[0]

    with pytest.raises(ConfigurationError, match="chooses by reward. Pass reward_fn=") as caught:
        bon.BestOfN(bon.Predict("question -> answer"), N=3, policy=Earliest())
    assert "policy='voting:majority'" in str(caught.value)


def test_a_saved_program_without_a_reward_loads_back(lm: bon.LM, tmp_path: Path) -> None:
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, policy="voting:majority")
    best.save(tmp_path / "p.json")
    loaded = bon.BestOfN(bon.Predict("question -> answer"), N=1, policy="voting:majority")
    loaded.load(tmp_path / "p.json")
    assert loaded.N == 3 and loaded.reward_fn is None and loaded.policy_ref == "voting:majority"

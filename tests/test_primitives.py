"""Example, Prediction, settings and usage tracking, without LM calls."""

from __future__ import annotations

import asyncio
import threading

import pytest

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError
from bestofn_core.primitives.usage import UsageTracker


def test_example_fields_inputs_and_labels() -> None:
    ex = bon.Example(question="q?", answer="a").with_inputs("question")
    assert ex.question == "q?" and ex["answer"] == "a"
    assert ex.inputs().toDict() == {"question": "q?"}
    assert ex.labels().toDict() == {"answer": "a"}
    assert ex.without("answer").keys() == ["question"]
    assert ex.copy(answer="b").answer == "b" and ex.answer == "a"
    assert dict(ex.items()) == {"question": "q?", "answer": "a"}
    assert ex == bon.Example({"question": "q?", "answer": "a"})
    with pytest.raises(AttributeError, match="no field 'missing'"):
        _ = ex.missing


def test_example_inputs_without_input_keys_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="with_inputs"):
        bon.Example(a=1).inputs()


def test_prediction_from_completions_keeps_every_completion() -> None:
    pred = bon.Prediction.from_completions([{"answer": "a"}, {"answer": "b"}])
    assert pred.answer == "a"
    assert pred.completions.answer == ["a", "b"]
    assert len(pred.completions) == 2
    assert pred.completions[1].answer == "b"
    with pytest.raises(ValueError):
        bon.Prediction.from_completions([])


def test_prediction_with_score_acts_as_a_number() -> None:
    pred = bon.Prediction(score=0.5)
    assert float(pred) == 0.5 and pred < 1 and pred + 1 == 1.5
    with pytest.raises(TypeError, match="score"):
        float(bon.Prediction(answer="x"))


def test_configure_refuses_unknown_settings_with_the_known_ones_listed() -> None:
    with pytest.raises(ConfigurationError, match="Unknown setting.*lmm.*Known settings:.*lm"):
        bon.configure(lmm=1)
    with pytest.raises(ConfigurationError, match="Unknown setting"), bon.context(bogus=True):
        pass


def test_settings_cannot_be_assigned_directly() -> None:
    with pytest.raises(AttributeError, match="configure"):
        bon.settings.lm = None


def test_context_overrides_are_per_thread() -> None:
    seen: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        with bon.context(num_threads=len(name)):
            barrier.wait()
            seen[name] = bon.settings.num_threads

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "bbb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": 1, "bbb": 3}
    assert bon.settings.num_threads == 8


async def test_context_overrides_are_per_task() -> None:
    async def task(value: int) -> int:
        with bon.context(num_threads=value):
            await asyncio.sleep(0.01)
            return int(bon.settings.num_threads)

    assert await asyncio.gather(task(1), task(2), task(3)) == [1, 2, 3]


def test_configure_sets_the_process_wide_value_seen_by_new_threads() -> None:
    bon.configure(num_threads=3)
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(bon.settings.num_threads))
    t.start()
    t.join()
    assert out == [3]


def test_usage_tracker_sums_per_model_across_threads() -> None:
    tracker = UsageTracker()

    def add() -> None:
        for _ in range(1000):
            tracker.add("m", {"prompt_tokens": 1, "completion_tokens": 2, "details": {"cached": 1}})

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.get_total_tokens() == {
        "m": {"prompt_tokens": 4000, "completion_tokens": 8000, "details": {"cached": 4000}}
    }


def test_track_usage_context_manager_installs_a_tracker() -> None:
    with bon.track_usage() as tracker:
        assert bon.settings.usage_tracker is tracker
        assert bon.settings.track_usage is True
    assert bon.settings.usage_tracker is None

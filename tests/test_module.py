"""Module API: structure, copies, LM accessors, state, calling styles, callbacks, usage and history."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError


class Pipeline(bon.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = bon.Predict("question -> answer")
        self.listed = [bon.Predict("a -> b"), bon.ChainOfThought("c -> d")]
        self.pair = (bon.Predict("e -> f"),)
        self.keyed = {"k": bon.Predict("g -> h")}
        self.inner = Inner()

    def forward(self, question: str) -> bon.Prediction:
        return self.first(question=question)


class Inner(bon.Module):
    def __init__(self) -> None:
        super().__init__()
        self.deep = bon.Predict("x -> y")

    def forward(self, **kwargs: Any) -> bon.Prediction:
        return self.deep(**kwargs)


def test_named_parameters_looks_into_lists_tuples_dicts_and_sub_modules() -> None:
    names = [name for name, _ in Pipeline().named_parameters()]
    assert names == [
        "first",
        "listed[0]",
        "listed[1].predict",
        "pair[0]",
        "keyed['k']",
        "inner.deep",
    ]


def test_compiled_sub_modules_are_frozen() -> None:
    program = Pipeline()
    program.inner._compiled = True
    assert "inner.deep" not in [name for name, _ in program.named_parameters()]


def test_parameters_predictors_and_named_predictors_agree() -> None:
    program = Pipeline()
    assert program.parameters() == program.predictors()
    assert [p for _, p in program.named_predictors()] == program.predictors()
    assert all(isinstance(p, bon.Predict) for p in program.predictors())


def test_a_shared_predictor_is_listed_once() -> None:
    program = Pipeline()
    program.alias = program.first
    assert [name for name, _ in program.named_parameters()].count("first") == 1
    assert len(program.predictors()) == 6


def test_named_sub_modules_breadth_first_with_type_and_skip_compiled() -> None:
    program = Pipeline()
    names = [name for name, _ in program.named_sub_modules()]
    assert names[0] == "self"
    assert "self.inner" in names and "self.inner.deep" in names and "self.listed[1].predict" in names
    assert names.index("self.inner") < names.index("self.inner.deep")
    only_inner = [name for name, _ in program.named_sub_modules(type_=Inner)]
    assert only_inner == ["self.inner"]
    program.inner._compiled = True
    skipped = [name for name, _ in program.named_sub_modules(skip_compiled=True)]
    assert "self.inner" in skipped and "self.inner.deep" not in skipped


def test_map_named_predictors_replaces_every_predictor_in_place() -> None:
    program = Pipeline()
    replacement = bon.Predict("question -> answer")
    replaced: list[str] = []

    def swap(p: bon.Predict) -> bon.Predict:
        replaced.append(p.signature.signature)
        new = bon.Predict(p.signature)
        new.demos = [bon.Example(marker=True)]
        return new

    assert program.map_named_predictors(swap) is program
    assert len(replaced) == 6
    assert all(p.demos and p.demos[0].marker for p in program.predictors())
    assert program.keyed["k"].demos and program.pair[0].demos
    assert replacement not in program.predictors()


def test_set_lm_and_get_lm(make_lm: Any) -> None:
    program = Pipeline()
    assert program.get_lm() is None  # every predictor uses settings.lm
    lm = make_lm()
    program.set_lm(lm)
    assert program.get_lm() is lm
    program.first.lm = make_lm(model="openai/other-model")
    with pytest.raises(ConfigurationError, match="several LMs.*set_lm"):
        program.get_lm()


def test_get_lm_without_predictors_is_a_clear_error() -> None:
    class Empty(bon.Module):
        def forward(self) -> None:
            return None

    with pytest.raises(ConfigurationError, match="no predictors"):
        Empty().get_lm()


def test_deepcopy_copies_parameters_and_shares_the_backend(make_lm: Any) -> None:
    program = Pipeline()
    lm = make_lm()
    program.set_lm(lm)
    program.first.demos = [bon.Example(question="q", answer="a")]
    copied = program.deepcopy()
    assert copied is not program and copied.first is not program.first
    assert copied.first.demos == program.first.demos and copied.first.demos is not program.first.demos
    assert copied.first.lm is not lm and copied.first.lm.model == lm.model
    assert copied.first.lm.backend is lm.backend


def test_deepcopy_falls_back_to_shallow_copies_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    class Unpicklable:
        def __deepcopy__(self, memo: Any) -> Any:
            raise TypeError("no deep copies")

    program = Pipeline()
    program.handle = Unpicklable()
    with caplog.at_level(logging.WARNING):
        copied = program.deepcopy()
    assert isinstance(copied.handle, Unpicklable)
    assert copied.first is not program.first
    assert "cannot be deep-copied" in caplog.text


def test_reset_copy_clears_demos() -> None:
    program = Pipeline()
    program.first.demos = [bon.Example(question="q", answer="a")]
    fresh = program.reset_copy()
    assert fresh.first.demos == [] and program.first.demos


def test_dump_state_and_load_state_round_trip() -> None:
    program = Pipeline()
    program.first.demos = [bon.Example(question="q", answer="a")]
    state = program.dump_state()
    assert set(state) == {name for name, _ in program.named_parameters()}
    other = Pipeline()
    other.load_state(state)
    assert other.first.demos[0].answer == "a"
    with pytest.raises(ConfigurationError, match="no entry for"):
        other.load_state({"first": state["first"]})


def test_sync_module_runs_under_acall_in_a_worker_thread(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": "Brussels"})
    caller_thread: list[str] = []

    class Sync(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = bon.Predict("question -> answer")

        def forward(self, question: str) -> bon.Prediction:
            caller_thread.append(threading.current_thread().name)
            return self.qa(question=question)

    pred = asyncio.run(Sync().acall(question="Capital of Belgium?"))
    assert pred.answer == "Brussels"
    assert caller_thread and caller_thread[0] != threading.main_thread().name


def test_async_module_runs_under_sync_call(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": "Paris"})

    class Async(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = bon.Predict("question -> answer")

        async def aforward(self, question: str) -> bon.Prediction:
            return await self.qa.acall(question=question)

    assert Async()(question="Capital of France?").answer == "Paris"


def test_module_without_forward_is_a_clear_error() -> None:
    with pytest.raises(NotImplementedError, match="forward"):
        bon.Module()()


def test_caller_modules_are_pushed_during_a_call() -> None:
    seen: list[tuple[Any, ...]] = []

    class Outer(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Leaf()

        def forward(self) -> None:
            seen.append(bon.settings.caller_modules)
            self.inner()

    class Leaf(bon.Module):
        def forward(self) -> None:
            seen.append(bon.settings.caller_modules)

    outer = Outer()
    outer()
    assert seen == [(outer,), (outer, outer.inner)]
    assert bon.settings.caller_modules == ()


class Recorder(bon.BaseCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("module_start", type(instance).__name__))

    def on_module_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self.events.append(("module_end", exception))

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("lm_start", sorted(inputs)))

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self.events.append(("lm_end", outputs))

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("format_start", None))

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.events.append(("format_end", None))

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.events.append(("parse_start", None))

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.events.append(("parse_end", outputs))


def test_callbacks_hear_module_lm_and_adapter_events(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"reasoning": "r", "answer": "Brussels"})
    recorder = Recorder()
    bon.configure(callbacks=[recorder])
    bon.ChainOfThought("question -> answer")(question="Capital of Belgium?")
    kinds = [kind for kind, _ in recorder.events]
    assert kinds == [
        "module_start",  # ChainOfThought
        "module_start",  # its Predict
        "format_start",
        "format_end",
        "lm_start",
        "lm_end",
        "parse_start",
        "parse_end",
        "module_end",
        "module_end",
    ]
    assert recorder.events[0][1] == "ChainOfThought" and recorder.events[1][1] == "Predict"
    lm_inputs = dict(recorder.events)["lm_start"]
    assert "api_key" not in lm_inputs and "messages" in lm_inputs


def test_instance_callbacks_fire_and_raising_callbacks_are_logged_not_raised(
    lm: bon.LM, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(bon.BaseCallback):
        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            raise RuntimeError("callback bug")

    recorder = Recorder()
    qa = bon.Predict("question -> answer", callbacks=[Broken(), recorder])
    with caplog.at_level(logging.WARNING):
        pred = qa(question="q")
    assert pred.answer
    assert "callback bug" in caplog.text or "Broken.on_module_start" in caplog.text
    assert ("module_start", "Predict") in recorder.events


def test_module_end_callback_receives_the_exception(lm: bon.LM, server: Any) -> None:
    server.fail_next(400, times=1)
    recorder = Recorder()
    qa = bon.Predict("question -> answer", callbacks=[recorder])
    with pytest.raises(bon.errors.LMRequestError):
        qa(question="q")
    end = [payload for kind, payload in recorder.events if kind == "module_end"]
    assert isinstance(end[0], bon.errors.LMRequestError)


def test_track_usage_attaches_summed_usage_to_the_outermost_prediction(lm: bon.LM, server: Any) -> None:
    class Twice(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = bon.Predict("question -> answer")
            self.b = bon.Predict("question -> answer")

        def forward(self, question: str) -> bon.Prediction:
            first = self.a(question=question)
            assert first.get_lm_usage() is None  # only the outermost call attaches usage
            return self.b(question=question + "?")

    bon.configure(track_usage=True)
    pred = Twice()(question="What is two plus two?")
    usage = pred.get_lm_usage()
    bodies = server.requests
    assert len(bodies) == 2
    assert usage is not None and set(usage) == {"openai/test-model"}
    model_usage = usage["openai/test-model"]
    assert model_usage["prompt_tokens"] > 0 and model_usage["completion_tokens"] > 0
    assert model_usage["total_tokens"] == model_usage["prompt_tokens"] + model_usage["completion_tokens"]


def test_track_usage_sums_across_threads_and_tasks(lm: bon.LM, server: Any) -> None:
    class Fan(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = bon.Predict("question -> answer")

        async def aforward(self, count: int) -> bon.Prediction:
            preds = await asyncio.gather(*(self.qa.acall(question=f"q{i}") for i in range(count)))
            return preds[0]

        def forward(self, count: int) -> bon.Prediction:
            out: list[bon.Prediction] = []
            threads = [
                threading.Thread(target=_in_context(lambda i=i: out.append(self.qa(question=f"t{i}"))))
                for i in range(count)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return out[0]

    bon.configure(track_usage=True)
    single = bon.Predict("question -> answer")(question="solo")
    per_call = single.get_lm_usage()["openai/test-model"]["completion_tokens"]
    fan = Fan()
    from_tasks = asyncio.run(fan.acall(count=4)).get_lm_usage()
    assert from_tasks["openai/test-model"]["completion_tokens"] == 4 * per_call
    from_threads = fan(count=3).get_lm_usage()
    assert from_threads["openai/test-model"]["completion_tokens"] == 3 * per_call


def _in_context(fn: Any) -> Any:
    import contextvars

    ctx = contextvars.copy_context()
    return lambda: ctx.run(fn)


def test_history_lands_on_the_lm_the_module_and_globally(lm: bon.LM, server: Any, capsys: Any) -> None:
    server.set_responder(lambda req, i: {"reasoning": "because", "answer": "Brussels"})
    program = bon.ChainOfThought("question -> answer")
    program(question="Capital of Belgium?")
    assert len(program.history) == 1 and len(program.predict.history) == 1 and len(lm.history) == 1
    text = program.inspect_history(n=1)
    assert "Capital of Belgium?" in text and "Brussels" in text
    assert "Capital of Belgium?" in capsys.readouterr().out
    assert "sk-test-key" not in text and "sk-test-key" not in repr(lm.history)
    assert bon.inspect_history(1) == text


def test_history_is_bounded(lm: bon.LM, server: Any) -> None:
    bon.configure(max_history_size=3)
    qa = bon.Predict("question -> answer")
    for i in range(5):
        qa(question=f"q{i}")
    assert len(lm.history) == 3 and len(qa.history) == 3
    assert "q4" in str(lm.history[-1]["messages"])


def test_deepcopy_starts_a_fresh_history_and_shares_callbacks() -> None:
    recorder = Recorder()
    program = Pipeline()
    program.callbacks = [recorder]
    program.history.extend({"entry": i} for i in range(100))
    copied = program.deepcopy()
    assert copied.history == [] and len(program.history) == 100
    assert copied.callbacks[0] is recorder and copied.callbacks is not program.callbacks

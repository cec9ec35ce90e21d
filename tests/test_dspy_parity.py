"""Behaviours DSPy programs rely on (issue 15): settings, module and example methods, Parallel, callbacks.

Each test drives the public API as a DSPy program would, with LM calls going to the real test server.
The custom-LM behaviours (``BaseLM.forward``, saving custom LMs, ``model_type="text"``) are in
test_dspy_parity_lm.py.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Literal

import pytest

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError, SerializationError
from bestofn_core.primitives.callbacks import with_callbacks

# ---------------------------------------------------------------------------------------------- configure


@pytest.mark.parametrize("bad_lm", ["openai/gpt-4o-mini", 42, print, object()])
def test_configure_refuses_what_is_not_an_lm(bad_lm: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        bon.configure(lm=bad_lm)
    message = str(caught.value)
    assert "BaseLM" in message and type(bad_lm).__name__ in message
    assert bon.settings.lm is None  # nothing was set


def test_configure_with_a_model_string_names_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"configure\(lm=bestofn_core\.LM\('openai/gpt-4o-mini'\)\)"):
        bon.configure(lm="openai/gpt-4o-mini")
    with pytest.raises(ConfigurationError, match="not a string"), bon.context(lm="openai/gpt-4o-mini"):
        pass  # pragma: no cover - the context refuses before the block runs


def test_a_predictor_given_a_model_string_fails_before_any_request(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer")
    qa.lm = "openai/gpt-4o-mini"
    with pytest.raises(ConfigurationError, match="not a string"):
        qa(question="q")
    with pytest.raises(ConfigurationError, match="BaseLM"):
        bon.Predict("question -> answer")(question="q", lm=42)
    assert server.requests == []


def test_best_of_n_and_set_lm_refuse_a_model_string_too(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer")
    with pytest.raises(ConfigurationError, match=r"set_lm\(lm\) must be a language model.*not a string"):
        qa.set_lm("openai/gpt-4o-mini")
    qa.lm = "openai/gpt-4o-mini"
    best = bon.BestOfN(qa, N=2, reward_fn=lambda args, pred: 1.0, threshold=1.0)
    with pytest.raises(ConfigurationError, match="BestOfN's module must be a language model"):
        best(question="q")
    assert server.requests == []


def test_configure_still_accepts_lms_and_none(lm: bon.LM) -> None:
    bon.configure(lm=None)
    assert bon.settings.lm is None
    bon.configure(lm=lm)
    assert bon.settings.lm is lm


# ---------------------------------------------------------------------------------------------- settings


def test_disable_history_turns_history_off_per_module_and_lm(lm: bon.LM, server: Any) -> None:
    class Program(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = bon.ChainOfThought("question -> answer")

        def forward(self, question: str) -> Any:
            return self.cot(question=question)

    program = Program()
    program(question="q1")
    assert len(program.history) == len(program.cot.history) == len(lm.history) == 1
    bon.configure(disable_history=True)
    program(question="q2")
    assert len(program.history) == len(program.cot.history) == len(lm.history) == 1
    with bon.context(disable_history=False):
        program(question="q3")
    assert len(program.history) == 2 and len(lm.history) == 2
    assert len(server.requests) == 3


@pytest.fixture
def predict_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="bestofn_core.predict")
    return caplog


def _mismatches(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Type mismatch" in r.getMessage()]


def test_input_type_mismatch_is_logged_as_dspy_does(
    lm: bon.LM, server: Any, predict_warnings: pytest.LogCaptureFixture
) -> None:
    class Typed(bon.Signature):
        count: int = bon.InputField()
        names: list[str] = bon.InputField()
        pair: tuple[str, int] = bon.InputField()
        mode: Literal["auto", "manual"] | None = bon.InputField()
        mapping: dict[str, int] = bon.InputField()
        result: str = bon.OutputField()

    qa = bon.Predict(Typed)
    qa(count=1, names=["a"], pair=("x", 1), mode=None, mapping={"a": 1})
    assert _mismatches(predict_warnings) == []
    qa(count="one", names=[1], pair=("x", "y"), mode="other", mapping={1: 1})
    warnings = _mismatches(predict_warnings)
    # the type is named as the prompts name it (adapters.values.annotation_name)
    mode = warnings.pop(3)
    assert mode.startswith("Type mismatch for field 'mode': expected Optional[Literal['auto', 'manual']]")
    assert mode.endswith("but the provided value is incompatible: other.")
    assert warnings == [
        "Type mismatch for field 'count': expected int based on given Signature, but the provided value is "
        "incompatible: one.",
        "Type mismatch for field 'names': expected list[str] based on given Signature, but the provided "
        "value is incompatible: [1].",
        "Type mismatch for field 'pair': expected tuple[str, int] based on given Signature, but the provided "
        "value is incompatible: ('x', 'y').",
        "Type mismatch for field 'mapping': expected dict[str, int] based on given Signature, but the "
        "provided value is incompatible: {1: 1}.",
    ]
    assert len(server.requests) == 2  # a warning, not an error


def test_untyped_fields_and_lists_of_strings_never_warn(
    lm: bon.LM, predict_warnings: pytest.LogCaptureFixture
) -> None:
    bon.Predict("count, name -> result")(count="abc", name=123)

    class Untyped(bon.Signature):
        count = bon.InputField()
        name: str = bon.InputField()
        result = bon.OutputField()

    bon.Predict(Untyped)(count=3, name=["a", "b"])
    assert _mismatches(predict_warnings) == []


def test_warn_on_type_mismatch_false_silences_the_warning(
    lm: bon.LM, predict_warnings: pytest.LogCaptureFixture
) -> None:
    bon.configure(warn_on_type_mismatch=False)
    bon.Predict("count: int -> result")(count="not an int")
    assert _mismatches(predict_warnings) == []
    with bon.context(warn_on_type_mismatch=True):
        bon.Predict("count: int -> result")(count="not an int")
    assert len(_mismatches(predict_warnings)) == 1


def test_settings_save_and_load_settings_round_trip(make_lm: Any, tmp_path: Path) -> None:
    model = make_lm(temperature=0.5)
    bon.configure(lm=model, adapter=bon.JSONAdapter(), callbacks=[bon.BaseCallback()], track_usage=True)
    bon.settings.save(tmp_path / "settings.pkl", exclude_keys=["track_usage"])
    bon.configure(lm=None, adapter=None, callbacks=None, track_usage=False)

    with pytest.raises(SerializationError, match="allow_pickle=True"):
        bon.load_settings(tmp_path / "settings.pkl")
    loaded = bon.load_settings(tmp_path / "settings.pkl", allow_pickle=True)
    assert "track_usage" not in loaded and "usage_tracker" not in loaded and "caller_modules" not in loaded
    bon.configure(**loaded)
    assert bon.settings.lm.model == "openai/test-model" and bon.settings.lm.kwargs["temperature"] == 0.5
    assert "api_key" not in bon.settings.lm.kwargs  # secrets never reach the file
    assert isinstance(bon.settings.adapter, bon.JSONAdapter) and len(bon.settings.callbacks) == 1
    assert bon.settings.track_usage is False


def test_settings_save_refuses_unknown_exclude_keys_and_unpicklable_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no_such_setting"):
        bon.settings.save(tmp_path / "s.pkl", exclude_keys=["no_such_setting"])
    bon.configure(callbacks=[_Unpicklable()])
    with pytest.raises(SerializationError, match="callbacks"):
        bon.settings.save(tmp_path / "s.pkl")
    assert not (tmp_path / "s.pkl").exists()


class _Unpicklable(bon.BaseCallback):
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this callback")


def test_load_settings_refuses_a_file_that_holds_no_settings(tmp_path: Path) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(["not", "settings"]))
    with pytest.raises(SerializationError, match="no settings"):
        bon.load_settings(path, allow_pickle=True)


def test_settings_copy_is_a_snapshot_that_configure_accepts(lm: bon.LM) -> None:
    saved = bon.settings.copy()
    bon.configure(lm=None, num_threads=3)
    bon.configure(**saved)
    assert bon.settings.lm is lm and bon.settings.num_threads == 8


# ---------------------------------------------------------------------------------------------- methods


def test_append_instructions_keeps_the_old_ones() -> None:
    sig = bon.Signature("question -> answer", "Answer briefly.")
    longer = sig.append_instructions("Use French.")
    assert longer.instructions == "Answer briefly.\n\nUse French."
    assert sig.instructions == "Answer briefly." and list(longer.fields) == ["question", "answer"]


def test_predict_update_config_and_get_config(lm: bon.LM, server: Any) -> None:
    qa = bon.Predict("question -> answer", temperature=0.1)
    qa.update_config(temperature=0.7, top_p=0.5)
    assert qa.get_config() == {"temperature": 0.7, "top_p": 0.5}
    qa(question="q")
    assert server.requests[0].body["temperature"] == 0.7 and server.requests[0].body["top_p"] == 0.5
    with pytest.raises(ConfigurationError, match="temperature"):
        qa.update_config(temperature=-1)
    assert qa.get_config()["temperature"] == 0.7


def test_infer_prefix_is_public() -> None:
    assert bon.infer_prefix("isHTTPSSecure123") == "Is HTTPS Secure 123"


# ---------------------------------------------------------------------------------------------- Parallel


def test_parallel_runs_a_nested_parallel_given_a_list_of_pairs(lm: bon.LM, server: Any) -> None:
    server.set_responder(lambda req, i: {"output": req.last_user_text.split("[[ ## input ## ]]\n")[1][:2]})
    first, second = bon.Predict("input -> output"), bon.Predict("input -> output")
    parallel = bon.Parallel(num_threads=2)
    results = parallel(
        [
            (first, {"input": "a1"}),
            (parallel, [(second, {"input": "b1"}), (first, {"input": "b2"})]),
            (bon.Parallel(), [(second, {"input": "c1"})]),
        ]
    )
    assert results[0].output == "a1"
    assert [r.output for r in results[1]] == ["b1", "b2"]
    assert [r.output for r in results[2]] == ["c1"]


def test_a_list_for_anything_but_a_parallel_is_still_refused(lm: bon.LM) -> None:
    with pytest.raises(ConfigurationError, match=r"examples\[0\]: a list, which only a Parallel takes"):
        bon.Parallel()([(bon.Predict("input -> output"), [("input", "x")])])


def test_parallel_exposes_its_settings() -> None:
    parallel = bon.Parallel(num_threads=3, max_errors=2, timeout=30, straggler_limit=1)
    assert (parallel.num_threads, parallel.max_errors, parallel.timeout, parallel.straggler_limit) == (
        3,
        2,
        30,
        1,
    )
    assert parallel.access_examples is True and parallel.return_failed_examples is False
    assert bon.Parallel().timeout == 120 and bon.Parallel().straggler_limit == 3
    assert bon.Parallel().num_threads == 8  # left to its setting: the value a call would use now
    parallel.timeout = 5
    assert parallel.timeout == 5
    with pytest.raises(ConfigurationError, match="straggler_limit"):
        parallel.straggler_limit = -1


# ---------------------------------------------------------------------------------------------- Example


def test_example_hides_dspy_prefixed_keys_as_dspy_does() -> None:
    example = bon.Example(a=1, b=2, dspy_uuid="x", dspy_split="train")
    assert len(example) == 2
    assert example.keys() == ["a", "b"] and example.values() == [1, 2]
    assert example.items() == [("a", 1), ("b", 2)]
    assert example.keys(include_dspy=True) == ["a", "b", "dspy_uuid", "dspy_split"]
    assert example.dspy_uuid == "x" and example["dspy_split"] == "train"
    assert repr(example) == "Example({'a': 1, 'b': 2}) (input_keys=None)"


def test_loaded_demos_compare_equal_to_the_dicts_they_were_saved_from(tmp_path: Path) -> None:
    qa = bon.ChainOfThought("q -> a")
    qa.predict.demos = [
        bon.Example(q="What is the capital of France?", a="Paris", reasoning="n/a").with_inputs("q"),
        {"q": "2+2?", "a": "4"},
    ]
    qa.save(tmp_path / "qa.json")
    loaded = bon.ChainOfThought("q -> a")
    loaded.load(tmp_path / "qa.json")
    assert loaded.predict.demos[0] == qa.predict.demos[0].toDict()
    assert loaded.predict.demos == [qa.predict.demos[0].toDict(), {"q": "2+2?", "a": "4"}]
    assert loaded.predict.demos[0].q == "What is the capital of France?"  # still an Example
    assert loaded.predict.demos[0] != {"q": "What is the capital of France?"}
    assert bon.Example(a=1) != ""


# ---------------------------------------------------------------------------------------------- Module


def test_named_sub_modules_names_dict_entries_as_dspy_does() -> None:
    root = bon.Module()
    root.children = [bon.Module(), {"key": bon.Module(), 3: bon.Module()}]
    names = {name for name, _ in root.named_sub_modules()}
    assert names == {"self", "self.children[0]", "self.children[1][key]", "self.children[1][3]"}


def test_calling_forward_directly_warns_as_dspy_does(caplog: pytest.LogCaptureFixture) -> None:
    class Echo(bon.Module):
        def forward(self, x: str) -> str:
            return x

    echo = Echo()
    with caplog.at_level(logging.WARNING, logger="bestofn_core"):
        assert echo(x="through __call__") == "through __call__"
        assert echo.acall is not None and not caplog.records
        assert echo.forward("direct") == "direct"
    (record,) = caplog.records
    assert record.getMessage() == (
        "Calling module.forward(...) on Echo directly is discouraged. Please use module(...) instead."
    )


@pytest.mark.asyncio
async def test_acall_and_module_composition_do_not_warn(lm: bon.LM, caplog: pytest.LogCaptureFixture) -> None:
    class Program(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = bon.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            return self.qa(question=question)

    with caplog.at_level(logging.WARNING, logger="bestofn_core"):
        Program()(question="q")
        await Program().acall(question="q")
        bon.Parallel()([(Program(), {"question": "q"})])
        bon.BestOfN(Program(), N=2, reward_fn=lambda args, pred: 1.0, threshold=1.0)(question="q")
    assert [r.getMessage() for r in caplog.records if "discouraged" in r.getMessage()] == []


# ---------------------------------------------------------------------------------------------- callbacks


class _Recorder(bon.BaseCallback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.calls.append(("on_module_start", inputs))

    def on_module_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self.calls.append(("on_module_end", outputs if exception is None else exception))

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.calls.append(("on_lm_start", None))

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self.calls.append(("on_lm_end", None))

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.calls.append(("on_adapter_format_start", None))

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.calls.append(("on_adapter_format_end", None))

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.calls.append(("on_adapter_parse_start", None))

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self.calls.append(("on_adapter_parse_end", None))


@pytest.mark.parametrize(
    "args, kwargs", [((1, "2", 3.0), {}), ((1,), {"y": "2", "z": 3.0}), ((), {"x": 1, "y": "2", "z": 3.0})]
)
def test_with_callbacks_used_bare_as_in_dspy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    class Target(bon.Module):
        @with_callbacks
        def forward(self, x: int, y: str, z: float) -> int:
            return x + int(y) + int(z)

    recorder = _Recorder()
    bon.configure(callbacks=[recorder])
    assert Target().forward(*args, **kwargs) == 6
    assert recorder.calls == [("on_module_start", {"x": 1, "y": "2", "z": 3.0}), ("on_module_end", 6)]


def test_bare_with_callbacks_reports_the_exception_and_async_methods() -> None:
    class Target(bon.Module):
        @with_callbacks
        async def aforward(self, x: int) -> int:
            raise ValueError("boom")

    recorder = _Recorder()
    with pytest.raises(ValueError, match="boom"):
        Target(callbacks=[recorder])(x=1)
    assert [name for name, _ in recorder.calls] == ["on_module_start"] * 2 + ["on_module_end"] * 2
    assert isinstance(recorder.calls[-1][1], ValueError)


def test_dspy_callbacks_see_the_same_calls_for_a_chain_of_thought(lm: bon.LM) -> None:
    recorder = _Recorder()
    bon.configure(callbacks=[recorder])
    bon.ChainOfThought("question -> answer", n=3)(question="How are you?")
    assert [name for name, _ in recorder.calls] == [
        "on_module_start",
        "on_module_start",
        "on_adapter_format_start",
        "on_adapter_format_end",
        "on_lm_start",
        "on_lm_end",
        *["on_adapter_parse_start", "on_adapter_parse_end"] * 3,
        "on_module_end",
        "on_module_end",
    ]


def test_callback_call_ids_nest_as_in_dspy() -> None:
    from bestofn_core.primitives.callbacks import ACTIVE_CALL_ID

    seen: list[tuple[str, str | None]] = []

    class Ids(bon.BaseCallback):
        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            seen.append((call_id, ACTIVE_CALL_ID.get()))

    class Child(bon.Module):
        def forward(self) -> None:
            return None

    class Parent(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.children = [Child(), Child()]

        def forward(self) -> None:
            for child in self.children:
                child()

    bon.configure(callbacks=[Ids()])
    Parent()()
    parent_id = seen[0][0]
    assert [parent for _, parent in seen] == [None, parent_id, parent_id]
    assert len({call_id for call_id, _ in seen}) == 3
    assert ACTIVE_CALL_ID.get() is None


def test_dspy_only_handlers_exist_on_base_callback() -> None:
    callback = bon.BaseCallback()
    callback.on_tool_start("id", None, {})
    callback.on_tool_end("id", None, None)
    callback.on_evaluate_start("id", None, {})
    callback.on_evaluate_end("id", None, None)

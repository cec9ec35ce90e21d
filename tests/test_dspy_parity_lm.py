"""Custom LMs written the DSPy way, saving them, and LM call details DSPy programs rely on (issue 15).

Custom LMs here call the real test server the way DSPy users' LMs call their provider: through litellm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import litellm
import pytest

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError, LMError, LMRequestError
from bestofn_core.lm.cache import configure_cache

# ---------------------------------------------------------------------------------------------- forward()


class ForwardLM(bon.BaseLM):
    """DSPy's documented extension point: ``forward`` returns the provider's OpenAI-style response."""

    def __init__(self, model: str, api_base: str, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.api_base = api_base
        self.forward_calls: list[dict[str, Any]] = []

    def forward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Any:
        self.forward_calls.append(dict(kwargs))
        return litellm.completion(
            model=self.model,
            messages=messages or [{"role": "user", "content": prompt}],
            api_base=self.api_base,
            api_key="sk-test",
            **self.kwargs,
            **kwargs,
        )


def test_a_base_lm_with_forward_is_used_by_predict_and_both_adapters(server: Any) -> None:
    server.set_responder(lambda req, i: {"answer": "Paris"})
    custom = ForwardLM("openai/custom-model", server.url, temperature=0.5)
    bon.configure(lm=custom, track_usage=True)
    qa = bon.Predict("question -> answer", max_tokens=64)
    prediction = qa(question="Capital of France?")
    assert prediction.answer == "Paris"
    with bon.context(adapter=bon.JSONAdapter()):
        assert qa(question="Capital of France, as JSON?").answer == "Paris"
    # forward gets the call's own parameters, as in DSPy: self.kwargs stay on the LM (no duplicates)
    assert custom.forward_calls[0] == {"max_tokens": 64}
    first = server.requests[0].body
    assert first["model"] == "custom-model" and first["temperature"] == 0.5 and first["max_tokens"] == 64
    # the kernel's machinery applies as for any LM: history, usage, cache
    assert len(custom.history) == 2 and custom.history[0]["outputs"][0].endswith("[[ ## completed ## ]]")
    assert prediction.get_lm_usage()["openai/custom-model"]["total_tokens"] > 0
    assert qa(question="Capital of France?").answer == "Paris"
    assert len(server.requests) == 2  # the third call came from the cache


class AsyncForwardLM(ForwardLM):
    """An LM with ``aforward``: awaited on the event loop, no thread."""

    async def aforward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Any:
        self.forward_calls.append({"async": True, **kwargs})
        response = await litellm.acompletion(
            model=self.model, messages=messages, api_base=self.api_base, api_key="sk-test", **kwargs
        )
        return response.model_dump()  # a plain dict in the chat-completion format works too


@pytest.mark.asyncio
async def test_a_base_lm_with_aforward_is_awaited(server: Any) -> None:
    custom = AsyncForwardLM("openai/custom-model", server.url)
    server.set_responder(lambda req, i: {"answer": f"choice {i}"})
    prediction = await bon.Predict("question -> answer", n=2).acall(question="q", lm=custom)
    assert prediction.completions.answer == ["choice 0", "choice 0"]
    assert all(call.get("async") for call in custom.forward_calls)
    assert len(server.requests) == 2  # no one-request n sampling: one request per choice


class TextCompletionLM(bon.BaseLM):
    """``forward`` may return the text-completion format (``choices[i].text``) as a dict."""

    def forward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Any:
        return {
            "model": "echo",
            "choices": [{"text": "[[ ## answer ## ]]\nfrom text", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }


def test_forward_may_return_the_text_completion_format() -> None:
    lm = TextCompletionLM("custom/echo")
    assert bon.Predict("question -> answer")(question="q", lm=lm).answer == "from text"
    assert lm.history[0]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


class NothingLM(bon.BaseLM):
    pass


class BadShapeLM(bon.BaseLM):
    def forward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Any:
        return ["not", "a", "response"]


def test_a_base_lm_without_forward_names_the_methods_to_write() -> None:
    with pytest.raises(NotImplementedError, match=r"NothingLM must implement forward\(\)"):
        bon.Predict("question -> answer")(question="q", lm=NothingLM("custom/x"))


def test_forward_returning_something_else_names_the_expected_shape() -> None:
    with pytest.raises(LMError, match=r"BadShapeLM.forward\(\) returned a list.*choices"):
        bon.Predict("question -> answer")(question="q", lm=BadShapeLM("custom/x", num_retries=0))


# ---------------------------------------------------------------------------------------------- __call__


class SpyLM(bon.LM):
    """The pattern of DSPy's own tests: an LM subclass overriding ``__call__``."""

    def __init__(self, *args: Any, reply: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict[str, Any]] = []
        self.reply = reply

    def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        self.calls.append({"prompt": prompt, "messages": messages, "kwargs": kwargs})
        if self.reply is not None:
            return [self.reply]
        return super().__call__(prompt, messages, **kwargs)  # the real LM call, to the test server


@pytest.mark.parametrize(
    "adapter, reply",
    [(bon.ChatAdapter(), "[[ ## answer ## ]]\n100%!"), (bon.JSONAdapter(), '{"answer": "100%!"}')],
)
def test_an_lm_overriding_call_is_used_by_the_adapters(adapter: Any, reply: str) -> None:
    spy = SpyLM("openai/spy", reply=reply)
    bon.configure(lm=spy, adapter=adapter)
    assert bon.Predict("question -> answer", temperature=0.2)(question="are you sure?").answer == "100%!"
    (call,) = spy.calls
    assert call["prompt"] is None and call["kwargs"]["temperature"] == 0.2
    assert "are you sure?" in call["messages"][-1]["content"]


def test_an_overridden_call_may_delegate_to_the_real_lm(server: Any) -> None:
    spy = SpyLM("openai/spy", api_base=server.url, api_key="sk-test", backend="litellm:litellm")
    server.set_responder(lambda req, i: {"answer": "from the server"})
    assert bon.Predict("question -> answer")(question="q", lm=spy).answer == "from the server"
    assert len(spy.calls) == 1 and len(server.requests) == 1 and len(spy.history) == 1


@pytest.mark.asyncio
async def test_an_overridden_call_is_used_from_async_code_too() -> None:
    spy = SpyLM("openai/spy", reply="[[ ## answer ## ]]\nasync")
    assert (await bon.Predict("question -> answer").acall(question="q", lm=spy)).answer == "async"
    assert len(spy.calls) == 1


# ---------------------------------------------------------------------------------------------- save/load


class DeploymentLM(ForwardLM):
    """A custom LM with state of its own, saved and restored through dump_state/load_state (DSPy's way)."""

    def __init__(self, model: str, api_base: str, *, deployment: str, **kwargs: Any) -> None:
        super().__init__(model, api_base, **kwargs)
        self.deployment = deployment

    def dump_state(self) -> dict[str, Any]:
        return {**super().dump_state(), "deployment": self.deployment, "api_base": self.api_base}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> DeploymentLM:
        state = dict(state)
        return cls(state.pop("model"), state.pop("api_base"), deployment=state.pop("deployment"), **state)


class Outer:
    class InnerLM(ForwardLM):
        pass


def _saved_predictor(tmp_path: Path, lm: Any) -> Path:
    qa = bon.Predict("question -> answer")
    qa.lm = lm
    path = tmp_path / "qa.json"
    qa.save(path)
    return path


def test_a_custom_lm_is_refused_on_load_unless_the_file_is_trusted(tmp_path: Path, server: Any) -> None:
    path = _saved_predictor(
        tmp_path, DeploymentLM("openai/custom", server.url, deployment="prod", temperature=0.3)
    )
    saved = json.loads(path.read_text())["lm"]
    assert saved["lm_class"] == f"{__name__}.DeploymentLM" and "api_key" not in saved

    with pytest.raises(ConfigurationError) as caught:
        bon.Predict("question -> answer").load(path)
    message = str(caught.value)  # DSPy's wording, which DSPy users match on
    assert f"Refusing to import custom serialized LM class `{__name__}.DeploymentLM`" in message
    assert "allow_unsafe_lm_state=True" in message

    loaded = bon.Predict("question -> answer").load(path, allow_unsafe_lm_state=True)
    assert type(loaded.lm) is DeploymentLM
    assert (loaded.lm.model, loaded.lm.deployment, loaded.lm.kwargs) == (
        "openai/custom",
        "prod",
        {"temperature": 0.3},
    )
    server.set_responder(lambda req, i: {"answer": "restored"})
    assert loaded(question="q").answer == "restored"


def test_a_nested_custom_lm_class_restores_from_state(server: Any) -> None:
    qa = bon.Predict("question -> answer")
    qa.lm = Outer.InnerLM("openai/nested", server.url)
    state = qa.dump_state()
    # an LM without load_state of its own is rebuilt from the BaseLM constructor arguments it saved
    state["lm"]["api_base"] = server.url
    loaded = bon.Predict("question -> answer").load_state(state, allow_unsafe_lm_state=True)
    assert type(loaded.lm) is Outer.InnerLM and loaded.lm.api_base == server.url


def test_a_whole_program_loads_custom_lms_with_the_opt_in(tmp_path: Path, server: Any) -> None:
    class Program(bon.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = bon.Predict("question -> answer")
            self.second = bon.ChainOfThought("question -> answer")

    program = Program()
    program.set_lm(DeploymentLM("openai/custom", server.url, deployment="eu"))
    program.save(tmp_path / "program.json")
    with pytest.raises(ConfigurationError, match="allow_unsafe_lm_state"):
        Program().load(tmp_path / "program.json")
    loaded = Program().load(tmp_path / "program.json", allow_unsafe_lm_state=True)
    assert all(type(p.lm) is DeploymentLM and p.lm.deployment == "eu" for p in loaded.predictors())


def test_trusted_state_must_still_name_a_base_lm_class(tmp_path: Path) -> None:
    qa = bon.Predict("question -> answer")
    for lm_class, problem in [
        ("pathlib.Path", "not a BaseLM subclass"),
        ("no_such_module_xyz.LM", "cannot be imported"),
        ("os.system", "not a BaseLM subclass"),
    ]:
        state = {"lm": {"lm_class": lm_class, "model": "openai/x"}}
        with pytest.raises(ConfigurationError, match=problem):
            qa.load_state(state, allow_unsafe_lm_state=True)


def test_the_builtin_lm_needs_no_unsafe_opt_in_and_dspy_markers_are_understood() -> None:
    qa = bon.Predict("question -> answer")
    qa.lm = bon.LM("openai/gpt-4o-mini", temperature=0.2)
    state = qa.dump_state()
    assert "lm_class" not in state["lm"]  # files saved before custom LMs were supported load as before
    for marker in ({}, {"_dspy_lm_class": "dspy.clients.lm.LM"}, {"lm_class": "bestofn_core.lm.lm.LM"}):
        saved = {**state, "lm": {**state["lm"], **marker}}
        # letting the file choose the LM (allow_lm_from_file) is enough for the built-in class: no
        # class is imported, so allow_unsafe_lm_state is not needed
        with bon.context(allow_lm_from_file=True):
            loaded = bon.Predict("question -> answer").load_state(saved)
        assert type(loaded.lm) is bon.LM and loaded.lm.kwargs == {"temperature": 0.2}
    custom = {**state, "lm": {**state["lm"], "_dspy_lm_class": "my_package.MyLM"}}
    with pytest.raises(ConfigurationError, match="my_package.MyLM"):
        bon.Predict("question -> answer").load_state(custom)


def test_a_kwarg_never_names_the_saved_class() -> None:
    qa = bon.Predict("question -> answer")
    qa.lm = bon.LM("openai/gpt-4o-mini", **{"_dspy_lm_class": "evil.LM", "lm_class": "evil.LM"})
    assert "lm_class" not in qa.dump_state()["lm"] and "_dspy_lm_class" not in qa.dump_state()["lm"]
    with bon.context(allow_lm_from_file=True):
        assert type(bon.Predict("question -> answer").load_state(qa.dump_state()).lm) is bon.LM


def test_a_predictor_with_an_lm_keeps_it_when_loading(server: Any) -> None:
    state = {"lm": {"lm_class": "my_package.MyLM", "model": "openai/custom", "temperature": 0.9}}
    qa = bon.Predict("question -> answer")
    mine = bon.LM("openai/custom", api_base=server.url)
    qa.lm = mine
    qa.load_state(state)  # the configured LM is the user's choice: the file only tunes its settings
    assert type(qa.lm) is bon.LM and qa.lm.kwargs["temperature"] == 0.9


# ---------------------------------------------------------------------------------------------- call details


def test_predicted_outputs_are_sent_to_the_provider(lm: bon.LM, server: Any) -> None:
    predicted = {"type": "content", "content": "A chicken crossing the kitchen"}
    bon.Predict("question -> answer")(question="Why?", prediction=predicted)
    assert server.requests[0].body["prediction"] == predicted
    # an input field named `prediction` stays an input
    bon.Predict("question, prediction -> judgement")(question="Why?", prediction="To get to the other side!")
    assert "prediction" not in server.requests[1].body
    assert "To get to the other side!" in server.requests[1].last_user_text


def test_model_type_text_uses_the_completions_endpoint(server: Any) -> None:
    text_lm = bon.LM("openai/test-model", model_type="text", api_base=server.url, api_key="sk-test")
    server.set_responder(lambda req, i: {"answer": "Paris"})
    assert bon.Predict("question -> answer")(question="Capital?", lm=text_lm).answer == "Paris"
    (request,) = server.requests
    assert request.path == "/v1/completions" and "messages" not in request.body
    assert request.body["prompt"].endswith("BEGIN RESPONSE:") and "Capital?" in request.body["prompt"]


def test_model_type_responses_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"model_type.*'chat' or 'text'"):
        bon.LM("openai/gpt-4o-mini", model_type="responses")


def test_an_exception_raised_before_the_request_is_sent_is_not_retried(make_lm: Any, server: Any) -> None:
    model = make_lm(num_retries=3, cache=False)
    with pytest.raises(LMRequestError) as caught:
        model(messages=[{"role": "user", "content": object()}])
    assert "before reaching the provider" in str(caught.value) and "TypeError" in str(caught.value)
    assert server.requests == []  # nothing was sent, and no retry was attempted
    assert len(model.history) == 0


def test_an_http_500_is_still_retried(make_lm: Any, server: Any) -> None:
    server.fail_next(500)
    assert make_lm(cache=False)(prompt="hi")
    assert len(server.requests) == 2


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path) -> None:
    configure_cache(disk_cache_dir=tmp_path / "lm-cache")

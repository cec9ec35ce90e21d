"""``openai/`` model strings once the plugin is installed: the lean client, or litellm when only it can send.

The test server tells the two clients apart by their User-Agent: the lean client sends
``bestofn-openai-http/<version>``, litellm the OpenAI SDK's ``AsyncOpenAI/Python <version>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from bestofn_openai_http import plugin
from bestofn_openai_http.routing import SENT_AS_IS, litellm_only_reason

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError
from bestofn_core.plugins import reset_plugins
from bestofn_core.protocols import LMRequest

MESSAGES = [{"role": "user", "content": "Say hello."}]
MakeLM = Callable[..., bon.LM]
#: What litellm sends for ``max_tokens=50`` to a reasoning model.
RENAMED = {"max_completion_tokens": 50}


class Answer(pydantic.BaseModel):
    """A structured output for ``response_format``."""

    answer: str


def sent_by(server: Any) -> str:
    """Which client sent the server's only request: ``"lean"`` or ``"litellm"``."""
    (request,) = server.requests
    agent = request.headers.get("user-agent", "")
    if agent.startswith("bestofn-openai-http/"):
        return "lean"
    assert agent.startswith("AsyncOpenAI/Python"), agent
    return "litellm"


def request_for(model: str = "openai/gpt-4o-mini", **kwargs: Any) -> LMRequest:
    """The request an ``LM(model, **kwargs)`` sends, split into params and credentials as the kernel does."""
    from bestofn_core.lm.credentials import split_kwargs

    params, credentials = split_kwargs(kwargs)
    return LMRequest(model=model, messages=MESSAGES, params=params, credentials=credentials)


def test_an_openai_model_string_is_sent_by_the_lean_client(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm("openai/test-model", temperature=1.0, max_tokens=64, n=2, seed=3, stop=["\\n"])
    assert lm.backend is plugin.openai_backend
    assert len(lm(messages=MESSAGES)) == 2
    assert sent_by(server) == "lean"
    body = server.requests[0].body
    assert body["model"] == "test-model"
    assert {key: body[key] for key in ("temperature", "max_tokens", "n", "seed", "stop")} == {
        "temperature": 1.0,
        "max_tokens": 64,
        "n": 2,
        "seed": 3,
        "stop": ["\\n"],
    }


def test_predict_chain_of_thought_and_best_of_n_use_the_lean_client(make_lm: MakeLM, server: Any) -> None:
    server.set_responder(lambda request, i: {"reasoning": "r", "answer": "x" * (i + 1)})
    bon.configure(lm=make_lm("openai/test-model"))
    best = bon.BestOfN(
        bon.ChainOfThought("question -> answer"),
        N=3,
        reward_fn=lambda inputs, prediction: float(len(prediction.answer)),
        sampling="batched",
    )
    assert best(question="q").answer == "xxx"
    assert sent_by(server) == "lean" and server.requests[0].n == 3


@pytest.mark.parametrize(
    ("model", "settings", "reason", "sent"),
    [
        # a connection setting of another provider: litellm knows what to do with it
        ("openai/test-model", {"api_version": "2024-06-01"}, "connection setting(s) api_version", {}),
        # reasoning models: litellm renames max_tokens
        ("openai/o3-mini", {"max_tokens": 50}, "the reasoning model 'o3-mini'", RENAMED),
        ("openai/gpt-5-mini", {"max_tokens": 50}, "the reasoning model 'gpt-5-mini'", RENAMED),
        # parameters litellm consumes or merges
        ("openai/test-model", {"metadata": {"run": "a"}}, "parameter(s) metadata", {}),
        ("openai/test-model", {"extra_body": {"top_k": 5}}, "parameter(s) extra_body", {"top_k": 5}),
        ("openai/test-model", {"top_k": 5}, "parameter(s) top_k", {"top_k": 5}),
        # a pydantic class: litellm builds its strict JSON schema
        ("openai/test-model", {"response_format": Answer}, "response_format=ModelMetaclass", {}),
    ],
    ids=["api_version", "o3", "gpt-5", "metadata", "extra_body", "top_k", "pydantic_response_format"],
)
def test_what_only_litellm_sends_goes_to_litellm_unchanged(
    make_lm: MakeLM,
    server: Any,
    caplog: pytest.LogCaptureFixture,
    model: str,
    settings: dict[str, Any],
    reason: str,
    sent: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG, logger="bestofn_openai_http.routing")
    lm = make_lm(model, **settings)
    assert lm.backend is plugin.openai_backend
    assert lm(messages=MESSAGES)
    assert sent_by(server) == "litellm"
    body = server.requests[0].body
    assert all(body[key] == value for key, value in sent.items()), body
    assert "max_tokens" not in body and "metadata" not in body and "extra_body" not in body
    logged = [record.getMessage() for record in caplog.records]
    assert any(reason in line and "litellm:litellm" in line for line in logged), logged


def test_litellm_only_reason_names_the_first_reason_or_none() -> None:
    assert litellm_only_reason(request_for()) is None
    every_parameter = {name: 1 for name in SENT_AS_IS if name != "response_format"}
    assert litellm_only_reason(request_for(**every_parameter)) is None
    assert litellm_only_reason(request_for(response_format={"type": "json_object"})) is None
    connection = {"api_key": "k", "api_base": "http://h/v1", "extra_headers": {"a": "b"}}
    assert litellm_only_reason(request_for(**connection)) is None
    assert litellm_only_reason(request_for("openai/org/o1")) == "the reasoning model 'o1'"
    assert litellm_only_reason(request_for("openai/ollama")) is None  # an "o" but no digit
    assert litellm_only_reason(request_for(api_version="1", top_k=1)) == "connection setting(s) api_version"
    assert litellm_only_reason(request_for(top_k=1, min_p=0.1)) == "parameter(s) min_p, top_k"


def test_backend_litellm_keeps_an_lm_on_litellm(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm("openai/test-model", backend="litellm:litellm")
    assert lm(messages=MESSAGES)
    assert sent_by(server) == "litellm"
    assert lm.copy(temperature=0.5).backend is lm.backend  # the choice survives BestOfN's copies


def test_the_openai_prefix_refuses_clearly_when_litellm_is_blocked(
    make_lm: MakeLM, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "litellm")
    reset_plugins()
    assert make_lm("openai/test-model")(messages=MESSAGES)  # the lean client needs no litellm
    assert sent_by(server) == "lean"
    lm = make_lm("openai/test-model", top_k=5, num_retries=0)
    with pytest.raises(ConfigurationError) as info:
        lm(messages=MESSAGES)
    message = str(info.value)
    assert "parameter(s) top_k" in message and "litellm:litellm" in message
    assert "BESTOFN_BLOCK_PLUGINS" in message  # the likely cause
    assert len(server.requests) == 1  # nothing was sent for the refused request


def test_the_openai_http_prefix_never_falls_back(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm("openai-http/test-model", api_version="2024-06-01", num_retries=0)
    with pytest.raises(ConfigurationError, match="api_version"):
        lm(messages=MESSAGES)
    assert server.requests == []


def test_json_adapter_asks_for_what_litellm_says_the_model_supports(make_lm: MakeLM, server: Any) -> None:
    # the plugin answers capability questions as litellm does, so installing it never changes the request
    server.set_responder(lambda request, i: {"answer": "Paris"})
    schema_lm, plain_lm = make_lm("openai/gpt-4o-mini"), make_lm("openai/test-model")
    assert schema_lm.backend is plain_lm.backend is plugin.openai_backend
    assert schema_lm.supports_response_schema and not plain_lm.supports_response_schema
    assert "response_format" in plain_lm.supported_params
    for lm in (schema_lm, plain_lm):
        with bon.context(lm=lm, adapter=bon.JSONAdapter()):
            assert bon.Predict("question -> answer")(question="q").answer == "Paris"
    formats = [request.body["response_format"] for request in server.requests]
    assert formats[0]["type"] == "json_schema" and formats[0]["json_schema"]["strict"] is True
    assert formats[1] == {"type": "json_object"}
    assert {sent_by_agent(request) for request in server.requests} == {"lean"}


def test_without_litellm_the_plugin_says_what_its_lean_client_sends(
    make_lm: MakeLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "litellm")
    reset_plugins()
    lm = make_lm("openai/gpt-4o-mini")
    assert not lm.supports_response_schema
    assert lm.supported_params == set(SENT_AS_IS)


def sent_by_agent(request: Any) -> str:
    """``"lean"`` or ``"litellm"``: which client sent ``request``."""
    return "lean" if request.headers.get("user-agent", "").startswith("bestofn-openai-http/") else "litellm"

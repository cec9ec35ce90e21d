"""The openai_http backend against the real OpenAI-compatible test server, through ``bon.LM``."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from bestofn_openai_http import OpenAIHTTPBackend, wire_model
from bestofn_openai_http.backend import _retry_after

import bestofn_core as bon
from bestofn_core.errors import (
    ConfigurationError,
    LMAuthenticationError,
    LMConnectionError,
    LMError,
    LMRateLimitError,
    LMRequestError,
    LMServerError,
    LMTimeoutError,
)
from bestofn_core.protocols import LMBackend, LMRequest
from bestofn_core.testing.openai_server import OpenAICompatServer

MESSAGES = [{"role": "user", "content": "Say hello."}]
MakeLM = Callable[..., bon.LM]


def completion(*contents: Any, **extra: Any) -> str:
    """A chat-completion body with one choice per content, as ``fail_next(200, body=...)`` sends it."""
    choices = [
        {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
        for i, c in enumerate(contents)
    ]
    return json.dumps({"id": "x", "model": "scripted", "choices": choices, **extra})


# ---------------------------------------------------------------- calls


def test_predict_and_chain_of_thought_run_through_the_backend(make_lm: MakeLM, server: Any) -> None:
    server.set_responder(lambda request, i: {"reasoning": "Paris is the capital.", "answer": "Paris"})
    lm = make_lm()
    assert isinstance(lm.backend, OpenAIHTTPBackend) and lm.supports_n
    bon.configure(lm=lm)
    assert bon.Predict("question -> answer")(question="Capital of France?").answer == "Paris"
    prediction = bon.ChainOfThought("question -> answer")(question="Capital of France?")
    assert prediction.answer == "Paris" and prediction.reasoning == "Paris is the capital."
    sent = server.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "test-model"  # the part after "openai-http/"
    assert "Capital of France?" in sent.last_user_text
    assert sent.headers["authorization"] == "Bearer sk-test-SECRET-7f3a9c"  # conftest's key
    assert sent.headers["content-type"] == "application/json"
    assert "rollout_id" not in sent.body and "api_key" not in sent.body and "api_base" not in sent.body


def test_n_choices_come_back_from_one_request(make_lm: MakeLM, server: Any) -> None:
    server.set_responder(lambda request, i: f"choice {i}")
    outputs = make_lm()(messages=MESSAGES, n=3, temperature=0.7, max_tokens=50)
    assert outputs == ["choice 0", "choice 1", "choice 2"]
    assert len(server.requests) == 1
    body = server.requests[0].body
    assert body["n"] == 3 and body["temperature"] == 0.7 and body["max_tokens"] == 50


def test_usage_model_and_finish_reasons_are_reported(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm()
    bon.configure(lm=lm, track_usage=True)
    prediction = bon.Predict("question -> answer")(question="how many tokens?")
    by_model = prediction.get_lm_usage()
    assert by_model is not None
    usage = by_model["openai-http/test-model"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    entry = lm.history[-1]
    assert entry["usage"] == usage and entry["response_model"] == "test-model"

    request = LMRequest("openai-http/m", MESSAGES, {"n": 2}, {"api_base": server.url, "api_key": "k"})
    response = asyncio.run(lm.backend.acomplete(request))
    assert response.finish_reasons == ["stop", "stop"] and response.model == "m"


def test_responses_are_cached_by_the_kernel(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm()
    assert lm(messages=MESSAGES) == lm(messages=MESSAGES)
    assert len(server.requests) == 1


def test_async_calls_overlap_at_the_server(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm(cache=False)
    server.latency = 0.5

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(lm.acall(messages=MESSAGES) for _ in range(20)))

    started = time.perf_counter()
    results = asyncio.run(main())
    assert len(results) == 20 and all(len(r) == 1 for r in results)
    arrivals = [r.received_at for r in server.requests]
    # every request arrived before the first answer went out: all 20 were in flight at once
    assert max(arrivals) - min(arrivals) < server.latency
    assert time.perf_counter() - started < 20 * server.latency / 2


def test_content_parts_and_missing_content_become_text(make_lm: MakeLM, server: Any) -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    server.fail_next(200, body=completion(parts, None))
    assert make_lm()(messages=MESSAGES, n=2) == ["Hello, world", ""]


def test_pydantic_response_format_is_sent_as_a_json_schema(make_lm: MakeLM, server: Any) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        answer: str

    make_lm()(messages=MESSAGES, response_format=Answer)
    sent = server.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Answer"
    assert sent["json_schema"]["schema"]["properties"]["answer"]["type"] == "string"
    make_lm()(messages=MESSAGES, response_format={"type": "json_object"}, temperature=None)
    assert server.requests[1].body["response_format"] == {"type": "json_object"}
    assert "temperature" not in server.requests[1].body  # None means unset


def test_connection_settings_become_headers(make_lm: MakeLM, server: Any) -> None:
    make_lm(organization="org-1", project="proj-2", extra_headers={"X-Trace": "abc"})(messages=MESSAGES)
    headers = server.requests[0].headers
    assert headers["openai-organization"] == "org-1" and headers["openai-project"] == "proj-2"
    assert headers["x-trace"] == "abc"


def test_api_key_and_base_come_from_the_environment(
    server: Any, monkeypatch: pytest.MonkeyPatch, make_lm: MakeLM
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    assert bon.LM("openai-http/test-model", cache=False)(messages=MESSAGES)
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    make_lm(api_key=None, cache=False)(messages=MESSAGES)  # local servers often need no key
    assert "authorization" not in server.requests[1].headers


@pytest.mark.parametrize("variable", ["OPENAI_BASE_URL", "OPENAI_API_BASE"])
@pytest.mark.parametrize("url", ["http://", "https://", "http://:80/v1", "localhost:8000/v1"])
def test_a_bad_server_url_from_the_environment_names_the_variable(
    server: Any, monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigurationError, match=rf"^{variable} must be an http:// or https:// URL"):
        bon.LM("openai-http/test-model", api_key="sk-test", cache=False)(messages=MESSAGES)
    assert server.requests == []


def test_wire_model_rule() -> None:
    assert wire_model("openai-http/gpt-4o-mini") == "gpt-4o-mini"
    assert wire_model("openai-http/meta-llama/Llama-3-8B") == "meta-llama/Llama-3-8B"
    assert wire_model("openai/gpt-4o-mini") == "gpt-4o-mini"  # with backend="openai_http:openai_http"
    assert wire_model("gpt-4o-mini") == "gpt-4o-mini"
    with pytest.raises(ConfigurationError, match="names no model"):
        wire_model("openai-http/")


def test_backend_satisfies_the_protocol_and_validates_its_arguments() -> None:
    assert isinstance(OpenAIHTTPBackend(), LMBackend)
    with pytest.raises(ConfigurationError, match="max_connections"):
        OpenAIHTTPBackend(max_connections=0)
    with pytest.raises(ConfigurationError, match="default_timeout"):
        OpenAIHTTPBackend(default_timeout="soon")  # type: ignore[arg-type]
    for name in ("default_timeout", "max_connections", "keepalive_expiry"):
        for value in (math.inf, math.nan):
            with pytest.raises(ConfigurationError, match=rf"{name}=\.\.\.\) must be a positive"):
                OpenAIHTTPBackend(**{name: value})


# ---------------------------------------------------------------- retries and failures


def test_server_errors_are_retried_by_the_kernel(make_lm: MakeLM, server: Any) -> None:
    server.fail_next(500, times=2)
    assert make_lm(num_retries=2)(messages=MESSAGES)
    assert len(server.requests) == 3


def test_retry_budget_is_respected(make_lm: MakeLM, server: Any) -> None:
    server.fail_next(503, times=10)
    with pytest.raises(LMServerError) as info:
        make_lm(num_retries=2)(messages=MESSAGES)
    assert info.value.status_code == 503 and "HTTP 503" in str(info.value)
    assert len(server.requests) == 3


def test_rate_limits_carry_and_honour_retry_after(make_lm: MakeLM, server: Any) -> None:
    server.fail_next(429, retry_after=0.6)
    started = time.perf_counter()
    assert make_lm(num_retries=1)(messages=MESSAGES)
    assert time.perf_counter() - started >= 0.55
    server.fail_next(429, retry_after=7)
    with pytest.raises(LMRateLimitError) as info:
        make_lm(num_retries=0, cache=False)(messages=MESSAGES)
    assert info.value.retry_after == 7.0 and info.value.status_code == 429


def test_retry_after_header_forms() -> None:
    assert _retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert _retry_after({"retry-after": "2"}) == 2.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < (_retry_after({"retry-after": date}) or 0) <= 30
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({"retry-after": "-3"}) == 0.0
    assert _retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, LMRequestError),
        (401, LMAuthenticationError),
        (403, LMAuthenticationError),
        (404, LMRequestError),
    ],
)
def test_client_errors_are_not_retried(
    make_lm: MakeLM, server: Any, status: int, error: type[LMError]
) -> None:
    server.fail_next(status, times=5)
    with pytest.raises(error) as info:
        make_lm(num_retries=3)(messages=MESSAGES)
    assert info.value.status_code == status
    assert "(test server)" in str(info.value)  # the server's own message is passed on
    assert len(server.requests) == 1


def test_a_missing_api_key_is_named_in_the_authentication_error(make_lm: MakeLM, server: Any) -> None:
    server.fail_next(401)
    with pytest.raises(LMAuthenticationError, match="OPENAI_API_KEY"):
        make_lm(api_key=None)(messages=MESSAGES)


def test_timeouts_fail_after_the_configured_time(make_lm: MakeLM, server: Any) -> None:
    server.latency = 3.0
    started = time.perf_counter()
    with pytest.raises(LMTimeoutError, match="timeout of 0.3s"):
        make_lm(timeout=0.3, num_retries=0)(messages=MESSAGES)
    assert time.perf_counter() - started < 2.5


def test_a_refused_connection_is_a_connection_error(make_lm: MakeLM) -> None:
    with OpenAICompatServer() as gone:
        url = gone.url
    with pytest.raises(LMConnectionError, match="cannot connect"):
        make_lm(api_base=url, num_retries=0)(messages=MESSAGES)


#: Each injected fault, on a request for one choice, and the error the kernel raises for it.
FAULTS = [
    ("429", LMRateLimitError),
    ("500", LMServerError),
    ("503", LMServerError),
    ("reset", LMConnectionError),
    ("truncated", LMConnectionError),
    ("invalid_json", LMConnectionError),
    ("empty_choices", LMServerError),  # the kernel's "returned no choices"
    ("fewer_choices", LMServerError),  # with n=1 the server sends no choice at all
]


@pytest.mark.parametrize(("kind", "error"), FAULTS)
def test_each_fault_becomes_the_right_kernel_error(
    make_lm: MakeLM, server: Any, secret_key: str, kind: str, error: type[LMError]
) -> None:
    server.inject_faults(rate=1.0, kinds=[kind])
    with pytest.raises(error) as info:
        make_lm(num_retries=0)(messages=MESSAGES)
    assert type(info.value) is error
    assert server.fault_counts()[kind] == 1
    assert secret_key not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize("kind", [kind for kind, _ in FAULTS])
def test_each_fault_is_retried_until_the_server_recovers(make_lm: MakeLM, server: Any, kind: str) -> None:
    server.inject_faults(rate=1.0, kinds=[kind])
    # generous retries: a 429 carries Retry-After: 0, so retries may come faster than the helper below
    lm = make_lm(num_retries=50, retry_base_delay=0.02, retry_max_delay=0.05)

    def recover() -> None:
        while not server.fault_counts()[kind]:
            time.sleep(0.005)
        server.inject_faults(rate=0.0, kinds=[])

    helper = threading.Thread(target=recover)
    helper.start()
    assert lm(messages=MESSAGES)
    helper.join()
    assert server.fault_counts()[kind] >= 1 and len(server.requests) >= 2


def test_fewer_choices_than_asked_are_returned_as_they_are(make_lm: MakeLM, server: Any) -> None:
    server.inject_faults(rate=1.0, kinds=["fewer_choices"])
    assert len(make_lm()(messages=MESSAGES, n=4)) == 2


def test_no_choices_is_an_empty_response_for_the_kernel_to_retry(server: Any) -> None:
    backend = OpenAIHTTPBackend()
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})
    server.inject_faults(rate=1.0, kinds=["empty_choices"])
    assert asyncio.run(backend.acomplete(request)).outputs == []
    server.reset()
    server.fail_next(200, body='{"id": "x", "usage": {"prompt_tokens": 3}}')  # "choices" missing
    response = asyncio.run(backend.acomplete(request))
    assert response.outputs == [] and response.usage == {"prompt_tokens": 3}


@pytest.mark.parametrize(
    ("error_body", "error", "retried"),
    [
        ({"message": "overloaded", "type": "server_error"}, LMServerError, True),
        ({"message": "slow down", "code": "rate_limit_exceeded"}, LMRateLimitError, True),
        ({"message": "bad model", "code": 400}, LMRequestError, False),
        ({"message": "bad key", "code": "401"}, LMAuthenticationError, False),
        ("plain text error", LMServerError, True),
    ],
)
def test_an_error_object_in_a_200_response_is_classified(
    make_lm: MakeLM, server: Any, error_body: Any, error: type[LMError], retried: bool
) -> None:
    server.fail_next(200, body=json.dumps({"error": error_body}), times=2)
    with pytest.raises(error, match="answered 200 with an error"):
        make_lm(num_retries=1)(messages=MESSAGES)
    assert len(server.requests) == (2 if retried else 1)


@pytest.mark.parametrize(
    "body", ["[1, 2]", '{"choices": "none"}', '{"choices": [{"text": "legacy"}]}', '{"choices": [7]}']
)
def test_bodies_that_are_not_chat_completions_are_connection_errors(
    make_lm: MakeLM, server: Any, body: str
) -> None:
    server.fail_next(200, body=body)
    with pytest.raises(LMConnectionError, match="not a chat completion"):
        make_lm(num_retries=0)(messages=MESSAGES)


# ---------------------------------------------------------------- secrets


def test_the_api_key_never_appears_in_errors_or_logs(
    make_lm: MakeLM, server: Any, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore and the kernel's retry messages included
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {secret_key}."}})
    failures: list[BaseException] = []
    server.fail_next(401, body=echo)
    server.fail_next(500, body=echo)
    server.fail_next(
        200, body=json.dumps({"error": {"message": f"key {secret_key} is revoked", "code": 403}})
    )
    for _ in range(3):
        with pytest.raises(LMError) as info:
            make_lm(num_retries=0, cache=False)(messages=MESSAGES)
        failures.append(info.value)
    for kind in ("reset", "truncated", "invalid_json"):
        server.inject_faults(rate=1.0, kinds=[kind])
        with pytest.raises(LMError) as info:
            make_lm(num_retries=1, cache=False)(messages=MESSAGES)
        failures.append(info.value)
    server.inject_faults(rate=0.0, kinds=[])
    server.latency = 1.0
    with pytest.raises(LMTimeoutError) as timeout_info:
        make_lm(num_retries=0, cache=False, timeout=0.1)(messages=MESSAGES)
    failures.append(timeout_info.value)

    assert "[REDACTED]" in str(failures[0]) and "[REDACTED]" in str(failures[2])  # echoed keys are masked
    server.fail_next(500)
    with pytest.raises(LMServerError, match="openai-http/test-model: HTTP 500"):  # a short key masks nothing
        make_lm(api_key="k", num_retries=0, cache=False)(messages=MESSAGES)
    for failure in failures:
        assert secret_key not in "".join(traceback.format_exception(failure)) + repr(failure)
        # nothing reachable from the error holds the request (whose headers carry the key)
        assert failure.__cause__ is None and failure.__context__ is None
    assert caplog.records  # the retries were logged
    assert all(secret_key not in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------- bad input


def test_bad_input_gets_a_clear_error_naming_the_fix(make_lm: MakeLM, server: Any) -> None:
    with pytest.raises(ConfigurationError, match="api_base: must be an http"):  # at LM(...), by the kernel
        make_lm(api_base="localhost:8000/v1")(messages=MESSAGES)
    with pytest.raises(ConfigurationError, match="does not stream"):
        make_lm()(messages=MESSAGES, stream=True)
    with pytest.raises(ConfigurationError, match="api_version"):
        make_lm(api_version="2024-06-01")(messages=MESSAGES)
    with pytest.raises(ConfigurationError, match="JSON values"):
        make_lm()(messages=MESSAGES, logit_bias={1: 5})
    with pytest.raises(ConfigurationError, match="extra_headers"):
        make_lm(extra_headers={"X-N": 1})(messages=MESSAGES)
    assert server.requests == []  # nothing was sent


# ---------------------------------------------------------------- connections and event loops


def _transport(backend: OpenAIHTTPBackend) -> Any:
    return backend._client()._transport


def test_connections_are_kept_alive_and_reused(server: Any) -> None:
    backend = OpenAIHTTPBackend()
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})

    async def main() -> int:
        for _ in range(10):
            await backend.acomplete(request)
        await asyncio.gather(*(backend.acomplete(request) for _ in range(8)))
        for _ in range(10):
            await backend.acomplete(request)
        return len(_transport(backend)._open)

    assert asyncio.run(main()) <= 8  # one connection for the sequential calls, reused by the concurrent ones


def test_max_connections_bounds_requests_in_flight(server: Any) -> None:
    backend = OpenAIHTTPBackend(max_connections=2)
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})
    server.latency = 0.3

    async def main() -> None:
        await asyncio.gather(*(backend.acomplete(request) for _ in range(6)))

    asyncio.run(main())
    arrivals = sorted(r.received_at for r in server.requests)
    assert arrivals[2] - arrivals[0] >= 0.25 and arrivals[4] - arrivals[2] >= 0.25  # three waves of two
    # waiting longer than the timeout for a free connection is a timeout
    slow = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url}, timeout=0.1)

    async def crowded() -> list[Any]:
        return await asyncio.gather(*(backend.acomplete(slow) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(result, LMTimeoutError) for result in asyncio.run(crowded()))


def test_each_event_loop_gets_its_own_client_closed_at_loop_shutdown(server: Any) -> None:
    backend = OpenAIHTTPBackend()
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})
    seen: list[tuple[asyncio.AbstractEventLoop, Any]] = []

    async def call() -> None:
        await backend.acomplete(request)
        seen.append((asyncio.get_running_loop(), backend._client()))

    asyncio.run(call())
    asyncio.run(call())
    (loop1, client1), (loop2, client2) = seen
    assert client1 is not client2
    assert client1.is_closed and client2.is_closed  # closed by asyncio.run's shutdown_asyncgens()
    assert loop1 not in backend._clients and loop2 not in backend._clients

    # threads with loops of their own, at the same time
    seen.clear()
    threads = [threading.Thread(target=asyncio.run, args=(call(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for _, client in seen}) == 4 and backend._clients == {}


def test_the_shared_background_loop_keeps_its_client_between_sync_calls(make_lm: MakeLM, server: Any) -> None:
    from bestofn_core.runtime import runner_loop

    lm = make_lm(cache=False)
    lm(messages=MESSAGES)
    client = lm.backend._clients[runner_loop()].client  # type: ignore[attr-defined]
    lm(messages=MESSAGES)
    assert lm.backend._clients[runner_loop()].client is client and not client.is_closed  # type: ignore[attr-defined]
    asyncio.run(lm.acall(messages=MESSAGES))  # a user loop beside it gets its own
    assert lm.backend._clients[runner_loop()].client is client  # type: ignore[attr-defined]


def test_a_loop_closed_without_shutdown_is_forgotten_quietly(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import sys

    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    backend = OpenAIHTTPBackend()
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})
    loop = asyncio.new_event_loop()
    loop.run_until_complete(backend.acomplete(request))
    loop.close()  # no shutdown_asyncgens(): the client's closer never ran
    assert loop in backend._clients
    asyncio.run(backend.acomplete(request))  # the next new client sweeps the dead loop's
    assert loop not in backend._clients
    del loop
    gc.collect()
    assert unraisable == []


def test_aclose_closes_the_running_loops_client(server: Any) -> None:
    backend = OpenAIHTTPBackend()
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})

    async def main() -> None:
        await backend.acomplete(request)
        first = backend._client()
        await backend.aclose()
        assert first.is_closed and asyncio.get_running_loop() not in backend._clients
        await backend.acomplete(request)  # a new client
        assert backend._client() is not first

    asyncio.run(main())


def test_cancelled_requests_free_their_connection(server: Any) -> None:
    backend = OpenAIHTTPBackend(max_connections=1)
    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})
    server.latency = 1.0

    async def main() -> None:
        task = asyncio.ensure_future(backend.acomplete(request))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.latency = 0.0
        # the only connection slot was given back, and the cancelled connection is not reused
        response = await asyncio.wait_for(backend.acomplete(request), 5)
        assert response.outputs

    asyncio.run(main())


@pytest.fixture
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the machine running the tests."""
    for scheme in ("http", "https", "all", "no"):
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_proxy_variables_are_honoured(server: Any, no_proxy_variables: pytest.MonkeyPatch) -> None:
    from bestofn_openai_http._transport import PooledTransport

    request = LMRequest("openai-http/m", MESSAGES, {}, {"api_base": server.url})

    async def transport(backend: OpenAIHTTPBackend) -> Any:
        await backend.acomplete(request)
        return _transport(backend)

    assert isinstance(asyncio.run(transport(OpenAIHTTPBackend())), PooledTransport)
    with OpenAICompatServer() as gone:
        dead_proxy = f"http://127.0.0.1:{gone.port}"
    no_proxy_variables.setenv("HTTP_PROXY", dead_proxy)
    with pytest.raises(LMConnectionError):  # the request went to the (dead) proxy
        asyncio.run(OpenAIHTTPBackend().acomplete(request))
    no_proxy_variables.setenv("NO_PROXY", "127.0.0.1")
    assert not isinstance(asyncio.run(transport(OpenAIHTTPBackend())), PooledTransport)  # httpx's own
    no_proxy_variables.delenv("NO_PROXY")
    assert isinstance(asyncio.run(transport(OpenAIHTTPBackend(trust_env=False))), PooledTransport)
    assert len(server.requests) == 3  # all but the one sent to the proxy

"""Tests for the OpenAI-compatible test server, through real HTTP (httpx, litellm and a subprocess)."""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bestofn_core.testing.openai_server import (
    FAULT_KINDS,
    OpenAICompatServer,
    ReceivedRequest,
    render_fields,
    requested_fields,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

CHAT_SUFFIX = (
    "Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, "
    "then `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
)
CHAT_SUFFIX_ONE = (
    "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, "
    "and then ending with the marker for `[[ ## completed ## ]]`."
)
JSON_SUFFIX = "Respond with a JSON object in the following order of fields: `reasoning`, then `answer`."


def chat_prompt(suffix: str = CHAT_SUFFIX) -> str:
    return f"[[ ## question ## ]]\nWhat is 2 + 2?\n\n{suffix}"


def make_body(text: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {"model": "test-model", "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(autouse=True)
def _no_leftover_server_threads() -> Iterator[None]:
    before = set(threading.enumerate())  # a session-wide server from conftest may legitimately be running
    yield
    leftovers = [t for t in threading.enumerate() if t.name == "OpenAICompatServer" and t not in before]
    assert not leftovers, f"server threads left running: {leftovers}"


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def post(client: httpx.Client, server: OpenAICompatServer, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return client.post(f"{server.url}/chat/completions", json=body, **kw)


def contents(response: httpx.Response) -> list[str]:
    return [choice["message"]["content"] for choice in response.json()["choices"]]


# ---------------------------------------------------------------- lifecycle and endpoints


def test_start_stop_and_url() -> None:
    srv = OpenAICompatServer()
    assert srv.start() is srv
    try:
        assert srv.url == f"http://127.0.0.1:{srv.port}/v1"
        assert srv.running
        with pytest.raises(RuntimeError):
            srv.start()
    finally:
        srv.stop()
    assert not srv.running
    srv.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = srv.url


def test_health_and_models(server: OpenAICompatServer, client: httpx.Client) -> None:
    root = server.url.removesuffix("/v1")
    health = client.get(f"{root}/health")
    assert health.status_code == 200
    assert health.text == "ok"
    models = client.get(f"{server.url}/models")
    assert models.status_code == 200
    assert models.json()["object"] == "list"
    assert models.json()["data"][0]["id"] == "test-model"
    assert server.requests == []  # only chat completions are recorded


def test_response_shape(server: OpenAICompatServer, client: httpx.Client) -> None:
    response = post(client, server, make_body(model="my-model"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "my-model"
    [choice] = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "stop"
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_path_without_v1(server: OpenAICompatServer, client: httpx.Client) -> None:
    root = server.url.removesuffix("/v1")
    response = client.post(f"{root}/chat/completions", json=make_body())
    assert response.status_code == 200
    assert server.requests[0].path == "/chat/completions"


def test_n_honoured_and_request_recorded(server: OpenAICompatServer, client: httpx.Client) -> None:
    body = {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
        "n": 4,
        "temperature": 1.0,
    }
    response = post(client, server, body, headers={"X-Custom-Header": "yes"})
    assert [c["index"] for c in response.json()["choices"]] == [0, 1, 2, 3]
    [req] = server.requests
    assert isinstance(req, ReceivedRequest)
    assert req.n == 4
    assert req.temperature == 1.0
    assert req.path == "/v1/chat/completions"
    assert req.headers["x-custom-header"] == "yes"
    assert req.body["model"] == "test-model"
    assert len(req.messages) == 4
    assert req.last_user_text == "second question"


def test_received_request_defaults() -> None:
    req = ReceivedRequest(body={}, headers={}, path="/v1/chat/completions")
    assert req.messages == []
    assert req.n == 1
    assert req.temperature is None
    assert req.last_user_text == ""


def test_usage_counts_prompt_once_per_request(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.set_responder(lambda req, i: "one two three")
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "you are a helper"},  # 4 words
            {"role": "user", "content": "count  these\nwords please"},  # 4 words
        ],
    }
    usage1 = post(client, server, {**body, "n": 1}).json()["usage"]
    usage5 = post(client, server, {**body, "n": 5}).json()["usage"]
    assert usage1 == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    assert usage5 == {"prompt_tokens": 8, "completion_tokens": 15, "total_tokens": 23}


# ---------------------------------------------------------------- format detection and rendering


def test_requested_fields_chat() -> None:
    assert requested_fields(chat_prompt()) == ("chat", ["reasoning", "answer"])
    assert requested_fields(chat_prompt(CHAT_SUFFIX_ONE)) == ("chat", ["answer"])
    # Markers before the phrase (the input fields) are ignored; type hints after a marker are tolerated.
    text = (
        "[[ ## question ## ]]\nq\n\nRespond with the corresponding output fields, starting with the field "
        "`[[ ## answer ## ]]` (must be formatted as a valid Python int), and then ending with the marker for "
        "`[[ ## completed ## ]]`."
    )
    assert requested_fields(text) == ("chat", ["answer"])


def test_requested_fields_json_and_text() -> None:
    assert requested_fields(f"Question: hi\n\n{JSON_SUFFIX}") == ("json", ["reasoning", "answer"])
    one = "Respond with a JSON object in the following order of fields: `answer`."
    assert requested_fields(one) == ("json", ["answer"])
    assert requested_fields("just chat with me") == ("text", [])
    assert requested_fields("") == ("text", [])
    # When both appear, the later instruction wins.
    assert requested_fields(f"{CHAT_SUFFIX}\n{JSON_SUFFIX}")[0] == "json"
    assert requested_fields(f"{JSON_SUFFIX}\n{CHAT_SUFFIX}")[0] == "chat"


def test_requested_fields_compact() -> None:
    assert requested_fields("What is 2 + 2?\n\nReply with the answer only.") == ("compact", ["answer"])
    typed = "Text: a b\n\nReply with the word count only, a whole number."
    assert requested_fields(typed) == ("compact", ["word_count"])
    several = 'q\n\nReply with a "Reasoning:" line, then a "Final Answer:" line.'
    assert requested_fields(several) == ("compact", ["reasoning", "final_answer"])
    # only the prompt's last line is the request: a question quoting it is not
    assert requested_fields("Reply with the answer only.\nWhat is it?")[0] == "text"


def test_render_fields() -> None:
    chat = render_fields("chat", {"reasoning": "because", "answer": ["a", "b"]})
    assert chat == (
        '[[ ## reasoning ## ]]\nbecause\n\n[[ ## answer ## ]]\n["a", "b"]\n\n[[ ## completed ## ]]'
    )
    as_json = render_fields("json", {"reasoning": "r", "answer": ["a", "b"], "score": 3})
    assert json.loads(as_json) == {"reasoning": "r", "answer": ["a", "b"], "score": 3}
    assert list(json.loads(as_json)) == ["reasoning", "answer", "score"]
    assert render_fields("text", {"a": "x", "b": 2}) == "x\n\n2"
    assert render_fields("chat", {}) == "[[ ## completed ## ]]"
    assert render_fields("compact", {"answer": "Paris"}) == "Paris"
    assert render_fields("compact", {"reasoning": "r", "final_answer": 4}) == "Reasoning: r\nFinal Answer: 4"
    with pytest.raises(ValueError):
        render_fields("xml", {})


def test_default_chat_answers(server: OpenAICompatServer, client: httpx.Client) -> None:
    texts = contents(post(client, server, make_body(chat_prompt(), n=2)))
    texts += contents(post(client, server, make_body(chat_prompt())))
    assert texts == [
        render_fields("chat", {"reasoning": "Let me think step by step.", "answer": f"answer {k}"})
        for k in range(3)
    ]
    [one] = contents(post(client, server, make_body(chat_prompt(CHAT_SUFFIX_ONE))))
    assert one == "[[ ## answer ## ]]\nanswer 3\n\n[[ ## completed ## ]]"


def test_default_json_answers(server: OpenAICompatServer, client: httpx.Client) -> None:
    body = make_body(f"Question: hi\n\n{JSON_SUFFIX}", n=2, response_format={"type": "json_object"})
    texts = contents(post(client, server, body))
    parsed = [json.loads(text) for text in texts]
    assert parsed == [
        {"reasoning": "Let me think step by step.", "answer": "answer 0"},
        {"reasoning": "Let me think step by step.", "answer": "answer 1"},
    ]
    assert list(parsed[0]) == ["reasoning", "answer"]


def test_json_schema_response_format_fields(server: OpenAICompatServer, client: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    }
    body = make_body(
        "anything", response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
    )
    [text] = contents(post(client, server, body))
    assert json.loads(text) == {"answer": "answer 0", "confidence": "confidence 0"}


def test_default_plain_text(server: OpenAICompatServer, client: httpx.Client) -> None:
    assert contents(post(client, server, make_body("tell me a joke", n=2))) == ["response 0", "response 1"]


# ---------------------------------------------------------------- responders


def test_responder_str(server: OpenAICompatServer, client: httpx.Client) -> None:
    seen: list[tuple[str, int]] = []

    def responder(req: ReceivedRequest, index: int) -> str:
        seen.append((req.last_user_text, index))
        return f"custom {index} for {req.last_user_text}"

    server.set_responder(responder)
    texts = contents(post(client, server, make_body(chat_prompt(), n=3)))
    assert texts == [f"custom {i} for {chat_prompt()}" for i in range(3)]
    assert [i for _, i in seen] == [0, 1, 2]
    server.set_responder(None)
    assert contents(post(client, server, make_body("plain")))[0].startswith("response ")


def test_responder_dict_chat_and_json(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.set_responder(lambda req, i: {"answer": ["a", "b"]})
    [chat] = contents(post(client, server, make_body(chat_prompt())))
    assert chat == render_fields("chat", {"reasoning": "Let me think step by step.", "answer": ["a", "b"]})
    assert '[[ ## answer ## ]]\n["a", "b"]' in chat
    [as_json] = contents(post(client, server, make_body(JSON_SUFFIX)))
    assert json.loads(as_json) == {"reasoning": "Let me think step by step.", "answer": ["a", "b"]}


def test_responder_dict_without_format(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.set_responder(lambda req, i: {"answer": i})
    [chat] = contents(post(client, server, make_body("no format here")))
    assert chat == "[[ ## answer ## ]]\n0\n\n[[ ## completed ## ]]"
    [as_json] = contents(
        post(client, server, make_body("no format", response_format={"type": "json_object"}))
    )
    assert json.loads(as_json) == {"answer": 0}


def test_responder_error_gives_500(server: OpenAICompatServer, client: httpx.Client) -> None:
    def broken(req: ReceivedRequest, index: int) -> str:
        raise KeyError("boom")

    server.set_responder(broken)
    response = post(client, server, make_body())
    assert response.status_code == 500
    assert "boom" in response.json()["error"]["message"]


# ---------------------------------------------------------------- latency


def test_latency_delays_each_answer(server: OpenAICompatServer, client: httpx.Client) -> None:
    post(client, server, make_body())  # warm the connection
    server.latency = 0.15
    start = time.perf_counter()
    assert post(client, server, make_body()).status_code == 200
    assert time.perf_counter() - start >= 0.15
    server.latency = 0.0
    start = time.perf_counter()
    post(client, server, make_body())
    assert time.perf_counter() - start < 0.15


def test_trickle_sends_the_body_a_few_bytes_at_a_time(
    server: OpenAICompatServer, client: httpx.Client
) -> None:
    post(client, server, make_body())  # warm the connection
    whole = post(client, server, make_body()).content
    server.set_trickle(0.02, chunk_bytes=len(whole) // 4 + 1)  # 4 chunks: 3 pauses
    with client.stream("POST", f"{server.url}/chat/completions", json=make_body()) as response:
        chunks = [(time.perf_counter(), chunk) for chunk in response.iter_raw()]
    assert response.status_code == 200 and len(chunks) >= 2
    assert chunks[-1][0] - chunks[0][0] >= 0.04  # the body took the pauses, not one write
    assert json.loads(b"".join(chunk for _, chunk in chunks))["choices"]
    server.set_trickle(None)
    with pytest.raises(ValueError):
        server.set_trickle(0)
    with pytest.raises(ValueError):
        server.set_trickle(0.1, chunk_bytes=0)


async def test_latency_is_concurrent() -> None:
    with OpenAICompatServer(latency=0.2) as srv:
        async with httpx.AsyncClient(timeout=5.0) as aclient:
            start = time.perf_counter()
            responses = await asyncio.gather(
                *(aclient.post(f"{srv.url}/chat/completions", json=make_body(f"q{i}")) for i in range(20))
            )
            elapsed = time.perf_counter() - start
        assert all(r.status_code == 200 for r in responses)
        assert len(srv.requests) == 20
        assert 0.2 <= elapsed < 2.0


# ---------------------------------------------------------------- scripted failures


def test_fail_next(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.fail_next(429, times=2, retry_after=1.5)
    for _ in range(2):
        response = post(client, server, make_body())
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1.5"
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "code"}
        assert error["code"] == "rate_limit_exceeded"
    assert post(client, server, make_body()).status_code == 200
    assert len(server.requests) == 3


def test_fail_next_queues_and_custom_body(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.fail_next(500)
    server.fail_next(503, body="<html>upstream down</html>")
    first = post(client, server, make_body())
    assert first.status_code == 500
    assert first.json()["error"]["type"] == "server_error"
    assert "retry-after" not in first.headers
    second = post(client, server, make_body())
    assert second.status_code == 503
    assert second.text == "<html>upstream down</html>"
    assert post(client, server, make_body()).status_code == 200
    with pytest.raises(ValueError):
        server.fail_next(42)


def test_fail_next_takes_precedence_over_faults(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["500"])
    server.fail_next(401)
    assert post(client, server, make_body()).status_code == 401
    assert post(client, server, make_body()).status_code == 500
    assert server.fault_counts() == {"500": 1}


# ---------------------------------------------------------------- injected faults


def test_fault_429(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["429"])
    response = post(client, server, make_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("kind", ["500", "503"])
def test_fault_server_errors(server: OpenAICompatServer, client: httpx.Client, kind: str) -> None:
    server.inject_faults(1.0, [kind])
    response = post(client, server, make_body())
    assert response.status_code == int(kind)
    assert response.json()["error"]["type"] == "server_error"


def test_fault_reset(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["reset"])
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        post(client, server, make_body())
    server.inject_faults(0.0, [])
    assert post(client, server, make_body()).status_code == 200  # the client recovers on a new connection


def test_fault_truncated(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["truncated"])
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, server, make_body())


def test_fault_invalid_json(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["invalid_json"])
    response = post(client, server, make_body())
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_fault_empty_choices(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["empty_choices"])
    response = post(client, server, make_body(n=3))
    assert response.status_code == 200
    assert response.json()["choices"] == []


def test_fault_missing_fields(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["missing_fields"])
    [chat] = contents(post(client, server, make_body(chat_prompt())))
    assert "[[ ## reasoning ## ]]" in chat
    assert "[[ ## answer ## ]]" not in chat
    [one] = contents(post(client, server, make_body(chat_prompt(CHAT_SUFFIX_ONE))))
    assert "[[ ## answer ## ]]" not in one
    [as_json] = contents(post(client, server, make_body(JSON_SUFFIX)))
    assert "answer" not in json.loads(as_json)
    server.set_responder(lambda req, i: "[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\na")
    [scripted] = contents(post(client, server, make_body(chat_prompt())))
    assert "[[ ## answer ## ]]" not in scripted


def test_fault_fewer_choices(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["fewer_choices"])
    assert len(post(client, server, make_body(n=4)).json()["choices"]) == 2
    assert len(post(client, server, make_body(n=2)).json()["choices"]) == 1
    assert len(post(client, server, make_body(n=1)).json()["choices"]) == 0


def test_fault_hang(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.inject_faults(1.0, ["hang"], hang_seconds=0.3)
    start = time.perf_counter()
    assert post(client, server, make_body()).status_code == 200
    assert time.perf_counter() - start >= 0.3
    server.inject_faults(1.0, ["hang"], hang_seconds=30.0)
    with pytest.raises(httpx.ReadTimeout):
        post(client, server, make_body(), timeout=0.2)


def test_stop_does_not_wait_for_hanging_requests() -> None:
    srv = OpenAICompatServer().start()
    srv.inject_faults(1.0, ["hang"], hang_seconds=30.0)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{srv.url}/chat/completions", json=make_body(), timeout=10.0)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5.0
    while not srv.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - start < 2.0
    caller.join(timeout=5.0)
    assert not caller.is_alive()
    assert errors  # the client saw the connection go away


def test_fault_counts_rate_and_determinism() -> None:
    kinds = ["500", "503", "empty_choices"]

    def run(seed: int) -> tuple[list[int], dict[str, int]]:
        with OpenAICompatServer() as srv, httpx.Client(timeout=5.0) as c:
            srv.inject_faults(0.5, kinds, seed=seed)
            statuses = []
            for _ in range(40):
                r = post(c, srv, make_body())
                statuses.append(r.status_code if r.json().get("choices") != [] else 0)
            return statuses, srv.fault_counts()

    statuses, counts = run(7)
    again, counts_again = run(7)
    assert statuses == again
    assert counts == counts_again
    assert set(counts) == set(kinds)
    assert counts["500"] == statuses.count(500)
    assert counts["503"] == statuses.count(503)
    assert counts["empty_choices"] == statuses.count(0)
    assert 5 <= sum(counts.values()) <= 35
    assert run(8)[0] != statuses


def test_inject_faults_validation(server: OpenAICompatServer) -> None:
    with pytest.raises(ValueError):
        server.inject_faults(0.5, ["nope"])
    with pytest.raises(ValueError):
        server.inject_faults(1.5, ["500"])
    with pytest.raises(ValueError):
        server.inject_faults(0.5, [])
    server.inject_faults(0.1, list(FAULT_KINDS))
    assert server.fault_counts() == dict.fromkeys(FAULT_KINDS, 0)


# ---------------------------------------------------------------- reset and bad requests


def test_reset(server: OpenAICompatServer, client: httpx.Client) -> None:
    server.latency = 0.05
    server.set_responder(lambda req, i: "scripted")
    server.inject_faults(1.0, ["503"])
    server.fail_next(401, times=3)
    post(client, server, make_body())
    post(client, server, make_body())
    server.reset()
    assert server.requests == []
    assert server.fault_counts() == {}
    assert server.latency == 0.0
    response = post(client, server, make_body("hi"))
    assert response.status_code == 200
    assert contents(response) == ["response 0"]  # default responder, choice counter restarted
    assert len(server.requests) == 1


def test_stream_rejected(server: OpenAICompatServer, client: httpx.Client) -> None:
    response = post(client, server, make_body(stream=True))
    assert response.status_code == 400
    error = response.json()["error"]
    assert "stream" in error["message"].lower()
    assert error["type"] == "invalid_request_error"
    assert len(server.requests) == 1


def test_bad_requests(server: OpenAICompatServer, client: httpx.Client) -> None:
    bad_json = client.post(
        f"{server.url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert "error" in bad_json.json()
    assert post(client, server, make_body(n=0)).status_code == 400
    assert post(client, server, make_body(n="3")).status_code == 400


# ---------------------------------------------------------------- litellm


def test_litellm_completion(server: OpenAICompatServer) -> None:
    import litellm

    messages = [{"role": "user", "content": chat_prompt()}]
    response = litellm.completion(
        model="openai/test-model",
        api_base=server.url,
        api_key="sk-test",
        messages=messages,
        n=3,
        num_retries=0,
    )
    assert len(response.choices) == 3
    answers = [choice.message.content for choice in response.choices]
    assert all("[[ ## answer ## ]]" in a and a.endswith("[[ ## completed ## ]]") for a in answers)
    assert len(set(answers)) == 3
    prompt_words = len(chat_prompt().split())
    assert response.usage.prompt_tokens == prompt_words
    assert response.usage.completion_tokens == sum(len(a.split()) for a in answers)
    assert response.usage.total_tokens == prompt_words + response.usage.completion_tokens
    [req] = server.requests
    assert req.n == 3
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.body["model"] == "test-model"


async def test_litellm_acompletion_errors(server: OpenAICompatServer) -> None:
    import litellm

    server.fail_next(429, times=5, retry_after=0)
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(
            model="openai/x",
            api_base=server.url,
            api_key="k",
            messages=[{"role": "user", "content": "hi"}],
            num_retries=0,
        )
    server.reset()
    server.set_responder(lambda req, i: {"answer": "42"})
    response = await litellm.acompletion(
        model="openai/x",
        api_base=server.url,
        api_key="k",
        messages=[{"role": "user", "content": JSON_SUFFIX}],
        response_format={"type": "json_object"},
        num_retries=0,
    )
    assert json.loads(response.choices[0].message.content) == {
        "reasoning": "Let me think step by step.",
        "answer": "42",
    }


# ---------------------------------------------------------------- process mode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_mode(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bestofn_core.testing.openai_server",
            "--port",
            "0",
            "--latency",
            "0.1",
            "--mode",
            "chat",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
        start = time.perf_counter()
        response = httpx.post(f"{url}/chat/completions", json=make_body(chat_prompt(), n=2), timeout=5.0)
        assert time.perf_counter() - start >= 0.1
        assert response.status_code == 200
        assert len(response.json()["choices"]) == 2
        assert "[[ ## answer ## ]]" in response.json()["choices"][0]["message"]["content"]
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

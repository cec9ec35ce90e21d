"""LM over litellm against the real test server: copy, cache, retries, errors, usage, n, validation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import (
    ConfigurationError,
    LMAuthenticationError,
    LMRateLimitError,
    LMRequestError,
    LMServerError,
    NoBackendError,
)
from bestofn_core.lm.cache import ResponseCache, configure_cache
from bestofn_core.plugins import reset_plugins
from bestofn_core.testing.openai_server import OpenAICompatServer

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_quickstart_example_runs_through_litellm(server: Any) -> None:
    server.set_responder(lambda req, i: {"reasoning": "Belgium's capital is Brussels.", "answer": "Brussels"})
    bon.configure(lm=bon.LM("openai/gpt-4o-mini", api_base=server.url, api_key="x"))
    qa = bon.ChainOfThought("question -> answer")
    pred = qa(question="What is the capital of Belgium?")
    assert pred.answer == "Brussels"
    assert pred.reasoning == "Belgium's capital is Brussels."
    (request,) = server.requests
    assert request.body["model"] == "gpt-4o-mini"
    assert request.headers["authorization"] == "Bearer x"
    assert "What is the capital of Belgium?" in request.last_user_text


def test_lm_call_returns_one_text_per_choice(make_lm: Any, server: Any) -> None:
    server.set_responder(lambda req, i: f"choice {i}")
    lm = make_lm()
    assert lm(messages=MESSAGES, n=3) == ["choice 0", "choice 1", "choice 2"]
    assert lm(prompt="hi") == ["choice 0"]
    assert server.requests[0].body["n"] == 3


def test_lm_copy_sets_attributes_and_kwargs_and_none_removes(make_lm: Any) -> None:
    lm = make_lm(temperature=0.5, max_tokens=100)
    copied = lm.copy(rollout_id=3, temperature=1.0, max_tokens=None, num_retries=7)
    assert copied.kwargs["rollout_id"] == 3 and copied.kwargs["temperature"] == 1.0
    assert "max_tokens" not in copied.kwargs and copied.num_retries == 7
    assert lm.kwargs == {
        "temperature": 0.5,
        "max_tokens": 100,
        "api_key": "sk-test-key",
        "api_base": lm.kwargs["api_base"],
    }
    assert lm.num_retries == 3 and copied.history == [] and copied.backend is lm.backend


def test_rollout_id_changes_the_cache_key_but_never_reaches_the_wire(make_lm: Any, server: Any) -> None:
    lm = make_lm(temperature=1.0)
    first = lm(messages=MESSAGES, rollout_id=1)
    again = lm(messages=MESSAGES, rollout_id=1)
    other = lm(messages=MESSAGES, rollout_id=2)
    assert first == again and first != other
    assert len(server.requests) == 2
    for request in server.requests:
        assert "rollout_id" not in request.body
    assert server.requests[0].body == server.requests[1].body


def test_cache_survives_the_process_memory_and_can_be_disabled(
    make_lm: Any, server: Any, tmp_path: Any
) -> None:
    configure_cache(disk_cache_dir=tmp_path / "shared")
    lm = make_lm()
    first = lm(messages=MESSAGES)
    configure_cache(disk_cache_dir=tmp_path / "shared")  # a new cache object: memory is empty, disk is not
    assert lm(messages=MESSAGES) == first
    assert len(server.requests) == 1
    uncached = make_lm(cache=False)
    uncached(messages=MESSAGES)
    lm(messages=MESSAGES, cache=False)
    assert len(server.requests) == 3


def test_cache_never_stores_the_api_key(make_lm: Any, server: Any, tmp_path: Any) -> None:
    configure_cache(disk_cache_dir=tmp_path / "secret-check")
    make_lm(api_key="sk-MARKER-123")(messages=MESSAGES)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "secret-check").iterdir())
    assert b"sk-MARKER-123" not in stored
    # the key is not part of the cache key either: another key hits the same entry
    make_lm(api_key="sk-other")(messages=MESSAGES)
    assert len(server.requests) == 1


@pytest.mark.parametrize("variable", ["OPENAI_BASE_URL", "OPENAI_API_BASE"])
@pytest.mark.parametrize("backend", ["litellm:litellm", "openai_http:openai"])
def test_the_cache_keys_on_the_server_set_through_the_environment(
    variable: str, backend: str, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789")
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    with OpenAICompatServer() as other:
        lm = bon.LM("openai/test-model", backend=backend)  # no api_base: the environment names the server
        monkeypatch.setenv(variable, server.url)
        lm(messages=MESSAGES)
        monkeypatch.setenv(variable, other.url)
        lm(messages=MESSAGES)
        assert [len(server.requests), len(other.requests)] == [1, 1]
        monkeypatch.setenv(variable, server.url)
        lm(messages=MESSAGES)  # the first server's answer is still cached, for that server
        assert [len(server.requests), len(other.requests)] == [1, 1]


def test_the_cache_keys_on_every_setting_that_routes_the_request(make_lm: Any, server: Any) -> None:
    # a model_list routes the request through litellm: another route is another entry
    with OpenAICompatServer() as other:
        routes = [
            {
                "model_name": "openai/test-model",
                "litellm_params": {"model": "openai/test-model", "api_base": url},
            }
            for url in (server.url, other.url)
        ]
        direct = bon.LM("openai/test-model", api_key="sk-test-key", backend="litellm:litellm")
        direct(messages=MESSAGES, model_list=routes[:1])
        direct(messages=MESSAGES, model_list=routes[1:])
        assert [len(server.requests), len(other.requests)] == [1, 1]


def test_the_cache_keys_on_the_backend_serving_the_request(make_lm: Any, server: Any) -> None:
    make_lm(backend="litellm:litellm")(messages=MESSAGES)
    make_lm(backend="openai_http:openai")(messages=MESSAGES)
    assert len(server.requests) == 2


def test_cached_calls_report_no_usage(make_lm: Any, server: Any) -> None:
    lm = make_lm()
    bon.configure(lm=lm, track_usage=True)
    qa = bon.Predict("question -> answer")
    assert qa(question="q").get_lm_usage()["openai/test-model"]["prompt_tokens"] > 0
    assert qa(question="q").get_lm_usage() == {}


def test_transient_errors_are_retried_then_succeed(make_lm: Any, server: Any) -> None:
    server.fail_next(500, times=2)
    lm = make_lm(num_retries=2)
    assert lm(messages=MESSAGES)
    assert len(server.requests) == 3


def test_retry_budget_is_respected_and_the_last_error_raised(make_lm: Any, server: Any) -> None:
    server.fail_next(503, times=10)
    lm = make_lm(num_retries=2)
    with pytest.raises(LMServerError) as info:
        lm(messages=MESSAGES)
    assert info.value.status_code == 503
    assert len(server.requests) == 3


def test_rate_limits_honour_retry_after(make_lm: Any, server: Any) -> None:
    server.fail_next(429, times=1, retry_after=0.6)
    lm = make_lm(num_retries=1)
    started = time.perf_counter()
    assert lm(messages=MESSAGES)
    assert time.perf_counter() - started >= 0.55
    assert len(server.requests) == 2
    server.fail_next(429, times=5, retry_after=0)
    with pytest.raises(LMRateLimitError):
        make_lm(num_retries=0, cache=False)(messages=MESSAGES)


@pytest.mark.parametrize(("status", "error"), [(400, LMRequestError), (401, LMAuthenticationError)])
def test_client_errors_are_not_retried(make_lm: Any, server: Any, status: int, error: type) -> None:
    server.fail_next(status, times=5)
    with pytest.raises(error):
        make_lm(num_retries=3)(messages=MESSAGES)
    assert len(server.requests) == 1


def test_timeouts_fail_after_the_configured_time(make_lm: Any, server: Any) -> None:
    server.latency = 3.0
    started = time.perf_counter()
    with pytest.raises(bon.errors.LMTimeoutError):
        make_lm(timeout=0.3, num_retries=0)(messages=MESSAGES)
    assert time.perf_counter() - started < 2.5


def test_usage_is_recorded_per_call_in_history(make_lm: Any, server: Any) -> None:
    lm = make_lm()
    lm(messages=MESSAGES)
    entry = lm.history[-1]
    assert entry["usage"]["prompt_tokens"] > 0 and entry["cache_hit"] is False
    assert "api_key" not in entry["kwargs"] and "sk-test-key" not in repr(entry)


async def test_acall_is_native_and_concurrent(make_lm: Any, server: Any) -> None:
    import threading

    lm = make_lm(cache=False)
    await lm.acall(messages=MESSAGES)  # warm up: the first call imports litellm (in a worker thread)
    server.reset()
    server.latency = 1.0
    before = threading.active_count()
    results = await asyncio.gather(*(lm.acall(messages=MESSAGES) for _ in range(30)))
    assert len(results) == 30
    arrivals = [r.received_at for r in server.requests]
    # the last request arrived before the first answer went out: all 30 were in flight at once
    assert max(arrivals) - min(arrivals) < server.latency
    # no thread per request (the loop's own bounded executor may resolve host names in a few threads)
    assert threading.active_count() - before < 10


def test_lm_arguments_are_validated_with_the_field_named() -> None:
    with pytest.raises(ConfigurationError, match="temperature"):
        bon.LM("openai/x", temperature=-1)
    with pytest.raises(ConfigurationError, match="num_retries"):
        bon.LM("openai/x", num_retries="three")
    with pytest.raises(ConfigurationError, match="model"):
        bon.LM("")
    with pytest.raises(ConfigurationError, match="max_tokens"):
        bon.LM("openai/x", max_tokens=0)


def test_a_model_string_no_backend_claims_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "litellm")
    reset_plugins()
    try:
        with pytest.raises(NoBackendError, match="anthropic/x"):
            bon.LM("anthropic/x")
    finally:
        monkeypatch.delenv("BESTOFN_BLOCK_PLUGINS")
        reset_plugins()


@pytest.mark.parametrize(
    ("model", "blocked", "distribution"),
    [
        ("local/smollm2", "llamacpp", "bestofn-llamacpp"),
        ("llamacpp/model.gguf", "llamacpp", "bestofn-llamacpp"),
        ("openai-http/gpt-4o-mini", "openai_http", "bestofn-openai-http"),
    ],
)
def test_a_first_party_plugins_model_string_without_its_plugin_names_the_package(
    monkeypatch: pytest.MonkeyPatch, model: str, blocked: str, distribution: str
) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", blocked)
    reset_plugins()
    try:
        with pytest.raises(NoBackendError) as info:
            bon.LM(model)  # at construction, not at the first request through litellm
        assert info.value.distribution == distribution and info.value.install.startswith("pip install")
        message = str(info.value)
        assert f'"{model}" runs on the {distribution} plugin' in message and info.value.install in message
        assert f"Blocked by BESTOFN_BLOCK_PLUGINS: {blocked}." in message
        # an explicit backend is the user's choice: no prefix check
        assert bon.LM(model, backend="litellm:litellm").backend_ref == "litellm:litellm"
    finally:
        monkeypatch.delenv("BESTOFN_BLOCK_PLUGINS")
        reset_plugins()


def test_a_provider_neither_litellm_nor_a_plugin_knows_names_the_fix() -> None:
    # the litellm fallback claims every string: the error comes from it, at the first request
    with pytest.raises(LMRequestError) as info:
        bon.LM("nosuchprovider/model", num_retries=0, cache=False)(messages=MESSAGES)
    message = str(info.value)
    assert 'no installed backend plugin claims "nosuchprovider/"' in message
    assert "bestofn plugins" in message and 'backend="plugin:name"' in message


def test_import_does_not_import_litellm() -> None:
    code = "import sys, bestofn_core; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_response_cache_is_bounded_in_memory(tmp_path: Any) -> None:
    cache = ResponseCache(tmp_path / "c", memory_entries=3)
    for i in range(5):
        cache.put(f"k{i}", {"outputs": [str(i)]})
    assert len(cache) == 3
    assert cache.get("k0") == {"outputs": ["0"]}  # evicted from memory, still on disk


def test_unwritable_cache_directory_falls_back_to_memory(make_lm: Any, server: Any, tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    configure_cache(disk_cache_dir=blocker / "cache")
    lm = make_lm()
    assert lm(messages=MESSAGES) == lm(messages=MESSAGES)
    assert len(server.requests) == 1


def test_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("BESTOFN_CACHE_DIR", str(tmp_path / "from-env"))
    cache = configure_cache()
    assert cache.directory == tmp_path / "from-env"
    monkeypatch.delenv("BESTOFN_CACHE_DIR")
    assert configure_cache().directory == Path.home() / ".bestofn_cache"
    assert configure_cache(enable_disk_cache=False).directory is None

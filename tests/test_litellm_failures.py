"""Failures litellm reports in its own way, as the built-in backend must present them.

A missing API key is reported by litellm as a server error (500, retried with backoff) or a connection
error; it must fail at once, naming the variable to set. And an attempt cancelled while litellm builds
its request in a worker thread (BestOfN's early stop, a deadline) must not leave "coroutine ... was never
awaited" warnings behind. Requests go to the session's test server, or nowhere: a missing key fails
before anything is sent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import LMAuthenticationError
from bestofn_core.testing.openai_server import OpenAICompatServer


@pytest.mark.parametrize(
    ("model", "variable", "with_server"),
    [
        ("openai/test", "OPENAI_API_KEY", True),  # a local server: the openai client still wants a key
        ("anthropic/claude-3-haiku-20240307", "ANTHROPIC_API_KEY", False),
        ("gemini/gemini-1.5-flash", "GEMINI_API_KEY", False),
    ],
)
def test_a_missing_api_key_fails_at_once_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    server: OpenAICompatServer,
    model: str,
    variable: str,
    with_server: bool,
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    connection = {"api_base": server.url} if with_server else {}
    lm = bon.LM(model, backend="litellm:litellm", retry_base_delay=0.2, cache=False, **connection)
    with caplog.at_level(logging.INFO, logger="bestofn_core"), pytest.raises(LMAuthenticationError) as info:
        lm("hi")
    message = str(info.value)
    assert variable in message and "api_key=" in message
    assert "retry" not in caplog.text  # failed at once: no retry was scheduled
    assert server.requests == []


def test_bestofn_with_a_missing_key_fails_every_attempt_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, server: OpenAICompatServer
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    bon.configure(lm=bon.LM("openai/test", api_base=server.url, backend="litellm:litellm", cache=False))
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=lambda inputs, prediction: 1.0)
    with caplog.at_level(logging.INFO, logger="bestofn_core"), pytest.raises(bon.errors.BestOfNError) as info:
        best(question="q")
    assert all(isinstance(error, LMAuthenticationError) for error in info.value.exceptions)
    assert "OPENAI_API_KEY" in str(info.value)
    assert "retry" not in caplog.text


def unawaited(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(warning.message) for warning in caught if "was never awaited" in str(warning.message)]


def test_attempts_cancelled_while_litellm_dispatches_leave_no_unawaited_coroutine(make_lm: Any) -> None:
    lm = make_lm(cache=False)
    lm("warm up")  # litellm imported, its clients built

    async def cancel_after(delay: float) -> None:
        task = asyncio.ensure_future(lm.acall(f"cancelled after {delay}s"))
        await asyncio.sleep(delay)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def cancel_at_many_points() -> None:
        # litellm builds each request in a worker thread for a few milliseconds: cancelling at 0 to 30 ms
        # after the call starts lands in that step many times
        for step in range(60):
            await cancel_after(step * 0.0005)
        await asyncio.sleep(0.2)  # let the worker threads finish what they were doing

    with warnings.catch_warnings(record=True) as caught:
        asyncio.run(cancel_at_many_points())
        gc.collect()
    assert unawaited(caught) == []

"""Fixtures of the llamacpp tests: the real SmolLM2-135M model through real llama-cpp-python.

Every test starts from default settings and an empty temporary response cache (``bestofn_isolated``, from
bestofn-core's pytest plugin). Models stay loaded between tests (loading takes a fraction of a second
but is still the slowest step), except where a test unloads them to watch a first load.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# before bestofn_core (and litellm) are imported: no network at import, no writes to the real home
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("BESTOFN_CACHE_DIR", tempfile.mkdtemp(prefix="bestofn-llamacpp-test-cache-"))

import pytest

import bestofn_core as bon

#: Completions stay short so the suite stays fast; tests that need longer ones say so.
TEST_MAX_TOKENS = 16
#: One thread: on a busy machine, llama.cpp's threads spin waiting for each other and two can be slower.
TEST_THREADS = 1


@pytest.fixture(autouse=True)
def isolated(bestofn_isolated: Path) -> None:
    """Default settings and an empty, temporary response cache for every test."""


@pytest.fixture
def make_lm() -> Callable[..., bon.LM]:
    """Build an LM on the embedded SmolLM2 model: short completions, no response cache, one thread.

    The response cache is off because these tests check what the model does: with the cache on, the
    same rollout id would return the cached text without generating anything.
    """

    def make(model: str = "local/smollm2", **kwargs: Any) -> bon.LM:
        kwargs.setdefault("max_tokens", TEST_MAX_TOKENS)
        kwargs.setdefault("n_threads", TEST_THREADS)
        kwargs.setdefault("cache", False)
        return bon.LM(model, **kwargs)

    return make


@dataclass
class Spy:
    """What the backend planned for each request, and where llama.cpp decoded.

    ``calls`` has one entry per planned choice: the checked sampling params and seed the backend hands
    to the engine, with the request's ``messages``. With ``dry`` set, a request is answered
    ``"(dry run)"`` at once instead of generating, for tests that only check what was planned (long
    default completions would slow the suite down).
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    dry: bool = False

    @property
    def kwargs(self) -> list[dict[str, Any]]:
        """Each planned choice's params except the messages."""
        return [{k: v for k, v in call.items() if k != "messages"} for call in self.calls]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    """Record every planned choice and the threads that run ``llama_decode``."""
    import threading

    from bestofn_llamacpp import _engine, _native, backend

    from bestofn_core.protocols import LMResponse, token_usage

    recorded = Spy()
    plan = backend._Generation.job
    decode = _native.NativeModel.decode
    submit = _engine.Engine.submit

    def job(self: backend._Generation) -> _engine.Job:
        recorded.calls.extend({**call, "messages": self.messages} for call in self.calls)
        return plan(self)

    def recording_decode(self: _native.NativeModel, items: Any) -> None:
        recorded.threads.add(threading.current_thread().name)
        decode(self, items)

    def dry_submit(self: _engine.Engine, job: _engine.Job) -> None:
        if not recorded.dry:
            submit(self, job)
            return
        outputs = ["(dry run)"] * len(job.settings)
        usage = token_usage(1, len(outputs))
        response = LMResponse(
            outputs=outputs, usage=usage, model=job.model, finish_reasons=["stop"] * len(outputs)
        )
        job.future.set_result(response)

    monkeypatch.setattr(backend._Generation, "job", job)
    monkeypatch.setattr(_native.NativeModel, "decode", recording_decode)
    monkeypatch.setattr(_engine.Engine, "submit", dry_submit)
    yield recorded

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
    """What ``Llama.create_chat_completion`` received: one entry per call (one per choice).

    With ``dry`` set, the call answers ``"(dry run)"`` at once instead of generating, for tests that only
    check what was sent (long default completions would slow the suite down).
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    dry: bool = False

    @property
    def kwargs(self) -> list[dict[str, Any]]:
        """Each call's keyword arguments except the messages."""
        return [{k: v for k, v in call.items() if k != "messages"} for call in self.calls]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    """Record every ``create_chat_completion`` call (then run it) on every ``Llama`` object."""
    import threading

    import llama_cpp

    recorded = Spy()
    original = llama_cpp.Llama.create_chat_completion

    def create_chat_completion(self: llama_cpp.Llama, *args: Any, **kwargs: Any) -> Any:
        assert not args, "the backend passes everything by keyword"
        recorded.calls.append(dict(kwargs))
        recorded.threads.append(threading.current_thread().name)
        if recorded.dry:
            return {
                "choices": [{"message": {"content": "(dry run)"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        return original(self, **kwargs)

    monkeypatch.setattr(llama_cpp.Llama, "create_chat_completion", create_chat_completion)
    yield recorded

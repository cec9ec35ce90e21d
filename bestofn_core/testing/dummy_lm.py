"""DummyLM: a scripted language model for tests, with the real LM machinery around it.

It is a ``BaseLM``, so caching, retries, usage, history and callbacks behave exactly as with a real model;
only the completion itself is scripted. Answers can be a list (served in order), a dict keyed by a
substring of the prompt, or a function of the request (which sees ``rollout_id``). A dict answer maps
output fields to values and is written in the format the adapter asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bestofn_core.lm.base import BaseLM
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_core.testing.formats import render_fields, requested_fields

Answer = str | Mapping[str, Any]
Script = Sequence[Answer] | Mapping[str, Answer] | Callable[[LMRequest, int], Answer]


class DummyLM(BaseLM):
    """A scripted LM.

    Args:
        answers: a list of answers served in order (one per choice), a dict from prompt substring to
            answer, or ``fn(request, choice_index) -> answer``.
        delay: seconds to wait per request (``asyncio.sleep``), or ``fn(request) -> seconds``.
        supports_n: whether one request returns ``n`` choices (otherwise the kernel asks n times).
        max_choices: return at most this many choices per request (to test top-ups).
        **kwargs: as for ``BaseLM`` (``cache`` defaults to False here).
    """

    def __init__(
        self,
        answers: Script,
        *,
        model: str = "dummy/model",
        delay: float | Callable[[LMRequest], float] = 0.0,
        supports_n: bool = True,
        max_choices: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("cache", False)
        super().__init__(model, **kwargs)
        self.answers = answers
        self.delay = delay
        self._supports_n = supports_n
        self.max_choices = max_choices
        self.requests: list[LMRequest] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()

    @property
    def supports_n(self) -> bool:
        """As given to the constructor."""
        return self._supports_n

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Answer ``request`` from the script."""
        with self._lock:
            self.requests.append(request)
        delay = self.delay(request) if callable(self.delay) else self.delay
        if delay:
            await asyncio.sleep(delay)
        n = int(request.params.get("n") or 1) if self._supports_n else 1
        if self.max_choices is not None:
            n = min(n, self.max_choices)
        prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        form, _ = requested_fields(str(request.messages[-1].get("content", "")) if request.messages else "")
        outputs = [self._render(self._answer(request, prompt, i), form) for i in range(n)]
        prompt_tokens = len(prompt.split())
        completion_tokens = sum(len(text.split()) for text in outputs)
        return LMResponse(
            outputs=outputs,
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            model=self.model,
        )

    def _answer(self, request: LMRequest, prompt: str, index: int) -> Answer:
        script = self.answers
        if callable(script):
            return script(request, index)
        if isinstance(script, Mapping):
            for key, answer in script.items():
                if key in prompt:
                    return answer
            raise LookupError(f"DummyLM has no answer for this prompt (keys: {list(script)})")
        with self._lock:
            position = next(self._counter)
        if position >= len(script):
            raise LookupError(f"DummyLM ran out of scripted answers after {len(script)}")
        return script[position]

    @staticmethod
    def _render(answer: Answer, form: str) -> str:
        if isinstance(answer, str):
            return answer
        return render_fields("json" if form == "json" else "chat", dict(answer))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_lock", None)  # locks do not pickle; a new one is made on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def copy(self, **kwargs: Any) -> DummyLM:
        """A copy sharing the script, the request log and the counter."""
        new = super().copy(**kwargs)
        assert isinstance(new, DummyLM)
        return new

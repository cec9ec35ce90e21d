"""DummyLM: a scripted language model for tests, with the real LM machinery around it.

It is a ``BaseLM``, so caching, retries, usage, history and callbacks behave exactly as with a real model;
only the completion itself is scripted. The script is one of:

- a list of answers, served in order, one per choice, across every request (and every copy of the LM);
- a dict from a substring of the prompt to the answer (the first key found in the request's messages
  wins; a last key ``""`` matches every prompt, as a default), which answers any number of requests;
- a function ``fn(request, choice_index) -> answer``, which sees the whole ``LMRequest`` (``rollout_id``
  included, so a test can give each BestOfN attempt its own answer).

An answer is a string (sent as is), a dict from output field to value (written in the format the adapter
asked for: ``[[ ## field ## ]]`` sections or a JSON object), or an exception instance, which the request
raises (to test retries with ``LMTransientError`` subclasses, or failures with anything else).

Running out of list answers, or a prompt that no dict key matches, raises ``LookupError`` naming the
script, so a test fails where the script is wrong rather than with a parse error later.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bestofn_core.lm.base import BaseLM
from bestofn_core.protocols import LMRequest, LMResponse, token_usage
from bestofn_core.testing.formats import render_fields, requested_fields

__all__ = ["Answer", "DummyLM", "Script"]

#: One scripted choice: text, output fields by name, or an exception to raise.
Answer = str | Mapping[str, Any] | BaseException
#: What a DummyLM answers from: answers in order, answers by prompt substring, or a function.
Script = Sequence[Answer] | Mapping[str, Answer] | Callable[[LMRequest, int], Answer]

# How much of a prompt an error message quotes: enough to recognise it, not a wall of text.
_PROMPT_PREVIEW = 300


class _Cursor:
    """The next position in a list script, shared by an LM and its copies, safe across threads."""

    def __init__(self) -> None:
        self.position = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        """Claim the next position."""
        with self._lock:
            position = self.position
            self.position += 1
            return position

    def __getstate__(self) -> dict[str, Any]:
        return {"position": self.position}  # locks do not pickle; a new one is made on load

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.position = state["position"]
        self._lock = threading.Lock()


class DummyLM(BaseLM):
    """A scripted LM.

    Args:
        answers: the script: a list of answers served in order (one per choice), a dict from prompt
            substring to answer, or ``fn(request, choice_index) -> answer``. An answer is a string, a
            dict of output fields, or an exception instance to raise.
        model: the model string (``"dummy/model"``); it is what history and usage are keyed by.
        delay: seconds to wait per request (``asyncio.sleep``, so concurrent requests overlap), or
            ``fn(request) -> seconds``.
        supports_n: whether one request returns ``n`` choices. When False the kernel sends ``n``
            one-choice requests instead, as it does for real backends without ``n``.
        max_choices: return at most this many choices per request (to test callers that top up).
        **kwargs: as for ``BaseLM`` (``temperature``, ``rollout_id``, ``num_retries``, ...); ``cache``
            defaults to False here, so every call reaches the script.

    ``requests`` lists every ``LMRequest`` received, in arrival order (shared with copies).
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
        _check_script(answers)
        if max_choices is not None and (isinstance(max_choices, bool) or max_choices < 1):
            raise ValueError(f"DummyLM(max_choices=...) must be None or an int >= 1, not {max_choices!r}")
        kwargs.setdefault("cache", False)
        super().__init__(model, **kwargs)
        self.answers = answers
        self.delay = delay
        self._supports_n = supports_n
        self.max_choices = max_choices
        self.requests: list[LMRequest] = []
        self._cursor = _Cursor()

    @property
    def supports_n(self) -> bool:
        """As given to the constructor."""
        return self._supports_n

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Answer ``request`` from the script: ``n`` choices (capped by ``max_choices``), with usage."""
        self.requests.append(request)  # list.append is atomic; no lock needed
        delay = self.delay(request) if callable(self.delay) else self.delay
        if delay:
            await asyncio.sleep(delay)
        n = int(request.params.get("n") or 1) if self._supports_n else 1
        if self.max_choices is not None:
            n = min(n, self.max_choices)
        prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        form, _ = requested_fields(str(request.messages[-1].get("content", "")) if request.messages else "")
        outputs = [self._render(self._answer(request, prompt, i), form) for i in range(n)]
        # Whitespace-separated words stand in for tokens: deterministic, and enough to test usage.
        prompt_tokens = len(prompt.split())
        completion_tokens = sum(len(text.split()) for text in outputs)
        usage = token_usage(prompt_tokens, completion_tokens)
        return LMResponse(outputs=outputs, usage=usage, model=self.model)

    def _answer(self, request: LMRequest, prompt: str, index: int) -> str | Mapping[str, Any]:
        script = self.answers
        if callable(script):
            answer = script(request, index)
            what = f"The DummyLM script function {getattr(script, '__qualname__', script)!r}"
        elif isinstance(script, Mapping):
            answer = self._answer_by_prompt(script, prompt)
            what = "A DummyLM dict script"
        else:
            position = self._cursor.take()
            if position >= len(script):
                raise LookupError(
                    f"DummyLM ran out of scripted answers: the list has {len(script)}, and choice {index} "
                    f"of this request needs answer #{position + 1}. Add answers to the list (one per "
                    "choice, across every request and copy of the LM), or pass a dict or a function, "
                    "which answer any number of requests."
                )
            answer = script[position]
            what = f"DummyLM list answer #{position + 1}"
        if isinstance(answer, BaseException):
            raise answer
        if not isinstance(answer, (str, Mapping)):
            raise TypeError(
                f"{what} gave {answer!r} ({type(answer).__name__}); an answer must be a string, a dict of "
                "output fields such as {'answer': '42'}, or an exception instance to raise."
            )
        return answer

    @staticmethod
    def _answer_by_prompt(script: Mapping[str, Answer], prompt: str) -> Answer:
        for key, answer in script.items():
            if key in prompt:
                return answer
        preview = prompt if len(prompt) <= _PROMPT_PREVIEW else "..." + prompt[-_PROMPT_PREVIEW:]
        raise LookupError(
            f"DummyLM has no answer for this prompt: none of the keys {list(script)} occurs in it. Add a key "
            f"that is a substring of the prompt (the request's messages, joined). The prompt ends with:\n"
            f"{preview}"
        )

    @staticmethod
    def _render(answer: str | Mapping[str, Any], form: str) -> str:
        if isinstance(answer, str):
            return answer
        # "text" (a prompt that named no output fields) gets the chat format, which ChatAdapter parses.
        return render_fields(form if form in ("json", "compact") else "chat", dict(answer))

    def copy(self, **kwargs: Any) -> DummyLM:
        """A copy sharing the script, the request log and the list position."""
        new = super().copy(**kwargs)
        assert isinstance(new, DummyLM)
        return new


def _check_script(answers: Any) -> None:
    # A string is a Sequence too: DummyLM("hi") would answer "h", then "i", then run out.
    if isinstance(answers, (str, bytes)):
        raise TypeError(
            f"DummyLM got the string {answers!r} as its script; pass a list of answers: "
            f"DummyLM([{answers!r}])."
        )
    if not (callable(answers) or isinstance(answers, (Mapping, Sequence))):
        raise TypeError(
            "DummyLM(answers=...) must be a list of answers, a dict from prompt substring to answer, or "
            f"a function fn(request, choice_index) -> answer; got {type(answers).__name__}."
        )
    if isinstance(answers, Mapping) and not all(isinstance(key, str) for key in answers):
        raise TypeError(
            f"The keys of a DummyLM dict script are prompt substrings (str); got {list(answers)!r}."
        )

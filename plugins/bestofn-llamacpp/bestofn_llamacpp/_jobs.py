"""What a request hands the engine (a ``Job``), and the engine's bookkeeping of slots and sequences."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bestofn_core.protocols import LMResponse

if TYPE_CHECKING:
    from bestofn_llamacpp._completion import Completion
    from bestofn_llamacpp._sampler import SequenceSampler
    from bestofn_llamacpp._settings import SamplingSettings

__all__ = ["Choice", "Job", "Slot"]


class Job:
    """One request for the engine: the messages, one ``SamplingSettings`` per choice, and the answer."""

    def __init__(self, model: str, messages: list[dict[str, str]], settings: list[SamplingSettings]) -> None:
        self.model = model
        self.messages = messages
        self.settings = settings
        #: resolved with the ``LMResponse``; cancelling it (``cancel()``) drops the job at the next step
        self.future: concurrent.futures.Future[LMResponse] = concurrent.futures.Future()
        self.prompt: list[int] = []
        self.choices: list[Choice] = []

    def cancel(self) -> None:
        """Stop waiting: the engine drops the job's sequences at its next step."""
        self.future.cancel()

    def fail(self, error: BaseException) -> None:
        """Answer with ``error`` (unless the caller is gone or it was answered already)."""
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.future.set_exception(error)

    def answer(self, response: LMResponse) -> None:
        """Answer with ``response`` (unless the caller just left)."""
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.future.set_result(response)


class Slot:
    """One sequence slot of the context: the tokens its cells hold, and the choice using it (if any).

    Only the cells of prompt tokens evaluated several at a time can be reused for another prompt:
    llama.cpp computes a sequence's attention one way when the batch has one of its tokens and another
    when it has several, so a generated token's cells (decoded one at a time) are not the cells the
    same token gets as part of a prompt.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        #: the tokens its cells hold, by position
        self.tokens: list[int] = []
        #: how many of the first cells were evaluated as a prompt, several tokens at a time
        self.prompt_cells = 0
        self.choice: Choice | None = None

    def shared_prefix(self, prompt: Sequence[int]) -> int:
        """How many first tokens of ``prompt`` this slot's reusable cells already hold."""
        length = 0
        for held, wanted in zip(self.tokens[: self.prompt_cells], prompt, strict=False):
            if held != wanted:
                break
            length += 1
        return length

    def hold(self, tokens: list[int], prompt_cells: int) -> None:
        """Record what the slot's cells now hold."""
        self.tokens = tokens
        self.prompt_cells = min(prompt_cells, len(tokens))


class Choice:
    """One sequence: a choice of a job, from its admission to its last token."""

    def __init__(self, job: Job, settings: SamplingSettings, completion: Completion) -> None:
        self.job = job
        self.settings = settings
        self.completion = completion
        self.sampler: SequenceSampler | None = None
        self.slot: Slot | None = None
        #: prompt tokens still to evaluate in the slot
        self.pending: list[int] = []
        #: the choice evaluating this one's prompt, whose cells it copies when done
        self.leader: Choice | None = None
        self.followers: list[Choice] = []
        #: the sampled token that the next step decodes
        self.next_token: int | None = None
        #: admission order (prompts are evaluated first come, first served)
        self.admitted = 0

"""The decode loop of one loaded model: every request's choices decoded together, one token per step.

Each ``SharedModel`` has one ``Engine``. Its thread owns the llama.cpp context and runs a loop; requests
hand it a ``Job`` (their messages and one ``SamplingSettings`` per choice) and wait on the job's
``concurrent.futures.Future`` from any thread or event loop. Each turn of the loop:

1. takes the new jobs (chat template, tokens, the context-window check) and drops the choices whose
   caller is gone (cancelled or timed out);
2. admits waiting choices into free sequence slots, in arrival order: a choice whose prompt is being
   evaluated for another one *follows* it (the prompt is evaluated once, its cells copied when done);
   otherwise it starts from the longest prefix of its prompt that any slot holds (a system prompt,
   demos, the same question asked again), copied into its slot, and evaluates only the rest;
3. decodes the next token of every decoding sequence in one ``llama_decode`` call and samples each
   with its own sampler;
4. evaluates a chunk of one waiting prompt (the longest waiting first in line) in a call of its own,
   and when the prompt is done, samples the first token of each choice that shares it.

Generated tokens are always decoded one per sequence per call, and prompt tokens always several at a
time: llama.cpp computes attention differently for the two, so keeping them apart is what makes a
sequence's text independent of what else is decoded (see ``_jobs.Slot``).

A finished sequence leaves the batch at once; its slot keeps its cells, so a later prompt with the same
prefix reuses them. Slots are taken lowest first, which keeps the sequences of a step in neighbouring
KV streams (llama.cpp computes a batch over the streams between its lowest and highest sequence).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bestofn_core.errors import LMRequestError
from bestofn_core.protocols import LMResponse, token_usage
from bestofn_llamacpp._completion import Completion
from bestofn_llamacpp._jobs import Choice, Job, Slot
from bestofn_llamacpp._models import EngineStats
from bestofn_llamacpp._native import BatchItem, NativeModel
from bestofn_llamacpp._sampler import SequenceSampler

if TYPE_CHECKING:
    from bestofn_llamacpp._models import LoadOptions

__all__ = ["Engine", "Job"]

#: Prompt tokens evaluated per step at most: a long prompt is evaluated over several steps, so the
#: sequences decoding beside it (and a cancellation) wait one chunk, not the whole prompt.
PROMPT_CHUNK = 256


class Engine:
    """The batched decode loop of one GGUF file loaded with one set of options (see the module doc)."""

    def __init__(self, path: Path, options: LoadOptions) -> None:
        self.path = path
        self.options = options
        self._cond = threading.Condition()
        self._incoming: list[Job] = []
        self._closing = False
        self._forget = False
        self._thread: threading.Thread | None = None
        self._native: NativeModel | None = None
        self._slots: list[Slot] = []
        self._waiting: deque[Choice] = deque()
        self._stats = EngineStats(model=str(path))

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._native is not None

    @property
    def stats(self) -> EngineStats:
        """A snapshot of what the engine has done since the model loaded."""
        # read from another thread while the loop runs: a snapshot, not a transaction
        active = len(self._waiting) + sum(slot.choice is not None for slot in list(self._slots))
        return replace(self._stats, active=active)

    def submit(self, job: Job) -> None:
        """Hand ``job`` to the engine (thread-safe); its future resolves when every choice is done."""
        with self._cond:
            if self._closing:
                raise LMRequestError(f"{job.model}: the model was unloaded", model=job.model)
            self._incoming.append(job)
            if self._thread is None:
                name = f"bestofn-llamacpp-{self.path.name}"
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def clear_prompt_cache(self) -> None:
        """Forget the cells that idle slots keep (applied before any request submitted after this call)."""
        with self._cond:
            self._forget = True
            self._cond.notify()

    def close(self, timeout: float | None = None) -> bool:
        """Stop the loop after its current step and free the model; whether it stopped in ``timeout``.

        Requests still running fail with ``LMRequestError``. Without a thread (never used, or a forked
        child's copy) only the model is freed.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is None:
            self._free()
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._closing or self._incoming or self._forget or self._busy()):
                        self._cond.wait()
                    if self._closing:
                        return
                    incoming, self._incoming = self._incoming, []
                    forget, self._forget = self._forget, False
                try:
                    if forget:
                        self._forget_idle_slots()
                    self._turn(incoming)
                except Exception as exc:  # llama.cpp failed, or a bug: every request in flight hears of it
                    self._fail_everything(incoming, exc)
        finally:
            with self._cond:
                leftovers, self._incoming = self._incoming, []
            error = LMRequestError(f"{self.path.name}: the model was unloaded while the request ran")
            self._fail_everything(leftovers, error)
            self._free()

    def _forget_idle_slots(self) -> None:
        for slot in self._slots:
            if slot.choice is None and slot.tokens and self._native is not None:
                self._native.truncate_slot(slot.index, 0)
                slot.hold([], 0)

    def _busy(self) -> bool:
        return bool(self._waiting) or any(slot.choice is not None for slot in self._slots)

    def _turn(self, incoming: list[Job]) -> None:
        if incoming:
            native = self._load(incoming)
            if native is None:
                return
            for job in incoming:
                self._accept(native, job)
        native = self._native
        if native is None:
            return
        self._drop_gone()
        self._admit(native)
        self._step(native)

    def _load(self, incoming: list[Job]) -> NativeModel | None:
        if self._native is None and all(job.future.done() for job in incoming):
            for job in incoming:  # every caller left before the model was needed: do not load it
                self._stats.dropped += len(job.settings)
            return None
        if self._native is None:
            try:
                self._native = NativeModel(incoming[0].model, self.path, self.options)
            except Exception as exc:
                for job in incoming:
                    job.fail(exc)
                return None
            self._slots = [Slot(index) for index in range(self._native.n_seq_max)]
            self._stats.n_ctx, self._stats.n_seq_max = self._native.n_ctx, self._native.n_seq_max
            self._stats.n_threads = self.options.n_threads
        return self._native

    def _accept(self, native: NativeModel, job: Job) -> None:
        if job.future.done():  # cancelled before the engine got to it
            self._stats.dropped += len(job.settings)
            return
        try:
            prompt = native.prompt(job.model, job.messages)
        except LMRequestError as exc:
            job.fail(exc)
            return
        size = len(prompt.tokens)
        job.prompt = prompt.tokens
        for settings in job.settings:
            # never more tokens than the window leaves (Llama.create_completion's rule)
            stops = (*settings.stop, *prompt.stops)
            completion = Completion(min(settings.max_tokens, native.n_ctx - size), stops)
            choice = Choice(job, settings, completion)
            job.choices.append(choice)
            self._waiting.append(choice)
        self._stats.requests += 1
        self._stats.prompt_tokens += size

    def _drop_gone(self) -> None:
        for slot in self._slots:
            if slot.choice is not None and slot.choice.job.future.done():
                self._stats.dropped += 1
                self._release(slot.choice)
        kept = [choice for choice in self._waiting if not choice.job.future.done()]
        self._stats.dropped += len(self._waiting) - len(kept)
        self._waiting = deque(kept)

    def _admit(self, native: NativeModel) -> None:
        while self._waiting:
            free = [slot for slot in self._slots if slot.choice is None]
            if not free:
                return
            choice = self._waiting.popleft()
            target = free[0]
            try:
                choice.sampler = SequenceSampler(native, choice.settings)
            except Exception as exc:
                choice.job.fail(exc)
                continue
            target.choice, choice.slot = choice, target
            self._stats.choices += 1
            choice.admitted = self._stats.choices
            prompt = choice.job.prompt
            leader = next(
                (slot.choice for slot in self._slots if slot.choice is not None and slot.choice.pending
                 and slot.choice.leader is None and slot.choice.job.prompt == prompt),
                None,
            )  # fmt: skip
            if leader is not None:
                choice.leader = leader
                leader.followers.append(choice)
                target.hold([], 0)  # its cells are replaced by the leader's when the prompt is done
                continue
            source, shared = self._longest_prefix(prompt)
            # the last two prompt tokens are always evaluated, together: the logits of the last one
            # are then computed as when the whole prompt is evaluated at once (see Slot)
            reuse = max(0, min(shared, len(prompt) - 2))
            if source is not None and source is not target and reuse > 0:
                native.copy_slot(source.index, target.index)
                target.hold(source.tokens[:reuse], reuse)
                self._stats.slot_copies += 1
            else:
                target.hold(target.tokens[:reuse] if source is target else [], reuse)
            native.truncate_slot(target.index, len(target.tokens))
            choice.pending = prompt[len(target.tokens) :]
            self._stats.prompt_tokens_reused += len(target.tokens)

    def _longest_prefix(self, prompt: Sequence[int]) -> tuple[Slot | None, int]:
        best: Slot | None = None
        best_length = 0
        for slot in self._slots:
            length = slot.shared_prefix(prompt)
            if length > best_length:
                best, best_length = slot, length
        return best, best_length

    def _step(self, native: NativeModel) -> None:
        """One ``llama_decode`` call for the next token of every decoding sequence, then one for a
        chunk of one prompt.

        Apart, because llama.cpp splits a call into micro-batches that take as many tokens from each
        of its sequences: beside one-token sequences, a prompt would have tokens evaluated alone, which
        changes their cells (see ``Slot``). A prompt chunk has a call of its own, so its tokens are
        always evaluated several at a time, as when the prompt is evaluated whole.
        """
        decoding = [
            slot.choice
            for slot in self._slots
            if slot.choice is not None and slot.choice.next_token is not None
        ]
        if decoding:
            items = []
            for choice in decoding:
                assert choice.slot is not None and choice.next_token is not None
                items.append(
                    BatchItem(choice.next_token, len(choice.slot.tokens), choice.slot.index, logits=True)
                )
            self._decode(native, items)
            for index, choice in enumerate(decoding):
                assert choice.slot is not None and choice.next_token is not None
                choice.slot.tokens.append(choice.next_token)
                choice.next_token = None
                self._sample(native, choice, index)
        prefilling = [slot.choice for slot in self._slots if slot.choice is not None and slot.choice.pending]
        if prefilling:
            self._prefill(native, min(prefilling, key=lambda choice: choice.admitted))

    def _prefill(self, native: NativeModel, choice: Choice) -> None:
        slot = choice.slot
        assert slot is not None
        length = _chunk_length(len(choice.pending), PROMPT_CHUNK)
        chunk, done = choice.pending[:length], length == len(choice.pending)
        start = len(slot.tokens)
        self._decode(
            native,
            [
                BatchItem(token, start + offset, slot.index, logits=done and offset == length - 1)
                for offset, token in enumerate(chunk)
            ],
        )
        # a one-token prompt (nothing to evaluate it with) is the only prompt token evaluated alone
        slot.hold(slot.tokens + chunk, start + length if length > 1 else 0)
        choice.pending = choice.pending[length:]
        self._stats.prompt_tokens_evaluated += length
        if done:
            for follower in choice.followers:
                self._follow(native, choice, follower, length - 1)
            choice.followers = []
            self._sample(native, choice, length - 1)

    def _decode(self, native: NativeModel, items: list[BatchItem]) -> None:
        native.decode(items)
        self._stats.decode_calls += 1
        self._stats.most_sequences = max(self._stats.most_sequences, len({item.slot for item in items}))

    def _follow(self, native: NativeModel, leader: Choice, follower: Choice, index: int) -> None:
        assert leader.slot is not None and follower.slot is not None
        native.copy_slot(leader.slot.index, follower.slot.index)
        follower.slot.hold(list(leader.slot.tokens), leader.slot.prompt_cells)
        follower.leader = None
        self._stats.slot_copies += 1
        self._stats.prompt_tokens_reused += len(leader.slot.tokens)
        self._sample(native, follower, index)

    def _sample(self, native: NativeModel, choice: Choice, index: int) -> None:
        assert choice.sampler is not None
        token = choice.sampler.sample(index)
        end = native.is_end_of_generation(token)
        if choice.completion.add(token, b"" if end else native.piece(token), end):
            self._release(choice)
            self._resolve_if_done(choice.job)
        else:
            choice.next_token = token

    def _release(self, choice: Choice) -> None:
        """Take ``choice`` out of its slot; the slot keeps its cells for prefix reuse."""
        if choice.sampler is not None:
            choice.sampler.close()
            choice.sampler = None
        if choice.slot is not None:
            if choice.leader is not None:  # still waiting for a copy: its cells hold nothing of use
                choice.slot.hold([], 0)
                choice.leader.followers.remove(choice)
                choice.leader = None
            choice.slot.choice = None
            choice.slot = None
        choice.next_token = None
        choice.pending = []
        followers, choice.followers = choice.followers, []
        for follower in reversed(followers):  # their leader is gone: they start over, first in line
            follower.leader = None
            self._release(follower)
            self._waiting.appendleft(follower)

    def _resolve_if_done(self, job: Job) -> None:
        if any(choice.completion.finish_reason is None for choice in job.choices):
            return
        response = LMResponse(
            outputs=[choice.completion.text for choice in job.choices],
            usage=token_usage(len(job.prompt), sum(len(choice.completion.tokens) for choice in job.choices)),
            model=job.model,
            finish_reasons=[choice.completion.finish_reason for choice in job.choices],
        )
        job.answer(response)

    def _fail_everything(self, incoming: list[Job], error: BaseException) -> None:
        jobs = {id(job): job for job in incoming}
        for slot in self._slots:
            if slot.choice is not None:
                jobs[id(slot.choice.job)] = slot.choice.job
                self._release(slot.choice)
            slot.hold([], 0)
        for choice in self._waiting:
            jobs[id(choice.job)] = choice.job
        self._waiting.clear()
        if self._native is not None:
            self._native.clear()
        if not isinstance(error, LMRequestError):
            error = LMRequestError(f"{self.path.name}: llama.cpp failed: {type(error).__name__}: {error}")
        for job in jobs.values():
            job.fail(error)

    def _free(self) -> None:
        native, self._native = self._native, None
        if native is not None:
            native.close()


def _chunk_length(pending: int, budget: int) -> int:
    """How many of ``pending`` prompt tokens to evaluate with ``budget`` left in this step.

    Never one of several: a prompt token evaluated alone gets other cells (and logits) than the same
    token evaluated with others (see ``Slot``), so no chunk, nor what it leaves, is a single token.
    """
    if pending <= 1:
        return pending
    take = min(pending, budget)
    if pending - take == 1:
        take -= 1
    return take if take >= 2 else 0

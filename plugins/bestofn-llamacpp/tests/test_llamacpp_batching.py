"""The batched engine with the real SmolLM2-135M model: the ``n`` choices of a request and concurrent
requests decoded together, prompt-prefix reuse, per-sequence limits, cancellation, and texts that do
not depend on what is decoded beside them.

What the engine did is read from ``engine_stats()`` (counts, never timings). Tests that need an exact
count start from a freshly loaded model (``unload_models()``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from bestofn_llamacpp import (
    DEFAULT_N_SEQ_MAX,
    EngineStats,
    LlamaCppBackend,
    clear_prompt_cache,
    engine_stats,
    model_path,
    unload_models,
)

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError, LMRequestError, LMTimeoutError
from bestofn_core.protocols import LMRequest, LMResponse

MakeLM = Callable[..., bon.LM]
POEM = "Write a short poem about the sea."
STORY = "Tell me a long story about a dragon."


def stats(n_seq_max: int = DEFAULT_N_SEQ_MAX) -> EngineStats:
    """The engine of the test model (one thread, the default window) with ``n_seq_max`` slots."""
    (found,) = [
        entry
        for entry in engine_stats()
        if entry.model == str(model_path("local/smollm2"))
        and (entry.n_threads, entry.n_ctx, entry.n_seq_max) == (1, 2048, n_seq_max)
    ]
    return found


def request(prompt: str, rollout_id: int, **params: Any) -> LMRequest:
    """A one-message request on one thread; ``timeout`` goes to the request, the rest to its params."""
    timeout = params.pop("timeout", None)
    params = {"max_tokens": 16, "n_threads": 1, **params}
    messages = [{"role": "user", "content": prompt}]
    return LMRequest("local/smollm2", messages, params, timeout=timeout, rollout_id=rollout_id)


async def alone(backend: LlamaCppBackend, *requests: LMRequest) -> list[LMResponse]:
    """Each request on its own, one after the other (nothing decoded beside it)."""
    return [await backend.acomplete(each) for each in requests]


async def wait_for_steps(count: int) -> int:
    """Wait until the engine has run ``count`` more ``llama_decode`` calls; the total then."""
    target = stats().decode_calls + count
    while stats().decode_calls < target:
        await asyncio.sleep(0.005)
    return stats().decode_calls


# ---------------------------------------------------------------- one request, n choices


def test_n_choices_evaluate_the_prompt_once_and_decode_together(make_lm: MakeLM) -> None:
    unload_models()
    lm = make_lm(max_tokens=8)
    texts = lm("Name a colour of the rainbow.", rollout_id=0, n=4)
    after = stats()
    prompt_tokens = lm.history[-1]["usage"]["prompt_tokens"]
    assert len(texts) == 4 and len(set(texts)) > 1
    # the prompt was evaluated once; the three other sequences copied its cells
    assert after.prompt_tokens_evaluated == prompt_tokens
    assert after.slot_copies == 3 and after.prompt_tokens_reused == 3 * prompt_tokens
    # one step for the prompt, then one token of every live sequence per step
    assert after.most_sequences == 4
    assert after.decode_calls <= 1 + 8
    assert (after.requests, after.choices, after.dropped, after.active) == (1, 4, 0, 0)


def test_more_choices_than_slots_wait_for_a_free_slot_and_keep_their_texts(make_lm: MakeLM) -> None:
    lm = make_lm(n_seq_max=2)
    together = lm(POEM, rollout_id=30, n=5)
    assert together == [lm(POEM, rollout_id=30 + index)[0] for index in range(5)]
    assert stats(n_seq_max=2).most_sequences == 2


def test_a_context_llama_cpp_cannot_allocate_names_n_ctx_and_n_seq_max(
    make_lm: MakeLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_cpp import _internals

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("Failed to create llama_context")  # what llama-cpp-python raises when it cannot

    monkeypatch.setattr(_internals, "LlamaContext", refuse)
    lm = make_lm(n_ctx=4096, n_seq_max=3)
    with pytest.raises(
        LMRequestError, match=r"3 sequences of 4096 tokens \(12288 KV-cache cells.*n_seq_max="
    ) as info:
        lm("Hi")
    assert "Lower n_ctx or n_seq_max" in str(info.value)
    monkeypatch.undo()
    assert lm("Hi", rollout_id=0)  # nothing was left half-loaded: the next request loads the model


def test_n_seq_max_is_checked(make_lm: MakeLM) -> None:
    with pytest.raises(ConfigurationError, match="n_seq_max must be at least 1"):
        make_lm(n_seq_max=0)("Hi")
    with pytest.raises(ConfigurationError, match="n_seq_max must be at most 256"):
        LlamaCppBackend(n_seq_max=1000)


# ---------------------------------------------------------------- concurrent requests


async def test_concurrent_requests_join_the_running_batch_with_unchanged_texts() -> None:
    unload_models()
    backend = LlamaCppBackend(n_threads=1)
    story = request(STORY, rollout_id=9, max_tokens=48)
    poems = [request(POEM, rollout_id=rollout, max_tokens=24) for rollout in (1, 2, 3)]
    expected = await alone(backend, story, *poems)
    assert expected[0].finish_reasons == ["length"]  # it runs all 48 steps: the others join it midway
    assert stats().most_sequences == 1

    running = asyncio.create_task(backend.acomplete(story))
    await wait_for_steps(4)
    joined = await asyncio.gather(*(backend.acomplete(poem) for poem in poems))
    assert stats().most_sequences == 4
    # bit-identical logits whatever is decoded beside a sequence: the same texts as alone
    assert [response.outputs for response in [await running, *joined]] == [
        response.outputs for response in expected
    ]
    assert [response.usage for response in [await running, *joined]] == [
        response.usage for response in expected
    ]


async def test_requests_from_threads_and_event_loops_share_one_batch(make_lm: MakeLM, spy: Any) -> None:
    lm = make_lm(max_tokens=12)
    expected = [lm(POEM, rollout_id=rollout)[0] for rollout in range(4)]
    results: dict[int, str] = {}

    def in_own_loop(rollout: int) -> None:
        results[rollout] = asyncio.run(lm.acall(POEM, rollout_id=rollout))[0]

    def sync_call(rollout: int) -> None:
        results[rollout] = lm(POEM, rollout_id=rollout)[0]

    workers = [threading.Thread(target=in_own_loop, args=(rollout,)) for rollout in (0, 1)]
    workers += [threading.Thread(target=sync_call, args=(rollout,)) for rollout in (2, 3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [results[rollout] for rollout in range(4)] == expected
    # llama.cpp ran on the model's engine thread only, never on a caller's thread or event loop
    assert spy.threads == {"bestofn-llamacpp-SmolLM2-135M-Instruct.Q4_1.gguf"}


def test_unloading_stops_the_engine_thread(make_lm: MakeLM) -> None:
    make_lm()("Hi", rollout_id=0)
    names = [thread.name for thread in threading.enumerate()]
    assert "bestofn-llamacpp-SmolLM2-135M-Instruct.Q4_1.gguf" in names
    assert unload_models() >= 1
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("bestofn-llamacpp")]
    assert make_lm()("Hi", rollout_id=0)  # loads again, with a new engine


# ---------------------------------------------------------------- prefix reuse


def test_a_common_prompt_prefix_is_evaluated_once_across_requests(make_lm: MakeLM) -> None:
    system = {"role": "system", "content": "You answer questions about geography. " * 12}
    first = [system, {"role": "user", "content": "What is the capital of Peru?"}]
    second = [system, {"role": "user", "content": "What is the capital of Chile?"}]
    lm = make_lm(max_tokens=6, temperature=0.0)
    unload_models()
    alone_text = lm(messages=second, rollout_id=0)  # a fresh model: nothing to reuse
    unload_models()
    lm(messages=first, rollout_id=0)
    before = stats()
    assert lm(messages=second, rollout_id=0) == alone_text  # reused cells give the same text
    after = stats()
    prompt_tokens = lm.history[-1]["usage"]["prompt_tokens"]
    evaluated = after.prompt_tokens_evaluated - before.prompt_tokens_evaluated
    reused = after.prompt_tokens_reused - before.prompt_tokens_reused
    assert evaluated + reused == prompt_tokens
    assert reused > 12 * 6  # the whole system prompt (more than 12 x 6 tokens) came from the cache
    assert evaluated < 20  # only the question and the end of the template were evaluated


def test_a_prompt_asked_again_gives_the_texts_it_gave_the_first_time(make_lm: MakeLM) -> None:
    # llama.cpp computes a sequence's attention one way for a single token and another for several:
    # a prompt found whole in the cache must still end on tokens evaluated as a prompt is, not alone
    lm = make_lm(max_tokens=24)
    prompt = "What is the capital of Portugal? Answer with the city name only."
    unload_models()
    first = lm(prompt, rollout_id=0, n=8)
    lm(prompt, rollout_id=0, temperature=0.0)  # the whole prompt, and a completion, are in a slot now
    assert lm(prompt, rollout_id=0, n=8) == first


def test_a_conversation_does_not_reuse_the_cells_of_generated_tokens(make_lm: MakeLM) -> None:
    # the assistant's tokens were decoded one at a time; as part of the next prompt they are
    # evaluated as a prompt is, so the reply must not depend on whether they were in the cache
    lm = make_lm(max_tokens=24)
    question = {"role": "user", "content": "What is the capital of Egypt? Answer with the city name only."}
    unload_models()
    (answer,) = lm(messages=[question], rollout_id=0, temperature=0.0)
    conversation = [
        question,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And Spain?"},
    ]
    continued = lm(messages=conversation, rollout_id=1, n=8)
    unload_models()
    assert lm(messages=conversation, rollout_id=1, n=8) == continued


def test_clear_prompt_cache_makes_the_next_request_evaluate_its_whole_prompt(make_lm: MakeLM) -> None:
    lm = make_lm(max_tokens=4)
    first = lm(POEM, rollout_id=0)
    before = stats()
    assert lm(POEM, rollout_id=0) == first
    cached = stats()
    clear_prompt_cache()
    assert lm(POEM, rollout_id=0) == first
    after = stats()
    prompt_tokens = lm.history[-1]["usage"]["prompt_tokens"]
    assert (
        cached.prompt_tokens_evaluated - before.prompt_tokens_evaluated == 2
    )  # the last two (see _jobs.Slot)
    assert after.prompt_tokens_evaluated - cached.prompt_tokens_evaluated == prompt_tokens


# ---------------------------------------------------------------- per-sequence limits


async def test_stop_max_tokens_and_grammar_apply_per_sequence_in_one_batch() -> None:
    backend = LlamaCppBackend(n_threads=1)
    mixed = [
        request(POEM, rollout_id=1, max_tokens=40, stop=["\n"]),
        request(POEM, rollout_id=2, max_tokens=8),
        request("Reply in JSON.", rollout_id=3, max_tokens=24, response_format={"type": "json_object"}),
        request(POEM, rollout_id=4, max_tokens=40),
    ]
    expected = await alone(backend, *mixed)
    unload_models()
    together = await asyncio.gather(*(backend.acomplete(each) for each in mixed))
    # the four share decode steps; the engine thread may take the first request before the others are
    # submitted, so the shortest one can end before the last joins: at least three decode side by side
    assert stats().most_sequences >= 3
    assert [response.outputs for response in together] == [response.outputs for response in expected]
    stopped, _, json_text, free = (response.outputs[0] for response in together)
    assert together[0].finish_reasons == ["stop"] and "\n" not in stopped
    assert together[1].finish_reasons == ["length"] and together[1].usage["completion_tokens"] == 8
    assert json_text.lstrip().startswith("{")
    assert together[3].usage["completion_tokens"] > 8 and "\n" in free  # the others' limits did not apply


def test_the_grammar_is_exact_whether_it_checks_the_draw_or_masks_first(make_lm: MakeLM) -> None:
    # temperature 0 checks the greedy token against the grammar; top_k=1 makes the grammar mask first:
    # both must pick the most likely token the grammar allows, at every step
    lm = make_lm(max_tokens=24, response_format={"type": "json_object"})
    checked = lm("Describe a cat in JSON.", rollout_id=0, temperature=0.0)
    masked = lm("Describe a cat in JSON.", rollout_id=0, temperature=1.0, top_k=1)
    assert checked == masked and checked[0].lstrip().startswith("{")


def test_a_schema_llama_cpp_cannot_convert_is_a_configuration_error(make_lm: MakeLM) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": "bogus"}}}
    with pytest.raises(ConfigurationError, match=r"cannot turn this JSON schema into a grammar.*json_object"):
        make_lm()("Hi", response_format=bad)


# ---------------------------------------------------------------- cancellation and timeouts


async def test_a_cancelled_request_leaves_the_batch_at_the_next_step() -> None:
    unload_models()
    backend = LlamaCppBackend(n_threads=1)
    kept = request(POEM, rollout_id=5, max_tokens=40)
    (expected,) = await alone(backend, kept)
    beside = asyncio.create_task(backend.acomplete(kept))
    gone = asyncio.create_task(backend.acomplete(request(STORY, rollout_id=4, n=3, max_tokens=400)))
    await wait_for_steps(3)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    at_cancel = stats().decode_calls
    while stats().dropped < 3:  # the story's three sequences leave at the next step
        assert stats().decode_calls <= at_cancel + 2  # the rest of the step under way: two calls at most
        await asyncio.sleep(0.005)
    assert (await beside).outputs == expected.outputs  # the sequence beside them is unaffected
    while stats().active:
        await asyncio.sleep(0.005)
    assert stats().decode_calls < at_cancel + 40  # nothing ran on for the story (400 tokens each)


async def test_a_timed_out_request_leaves_the_batch_and_the_model_stays_usable() -> None:
    unload_models()
    backend = LlamaCppBackend(n_threads=1)
    await backend.acomplete(request("Hi", rollout_id=0))  # loaded: the timeout is spent generating
    with pytest.raises(LMTimeoutError, match="timeout of 0.3s"):
        await backend.acomplete(request(STORY, rollout_id=0, n=3, max_tokens=400, timeout=0.3))
    at_timeout = stats().decode_calls
    while stats().active:
        assert stats().decode_calls <= at_timeout + 2
        await asyncio.sleep(0.005)
    assert stats().dropped == 3
    again = await backend.acomplete(request(POEM, rollout_id=3))
    assert again.outputs and again.finish_reasons

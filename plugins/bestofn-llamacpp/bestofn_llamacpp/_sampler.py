"""One sequence's sampler: llama.cpp's sampler chain, seeded from the rollout, and its JSON grammar.

The chain is the one llama-cpp-python's ``Llama`` builds for the same parameters (repetition penalties,
top-k, typical-p, top-p, min-p, temperature, then a seeded draw; greedy at temperature 0), applied to
the same logits, so a completion without a grammar is the text ``create_chat_completion`` gives for
that seed.

A grammar is applied the way llama.cpp's own server applies it: the chain draws from the unconstrained
distribution, the grammar checks that one token, and only a rejected draw pays for masking the whole
vocabulary and drawing again. Checking one token instead of 49,152 matters once a batch samples many
sequences per step. When nothing truncates the distribution, the result is exactly the constrained
distribution (an accepted first draw has probability p(t), a second draw adds (1 - Z) p(t) / Z, where Z
is the allowed mass: together p(t) / Z); a greedy pick is the allowed argmax either way; and with
``min_p`` it is exact whenever the most likely token is allowed, which the sampler checks first. With
top-k, top-p or typical-p truncation the grammar is applied before the chain, as ``Llama`` does.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from bestofn_core.errors import LMRequestError
from bestofn_llamacpp._native import PENALTY_LAST_N

if TYPE_CHECKING:
    from bestofn_llamacpp._native import NativeModel
    from bestofn_llamacpp._settings import SamplingSettings

__all__ = ["SequenceSampler"]


class SequenceSampler:
    """The samplers of one sequence; ``sample`` picks its next token from a row of logits."""

    def __init__(self, native: NativeModel, settings: SamplingSettings) -> None:
        import llama_cpp

        self._api = llama_cpp
        self.settings = settings
        self._penalties = self._chain(
            llama_cpp.llama_sampler_init_penalties(
                native.n_vocab,
                PENALTY_LAST_N,
                settings.repeat_penalty,
                settings.frequency_penalty,
                settings.presence_penalty,
            )
        )
        if settings.temperature == 0:
            draw = [llama_cpp.llama_sampler_init_greedy()]
        else:
            draw = [
                llama_cpp.llama_sampler_init_top_k(settings.top_k),
                llama_cpp.llama_sampler_init_typical(settings.typical_p, 1),
                llama_cpp.llama_sampler_init_top_p(settings.top_p, 1),
                llama_cpp.llama_sampler_init_min_p(settings.min_p, 1),
                llama_cpp.llama_sampler_init_temp(settings.temperature),
                llama_cpp.llama_sampler_init_dist(settings.seed),
            ]
        self._draw = self._chain(*draw)
        self._grammar: Any = None
        if settings.grammar is not None:
            self._grammar = llama_cpp.llama_sampler_init_grammar(
                native.vocab, settings.grammar.encode(), b"root"
            )
            if not self._grammar:
                self.close()
                raise LMRequestError(f"{native.name}: llama.cpp rejected the response_format's grammar")
        self._native = native
        self._candidates = np.zeros(
            native.n_vocab, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        )
        self._ids = np.arange(native.n_vocab, dtype=np.int32)
        self._data = self._candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
        self._array: Any = llama_cpp.llama_token_data_array(
            data=self._data,
            size=native.n_vocab,
            selected=-1,
            sorted=False,
        )
        self._one = np.zeros(1, dtype=self._candidates.dtype)
        self._one_array: Any = llama_cpp.llama_token_data_array(
            data=self._one.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=1,
            selected=-1,
            sorted=False,
        )

    def _chain(self, *samplers: Any) -> Any:
        chain = self._api.llama_sampler_chain_init(self._api.llama_sampler_chain_default_params())
        for sampler in samplers:
            self._api.llama_sampler_chain_add(chain, sampler)
        return chain

    def sample(self, batch_index: int) -> int:
        """The next token, from the logits of item ``batch_index`` of the model's last decode."""
        logits = np.ctypeslib.as_array(self._native.logits(batch_index), shape=(self._native.n_vocab,))
        self._fill(logits)
        self._apply(self._penalties)
        if self._grammar is None:
            token = self._draw_token()
        elif self._may_draw_first():
            penalised = self._candidates["logit"].copy()
            token = self._draw_token()
            if not self._allows(token):
                self._fill(penalised)
                self._apply(self._grammar)
                token = self._draw_token()
        else:
            self._apply(self._grammar)
            token = self._draw_token()
        for sampler in (self._penalties, self._draw, self._grammar):
            if sampler is not None:
                self._api.llama_sampler_accept(sampler, token)
        return token

    def _fill(self, logits: Any) -> None:
        candidates = self._candidates
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        # a sampler may shrink or sort the array in place: every draw starts from the full vocabulary
        self._array.data = self._data
        self._array.size = len(candidates)
        self._array.selected = -1
        self._array.sorted = False

    def _apply(self, sampler: Any) -> None:
        self._api.llama_sampler_apply(sampler, ctypes.byref(self._array))

    def _draw_token(self) -> int:
        self._apply(self._draw)
        return int(self._candidates["id"][self._array.selected])

    def _may_draw_first(self) -> bool:
        settings = self.settings
        if settings.truncates_before_grammar:
            return False
        if settings.temperature > 0 and settings.min_p > 0:
            # min-p keeps tokens relative to the most likely one: exact only when that one is allowed
            return self._allows(int(self._candidates["id"][np.argmax(self._candidates["logit"])]))
        return True

    def _allows(self, token: int) -> bool:
        one = self._one
        one["id"] = token
        one["logit"] = 1.0
        one["p"] = 0.0
        self._one_array.size = 1
        self._one_array.selected = -1
        self._one_array.sorted = False
        self._api.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return bool(np.isfinite(one["logit"][0]))

    def close(self) -> None:
        """Free the llama.cpp samplers."""
        for name in ("_penalties", "_draw", "_grammar"):
            sampler = getattr(self, name, None)
            if sampler:
                self._api.llama_sampler_free(sampler)
            setattr(self, name, None)

"""What one choice is sampled with: the checked request params turned into llama.cpp's terms.

Kept apart from the sampler itself, so that importing the plugin imports neither numpy nor llama_cpp.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bestofn_core.errors import ConfigurationError

__all__ = ["SamplingSettings", "grammar_for"]


@dataclass(frozen=True)
class SamplingSettings:
    """How one choice is sampled: the chain's parameters, its seed, its limits and its grammar."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float
    typical_p: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    seed: int
    max_tokens: int
    stop: tuple[str, ...] = ()
    #: GBNF text (root rule ``root``), or ``None`` for free text
    grammar: str | None = None

    @classmethod
    def from_call(cls, call: Mapping[str, Any]) -> SamplingSettings:
        """The settings of one planned choice (the backend's checked params plus its ``seed``).

        A param the sampler does not know is a programming error, named: a sampling default added to
        the backend without a sampler to honour it must not be silently ignored.
        """
        unknown = sorted(set(call) - _KNOWN)
        if unknown:
            raise TypeError(f"the llama.cpp sampler has no setting for {', '.join(unknown)}")
        response_format = call.get("response_format")
        return cls(
            temperature=float(call["temperature"]),
            top_k=int(call["top_k"]),
            top_p=float(call["top_p"]),
            min_p=float(call["min_p"]),
            typical_p=float(call["typical_p"]),
            repeat_penalty=float(call["repeat_penalty"]),
            presence_penalty=float(call["presence_penalty"]),
            frequency_penalty=float(call["frequency_penalty"]),
            seed=int(call["seed"]),
            max_tokens=int(call["max_tokens"]),
            stop=tuple(call.get("stop") or ()),
            grammar=None if response_format is None else grammar_for(response_format),
        )

    @property
    def truncates_before_grammar(self) -> bool:
        """Whether a truncation other than min-p means the grammar must mask first (see ``_sampler``)."""
        return self.temperature > 0 and (self.top_k > 0 or self.top_p < 1 or self.typical_p < 1)


_KNOWN = {*SamplingSettings.__dataclass_fields__, "response_format"} - {"grammar"}


def grammar_for(response_format: Mapping[str, Any]) -> str:
    """The GBNF grammar of a checked ``response_format`` (``{"type": "json_object"[, "schema"]}``).

    A schema that llama.cpp's converter cannot turn into a grammar is an error naming the problem, not a
    silent fallback to any JSON object.
    """
    from llama_cpp import llama_grammar

    schema = response_format.get("schema")
    if schema is None:
        return str(llama_grammar.JSON_GBNF)
    try:
        return str(llama_grammar.json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:
        raise ConfigurationError(
            f"response_format: llama.cpp cannot turn this JSON schema into a grammar ({type(exc).__name__}: "
            f'{exc}). Simplify the schema, or ask for any JSON object with {{"type": "json_object"}}.'
        ) from exc

"""JSONAdapter: the same prompt as ChatAdapter, but the LM answers with one JSON object.

It is ChatAdapter's fallback, and a good first choice for models tuned for JSON mode. Which
``response_format`` it asks for follows DSPy's JSONAdapter, from what the LM says it supports
(``lm.supported_params``, ``lm.supports_response_schema``; for the litellm backend, what litellm reports
for the model):

- a model whose parameters do not include ``response_format``: none at all (the prompt still asks for
  JSON, and the answer is read the same way);
- a model without schema support, or outputs with an open-ended ``dict[...]``: ``{"type": "json_object"}``;
- otherwise the outputs' strict JSON schema (``structured_output.structured_response_format``), so the
  model cannot answer anything but an object with those fields. A provider error about it propagates; an
  answer that cannot be parsed is asked for once more in JSON mode, with a warning.

A ``response_format`` the caller set is sent as it is.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from bestofn_core._runner import run_in_thread
from bestofn_core.adapters.chat_adapter import (
    STRUCTURE_INTRO,
    ChatAdapter,
    marker_blocks,
    output_placeholder,
    parse_fields,
    python_type_hint,
)
from bestofn_core.adapters.structured_output import (
    JSON_MODE,
    has_open_ended_mapping,
    structured_response_format,
)
from bestofn_core.adapters.values import coerce_value, to_jsonable
from bestofn_core.errors import AdapterParseError

if TYPE_CHECKING:
    from bestofn_core.signatures.signature import Signature

logger = logging.getLogger(__name__)

_FENCED = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
# DSPy's words, also for a JSON value that is not an object (a list, a string): nothing could be read
_NOT_AN_OBJECT = "LM response cannot be serialized to a JSON object."
# Bound the scan for an object in long prose: each failed start costs a partial decode.
_MAX_DECODE_ATTEMPTS = 1000


class JSONAdapter(ChatAdapter):
    """Asks for the outputs as one JSON object and reads them back from it (no further fallback)."""

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        """``callbacks``: ``BaseCallback`` instances notified of this adapter's events."""
        super().__init__(callbacks, use_json_adapter_fallback=False)

    async def acall(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[Signature],
        demos: list[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Like ``Adapter.acall``, with the ``response_format`` the module docstring describes."""
        call = super().acall
        if "response_format" in lm_kwargs:
            return await call(lm, lm_kwargs, signature, demos, inputs)
        accepts, schema = await _response_format_support(lm)
        if not accepts:
            return await call(lm, lm_kwargs, signature, demos, inputs)
        json_mode = {**lm_kwargs, "response_format": JSON_MODE}
        if not schema or has_open_ended_mapping(signature):
            return await call(lm, json_mode, signature, demos, inputs)
        try:
            response_format = structured_response_format(signature)
        except ValueError as exc:
            logger.warning("Failed to use structured output format, falling back to JSON mode: %s", exc)
            return await call(lm, json_mode, signature, demos, inputs)
        try:
            return await call(lm, {**lm_kwargs, "response_format": response_format}, signature, demos, inputs)
        except AdapterParseError as exc:
            # provider errors propagate (above); only an answer we cannot read is asked for again
            logger.warning(
                "Failed to use structured output format, falling back to JSON mode: the answer for `%s` "
                "could not be parsed (missing or invalid: %s); asking once more.",
                signature.signature,
                ", ".join(exc.missing_fields) or "-",
            )
            return await call(lm, json_mode, signature, demos, inputs)

    def format_field_structure(self, signature: type[Signature]) -> str:
        """Inputs as marker blocks; outputs as a JSON object whose values are placeholders with type notes."""
        outputs = {name: output_placeholder(name, info) for name, info in signature.output_fields.items()}
        parts = [
            STRUCTURE_INTRO,
            "Inputs will have the following structure:",
            marker_blocks((name, f"{{{name}}}") for name in signature.input_fields),
            "Outputs will be a JSON object with the following fields.",
            json.dumps(outputs, indent=2, ensure_ascii=False),
        ]
        return "\n\n".join(parts).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """``Respond with a JSON object in the following order of fields: `a`, then `b`.`` (keep it exact)."""
        names = ", then ".join(
            f"`{name}`{python_type_hint(info)}" for name, info in signature.output_fields.items()
        )
        return f"Respond with a JSON object in the following order of fields: {names}."

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        """A demo's outputs as a JSON object; an absent output shows ``missing_field_message``."""
        values = {name: outputs.get(name, missing_field_message) for name in signature.output_fields}
        return json.dumps(to_jsonable(values), indent=2, ensure_ascii=False)

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """Read the output fields from the JSON object in ``completion``.

        Code fences and prose around the object are tolerated, and so are Python-style dicts; keys that are
        not output fields are ignored. Raises ``AdapterParseError`` when there is no object, when the JSON
        is not an object (e.g. a list), or when output fields are missing or invalid.
        """
        whole = _decode_whole(completion)
        if whole is not None and not isinstance(whole, dict):
            raise AdapterParseError(
                "JSONAdapter",
                signature,
                lm_response=completion,
                message=_NOT_AN_OBJECT,
                missing_fields=list(signature.output_fields),
            )
        found = whole if isinstance(whole, dict) else find_json_object(completion, signature.output_fields)
        if found is None:
            raise AdapterParseError(
                "JSONAdapter",
                signature,
                lm_response=completion,
                message=_NOT_AN_OBJECT,
                missing_fields=list(signature.output_fields),
            )
        return parse_fields(self, signature, completion, found, coerce_value)


def _decode_whole(text: str) -> Any:
    """The JSON value ``text`` is as a whole (inside a code fence or not), or ``None`` when it is not JSON."""
    stripped = text.strip()
    fenced = _FENCED.match(stripped)
    try:
        return json.loads(fenced.group(1) if fenced else stripped)
    except (ValueError, RecursionError):
        return None


def find_json_object(text: str, wanted: Collection[str] = ()) -> dict[str, Any] | None:
    """The first JSON object in ``text`` that has one of the ``wanted`` keys, else the first JSON object,
    else a Python-style dict spanning the outermost braces; ``None`` if there is none."""
    decoder = json.JSONDecoder()
    first: dict[str, Any] | None = None
    start = text.find("{")
    attempts = 0
    while start != -1 and attempts < _MAX_DECODE_ATTEMPTS:
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            if any(key in value for key in wanted):
                return value
            first = value if first is None else first
        start = text.find("{", end)
    if first is not None:
        return first
    return _python_dict(text)


def _python_dict(text: str) -> dict[str, Any] | None:
    # Some models answer with a Python repr: {'answer': 'Paris'}; literal_eval reads it without running it.
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        return None
    try:
        value = ast.literal_eval(text[start : end + 1])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# (LM class, model) pairs already probed once. The first probe may import the provider library
# (litellm takes seconds), so it runs off the loop; later ones are cheap lookups and run inline, since
# a worker thread per call could wait behind blocked sync user code in the bounded pool.
_probed: set[tuple[type, str]] = set()


async def _response_format_support(lm: Any) -> tuple[bool, bool]:
    """(accepts a ``response_format``, honours a JSON schema) for ``lm``, as it declares them.

    An LM that declares no ``supported_params`` accepts none (DSPy's ``BaseLM`` default), unless it
    says it honours a schema, which implies it.
    """
    key = (type(lm), str(getattr(lm, "model", "")))
    if key in _probed:
        return _declared_support(lm)
    support = await run_in_thread(_declared_support, lm)
    _probed.add(key)
    return support


def _declared_support(lm: Any) -> tuple[bool, bool]:
    schema = bool(getattr(lm, "supports_response_schema", False))
    return schema or "response_format" in (getattr(lm, "supported_params", None) or ()), schema

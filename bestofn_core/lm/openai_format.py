"""Reading an OpenAI-style completion response (what a DSPy-style ``BaseLM.forward`` returns).

DSPy's extension point for custom LMs is ``forward(prompt=None, messages=None, **kwargs)`` returning the
provider's response in OpenAI's chat-completion format (``choices[i].message.content``) or text-completion
format (``choices[i].text``): the ``openai`` SDK's objects, litellm's ``ModelResponse``, or the same shape
as plain dicts. ``response_from_openai`` turns any of them into the kernel's ``LMResponse``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bestofn_core.errors import LMError
from bestofn_core.protocols import LMResponse

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def response_from_openai(response: Any, source: str) -> LMResponse:
    """The ``LMResponse`` of an OpenAI-style chat or text completion ``response`` (object or dict).

    ``source`` names what returned it (``"MyLM.forward()"``) in the ``LMError`` raised for anything else.
    """
    choices = _get(response, "choices")
    if isinstance(choices, str | bytes) or not isinstance(choices, Sequence):
        raise LMError(
            f"{source} returned a {type(response).__name__}, not an OpenAI-style completion: return the "
            "provider's response (an object or dict with choices[i].message.content, or choices[i].text "
            "for text completions), as DSPy's BaseLM.forward does."
        )
    outputs: list[str] = []
    finish_reasons: list[str | None] = []
    for index, choice in enumerate(choices):
        message = _get(choice, "message")
        content = _get(message, "content") if message is not None else _get(choice, "text")
        if message is None and content is None:
            raise LMError(
                f"{source} returned a response whose choices[{index}] has neither message nor text."
            )
        outputs.append(content_text(content))
        reason = _get(choice, "finish_reason")
        finish_reasons.append(reason if isinstance(reason, str) else None)
    usage = _get(response, "usage")
    model = _get(response, "model")
    return LMResponse(
        outputs=outputs,
        usage={key: count for key in _USAGE_KEYS if isinstance(count := _get(usage, key), int)},
        model=model if isinstance(model, str) else None,
        finish_reasons=finish_reasons,
    )


def _get(value: Any, key: str) -> Any:
    # the SDKs' objects expose attributes (litellm's also items); plain responses are dicts
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, a list of content parts (their texts), or None."""
    if content is None:
        return ""  # a choice with only tool calls or a refusal has no text
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # content parts
        return "".join(text for part in content if isinstance(text := _get(part, "text"), str))
    return str(content)

"""The adapter contract: signature + demos + inputs -> chat messages; LM text -> output fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bestofn_core._runner import run_sync
from bestofn_core.errors import AdapterParseError
from bestofn_core.primitives.callbacks import with_callbacks

if TYPE_CHECKING:
    from bestofn_core.signatures.signature import Signature


class Adapter:
    """Turns (signature, demos, inputs) into chat messages and the LM's text back into output fields.

    Subclasses implement ``format`` and ``parse``; ``acall`` glues them to an LM. A subclass's own
    ``format``/``parse`` are wrapped automatically so that callbacks hear ``adapter_format`` and
    ``adapter_parse`` events, as they do in DSPy, without each subclass having to remember the decorator.
    """

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        """``callbacks``: ``BaseCallback`` instances notified of this adapter's events (besides settings')."""
        self.callbacks: list[Any] = list(callbacks or [])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Only methods the subclass defines itself: inherited ones are wrapped already, and wrapping
        # twice would report every event twice.
        if "format" in cls.__dict__:
            setattr(cls, "format", with_callbacks("adapter_format")(cls.__dict__["format"]))  # noqa: B010
        if "parse" in cls.__dict__:
            setattr(cls, "parse", with_callbacks("adapter_parse")(cls.__dict__["parse"]))  # noqa: B010

    @with_callbacks("adapter_format")
    def format(
        self, signature: type[Signature], demos: list[Mapping[str, Any]], inputs: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The chat messages (``[{"role": ..., "content": ...}, ...]``) asking the LM for the outputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement format()")

    @with_callbacks("adapter_parse")
    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """The output fields found in ``completion``; raises ``AdapterParseError`` when some are missing."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse()")

    async def acall(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[Signature],
        demos: list[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Format, call ``lm.acall(messages=..., **lm_kwargs)`` once, and parse every returned choice.

        Returns one dict of output fields per choice (several when ``lm_kwargs`` asks for ``n > 1``).
        LM errors propagate unchanged; a choice that cannot be parsed raises ``AdapterParseError`` (the
        first such choice's). With several choices every one is parsed first, and the error carries them
        all as ``choices``, so a caller that can use some (batched BestOfN) loses none.
        """
        messages = self.format(signature, demos, inputs)
        outputs = await lm.acall(messages=messages, **lm_kwargs)
        results: list[dict[str, Any] | AdapterParseError] = []
        for output in outputs:
            try:
                results.append(self.parse(signature, output))
            except AdapterParseError as exc:
                results.append(exc)
        errors = [result for result in results if isinstance(result, AdapterParseError)]
        if errors:
            if len(results) > 1:
                errors[0].choices = results
            raise errors[0]
        return [result for result in results if not isinstance(result, AdapterParseError)]

    def __call__(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[Signature],
        demos: list[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """The synchronous form of ``acall``."""
        return run_sync(self.acall(lm, lm_kwargs, signature, demos, inputs))

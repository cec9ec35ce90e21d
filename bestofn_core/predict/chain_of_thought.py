"""ChainOfThought: Predict with a ``reasoning`` output field before the others."""

from __future__ import annotations

from typing import Any

from bestofn_core.predict.predict import Predict
from bestofn_core.primitives.module import Module
from bestofn_core.primitives.prediction import Prediction
from bestofn_core.signatures import OutputField, Signature, ensure_signature


class ChainOfThought(Module):
    """Ask the LM to reason step by step before answering: ``ChainOfThought("question -> answer")``.

    The prediction has a ``reasoning`` field besides the signature's outputs. ``**config`` is passed to
    the inner ``Predict`` (available as ``self.predict``).
    """

    def __init__(
        self,
        signature: str | type[Signature],
        rationale_field: Any = None,
        rationale_field_type: type = str,
        callbacks: list[Any] | None = None,
        **config: Any,
    ) -> None:
        super().__init__(callbacks=callbacks)
        base = ensure_signature(signature)
        field = rationale_field or OutputField(
            prefix="Reasoning: Let's think step by step in order to", desc="${reasoning}"
        )
        self.predict = Predict(base.prepend("reasoning", field, type_=rationale_field_type), **config)

    def forward(self, **kwargs: Any) -> Prediction:
        """Run the inner predictor synchronously."""
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        """Run the inner predictor asynchronously."""
        return await self.predict.acall(**kwargs)

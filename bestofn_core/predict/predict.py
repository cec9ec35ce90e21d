"""Predict: one LM call that maps a signature's inputs to its outputs through an adapter."""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bestofn_core._runner import run_sync
from bestofn_core._validation import check_finite, validate_arguments
from bestofn_core.adapters.choice import adapter_for
from bestofn_core.errors import ConfigurationError, SignatureError
from bestofn_core.lm.credentials import without_secrets
from bestofn_core.lm.lm import lm_from_state
from bestofn_core.predict.input_types import warn_on_type_mismatches
from bestofn_core.primitives.example import Example
from bestofn_core.primitives.module import Module, Parameter
from bestofn_core.primitives.prediction import Prediction
from bestofn_core.primitives.trace import extend_trace
from bestofn_core.settings import check_lm, settings
from bestofn_core.signatures import Signature, ensure_signature

# keyword arguments of a call that configure it rather than fill input fields
_CALL_OPTIONS = ("signature", "demos", "config", "lm")


class PredictConfig(BaseModel):
    """The checked common LM parameters of ``Predict(signature, **config)`` (pydantic names the bad field).

    Other parameters pass through to the LM unchecked, but for numbers, which must be finite: providers
    accept parameters of their own.
    """

    model_config = ConfigDict(strict=True, extra="allow")

    #: Sampling temperature of this predictor's calls.
    temperature: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: Most tokens per completion.
    max_tokens: int | None = Field(default=None, gt=0)
    #: Completions per call.
    n: int | None = Field(default=None, ge=1)
    #: Nucleus sampling mass.
    top_p: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    #: The rollout id of this predictor's calls (keys the cache, never sent).
    rollout_id: int | None = None


class Predict(Module, Parameter):
    """Calls the LM once for a signature: ``Predict("question -> answer")(question="...")``.

    Args:
        signature: a signature string or class.
        callbacks: callbacks for this predictor's calls.
        **config: LM parameters for every call (``n``, ``temperature``, ...); a call's ``config=`` wins.

    Attributes:
        demos: few-shot examples (``Example`` or dicts) shown to the LM before the inputs.
        lm: this predictor's LM (``None``: use ``settings.lm``).
    """

    def __init__(self, signature: str | type[Signature], callbacks: list[Any] | None = None, **config: Any):
        super().__init__(callbacks=callbacks)
        self.stage = uuid.uuid4().hex[:8]
        self.signature: type[Signature] = ensure_signature(signature)
        validate_arguments(PredictConfig, f"{type(self).__name__}(...)", **config)
        check_finite(f"{type(self).__name__}(...)", config)
        self.config: dict[str, Any] = config
        self.reset()

    def reset(self) -> None:
        """Forget demos and the LM set on this predictor."""
        self.lm: Any = None
        self.traces: list[Any] = []
        self.train: list[Any] = []
        self.demos: list[Any] = []

    # ------------------------------------------------------------------ calling

    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        _refuse_positional(self, args)
        result: Prediction = super().__call__(**kwargs)
        return result

    async def acall(self, *args: Any, **kwargs: Any) -> Prediction:
        """Run asynchronously (native: the LM call awaits the backend)."""
        _refuse_positional(self, args)
        result: Prediction = await super().acall(**kwargs)
        return result

    def forward(self, **kwargs: Any) -> Prediction:
        """Run synchronously on the library's event loop."""
        return run_sync(self.aforward(**kwargs))

    async def aforward(self, **kwargs: Any) -> Prediction:
        """Format the inputs, call the LM, parse each completion, and record the trace."""
        lm, config, signature, demos, inputs = self._prepare(kwargs)
        adapter = adapter_for(lm, settings.adapter)
        completions = await adapter.acall(lm, config, signature, demos, inputs)
        prediction = Prediction.from_completions(completions, signature=signature)
        extend_trace([(self, dict(inputs), prediction)])
        return prediction

    def _prepare(
        self, kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any], type[Signature], list[Any], dict[str, Any]]:
        signature = ensure_signature(kwargs.pop("signature", None) or self.signature)
        demos = list(kwargs.pop("demos", None) or self.demos)
        config = {**self.config, **(kwargs.pop("config", None) or {})}
        lm = kwargs.pop("lm", None) or self.lm or settings.lm
        if lm is None:
            raise ConfigurationError(
                "No LM is configured. Call bestofn_core.configure(lm=bestofn_core.LM('openai/gpt-4o-mini')), "
                "set predictor.lm, or pass lm=... to the call."
            )
        check_lm(lm, f"The LM of {type(self).__name__}({self.signature.signature!r})")
        if _is_predicted_output(kwargs.get("prediction")):
            # OpenAI's predicted outputs go to the LM call, as DSPy sends them, not into the prompt
            config["prediction"] = kwargs.pop("prediction")
        inputs = _check_inputs(signature, kwargs)
        warn_on_type_mismatches(signature, inputs)
        return lm, config, signature, demos, inputs

    # ------------------------------------------------------------------ config

    def update_config(self, **kwargs: Any) -> None:
        """Merge ``kwargs`` into the LM parameters of every call (checked like the constructor's)."""
        config = {**self.config, **kwargs}
        validate_arguments(PredictConfig, f"{type(self).__name__}.update_config(...)", **config)
        self.config = config

    def get_config(self) -> dict[str, Any]:
        """The LM parameters of every call (``Predict(signature, **config)`` plus ``update_config``)."""
        return self.config

    # ------------------------------------------------------------------ state

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """Demos, signature text and LM settings (never secrets)."""
        demos = []
        for demo in self.demos:
            data = demo.toDict() if isinstance(demo, Example) else dict(demo)
            if json_mode:
                data = {k: _jsonable(v) for k, v in data.items()}
            demos.append(data)
        return {
            "traces": [],
            "train": [],
            "demos": demos,
            "signature": self.signature.dump_state(),
            "lm": self.lm.dump_state() if self.lm is not None and hasattr(self.lm, "dump_state") else None,
        }

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> Predict:
        """Restore what ``dump_state`` wrote.

        A saved LM's settings are applied to this predictor's current LM when it has one (keeping its
        credentials); otherwise a new ``LM`` is built from them. A saved ``api_base`` (or another setting
        that chooses where requests go) is ignored with a warning unless
        ``settings.allow_api_base_from_file`` is true, so a file cannot redirect requests to another host
        (see ``bestofn_core.lm.lm.lm_from_state``). A custom ``BaseLM`` class named in the state is
        refused unless ``allow_unsafe_lm_state`` (trusted state: see ``Module.load``).
        """
        if not isinstance(state, Mapping):
            raise ConfigurationError(f"Predictor state must be a dict, got {type(state).__name__}.")
        self.demos = [Example(**demo) for demo in state.get("demos", [])]
        if state.get("signature"):
            self.signature = self.signature.load_state(state["signature"])
        saved_lm = state.get("lm")
        if saved_lm:
            self.lm = lm_from_state(saved_lm, self.lm, trusted=allow_unsafe_lm_state)
        return self

    def __getstate__(self) -> dict[str, Any]:
        # like BaseLM's: a pickled program (save_program, worker processes) never carries a key passed
        # as Predict(..., api_key=...); the receiving side supplies it through the environment
        state = dict(self.__dict__)
        state["config"] = without_secrets(self.config)
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.signature!r})"


def _refuse_positional(predictor: Predict, args: tuple[Any, ...]) -> None:
    if args:
        names = ", ".join(f"{name}=..." for name in predictor.signature.input_fields) or "no inputs"
        raise SignatureError(
            f"{type(predictor).__name__} takes keyword arguments only (got {len(args)} positional). "
            f"Call it as predictor({names})."
        )


def _check_inputs(signature: type[Signature], given: dict[str, Any]) -> dict[str, Any]:
    expected = signature.input_fields
    unknown = [name for name in given if name not in expected]
    if unknown:
        hint = ", ".join(expected) or "(none)"
        raise SignatureError(
            f"Unknown input field(s) {', '.join(unknown)} for signature `{signature.signature}`; "
            f"its input fields are: {hint}."
        )
    inputs = dict(given)
    for name, info in expected.items():
        # an omitted input with a default takes it, as in DSPy (and it shows in the prompt and the trace)
        if name not in inputs and not info.is_required():
            inputs[name] = info.get_default(call_default_factory=True)
    missing = [name for name, info in expected.items() if name not in inputs and not _accepts_none(info)]
    if missing:
        raise SignatureError(
            f"Missing input field(s) {', '.join(missing)} for signature `{signature.signature}`."
        )
    return inputs


def _is_predicted_output(value: Any) -> bool:
    # the shape of OpenAI's predicted outputs: {"type": "content", "content": ...}
    return isinstance(value, Mapping) and value.get("type") == "content" and "content" in value


def _accepts_none(info: Any) -> bool:
    annotation = getattr(info, "annotation", None)
    if annotation is Any or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Example):
        return value.toDict()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value

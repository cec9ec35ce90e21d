"""LM: a BaseLM whose requests go to the backend plugin that claims its model string."""

from __future__ import annotations

from typing import Any

from bestofn_core.lm.base import BaseLM
from bestofn_core.protocols import LMBackend, LMRequest, LMResponse


class LM(BaseLM):
    """A language model, e.g. ``LM("openai/gpt-4o-mini", api_base=..., api_key=...)``.

    The backend is chosen through the plugin registry: the backend registering the longest prefix of
    ``model`` wins, with the built-in litellm backend (which claims every model string) as the fallback.
    Pass ``backend="plugin:name"`` to choose one explicitly.
    See ``BaseLM`` for the other arguments.
    """

    def __init__(self, model: str, *, backend: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.backend_ref = backend
        self._backend: LMBackend | None = None
        # resolve now so an unclaimed model string fails at construction, not at the first call
        self._resolve_backend()

    def _resolve_backend(self) -> LMBackend:
        if self._backend is None:
            from bestofn_core.plugins import get_registry

            registration = get_registry().lm_backend_for(self.model, backend=self.backend_ref)
            self._backend = registration.obj
        return self._backend

    @property
    def backend(self) -> LMBackend:
        """The backend object requests are sent to."""
        return self._resolve_backend()

    @property
    def supports_n(self) -> bool:
        """Whether the backend can return ``n`` choices in one request."""
        return bool(getattr(self.backend, "supports_n", False))

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` through the backend."""
        return await self.backend.acomplete(request)

    def copy(self, **kwargs: Any) -> LM:
        """See ``BaseLM.copy``; changing ``model`` or ``backend`` picks the backend again."""
        backend = kwargs.pop("backend", self.backend_ref)
        new = super().copy(**kwargs)
        assert isinstance(new, LM)
        if new.model != self.model or backend != self.backend_ref:
            new.backend_ref = backend
            new._backend = None
            new._resolve_backend()
        return new

    def dump_state(self) -> dict[str, Any]:
        """Settings without secrets (see ``BaseLM.dump_state``), plus the backend reference."""
        state = super().dump_state()
        if self.backend_ref is not None:
            state["backend"] = self.backend_ref
        return state

    def __getstate__(self) -> dict[str, Any]:
        # backends hold clients and locks: pickle the reference, resolve again after loading
        state = super().__getstate__()
        state["_backend"] = None
        return state

"""The plugin module named by the ``bestofn`` entry point ``llamacpp``: registers the backend.

It stays cheap to import (llama_cpp is imported when the first model loads), because every ``LM(...)``
builds the plugin registry and so imports every installed plugin.
"""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterLMBackend, hookimpl
from bestofn_llamacpp.backend import PREFIXES, LlamaCppBackend

#: The one backend instance the plugin registers (module-level, so a registry rebuild keeps it).
backend = LlamaCppBackend()


@hookimpl
def register_lm_backends(register: RegisterLMBackend) -> None:
    """Offer ``"llamacpp:llamacpp"`` for model strings starting with ``"local/"`` or ``"llamacpp/"``."""
    register(backend, name="llamacpp", prefixes=PREFIXES)

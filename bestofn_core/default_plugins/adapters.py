"""Built-in adapters, registered through the same hook as external plugins."""

from __future__ import annotations

from bestofn_core.adapters import ChatAdapter, CompactAdapter, JSONAdapter
from bestofn_core.hookspecs import RegisterAdapter, hookimpl


@hookimpl
def register_adapters(register: RegisterAdapter) -> None:
    """Register ``chat`` and ``json`` (DSPy's prompt layout) and ``compact`` (for small local models)."""
    register(ChatAdapter(), name="chat")
    register(JSONAdapter(), name="json")
    register(CompactAdapter(), name="compact")

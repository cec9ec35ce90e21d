"""Which adapter a call uses: the configured one, else the one the LM's backend prefers, else ``chat``.

An explicitly configured adapter always wins (``configure(adapter=...)`` or ``context(adapter=...)``, an
object or a ``"plugin:name"`` reference). With none, the LM's ``preferred_adapter`` decides: a backend
serving small local models names a prompt format they follow (the llama.cpp backend names ``compact``).
Otherwise it is ``chat``, DSPy's layout. References are looked up among the registered adapters (see the
``register_adapters`` hook), so a plugin's adapter is chosen the same way as a built-in one.
"""

from __future__ import annotations

from typing import Any

from bestofn_core.protocols import AdapterProtocol

__all__ = ["DEFAULT_ADAPTER", "adapter_for", "adapter_reference"]

#: The adapter used when nothing is configured and the LM prefers none: DSPy's ``[[ ## field ## ]]`` layout.
DEFAULT_ADAPTER = "chat"


def adapter_reference(lm: Any, configured: Any = None) -> str | None:
    """The reference of the adapter a call would use, or ``None`` when ``configured`` is an object."""
    if configured is not None:
        return configured if isinstance(configured, str) else None
    preferred = getattr(lm, "preferred_adapter", None)
    return preferred if isinstance(preferred, str) and preferred else DEFAULT_ADAPTER


def adapter_for(lm: Any, configured: Any = None) -> AdapterProtocol:
    """The adapter a call to ``lm`` uses, given the configured adapter (``settings.adapter``).

    Raises ``UnknownNameError`` (listing the registered adapters) for a reference nobody registered.
    """
    reference = adapter_reference(lm, configured)
    if reference is None:
        adapter: AdapterProtocol = configured
        return adapter
    from bestofn_core.plugins import get_registry

    found: AdapterProtocol = get_registry().get("adapter", reference)
    return found

"""Adapters: turn a signature, demos and inputs into chat messages, and the LM's text back into fields."""

from bestofn_core.adapters.base import Adapter
from bestofn_core.adapters.chat_adapter import ChatAdapter
from bestofn_core.adapters.compact_adapter import CompactAdapter
from bestofn_core.adapters.json_adapter import JSONAdapter

__all__ = ["Adapter", "ChatAdapter", "CompactAdapter", "JSONAdapter"]

"""bestofn-msgpack: save and load bestofn-core program state as MessagePack (``.msgpack``, ``.mpk``).

Installed, it is found by suffix: ``program.save("program.msgpack")`` and ``program.load(...)`` need
nothing else. ``MsgpackSerializer`` is the serializer itself; ``bestofn_msgpack.plugin`` registers it.
"""

from __future__ import annotations

from bestofn_msgpack.serializer import MsgpackSerializer

__all__ = ["MsgpackSerializer"]

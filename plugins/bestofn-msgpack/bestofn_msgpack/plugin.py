"""The ``msgpack`` plugin (entry point ``bestofn: msgpack``): ``.msgpack`` and ``.mpk`` state files."""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterSerializer, hookimpl
from bestofn_msgpack.serializer import MsgpackSerializer

__all__ = ["register_serializers"]

_SERIALIZER = MsgpackSerializer()


@hookimpl
def register_serializers(register: RegisterSerializer) -> None:
    """Offer ``msgpack:msgpack`` for ``.msgpack`` and ``.mpk`` files."""
    register(_SERIALIZER, name="msgpack", suffixes=(".msgpack", ".mpk"))

"""Signatures: declare the typed inputs and outputs of an LM step (DSPy-compatible)."""

from bestofn_core.signatures.field import InputField, OutputField, infer_prefix
from bestofn_core.signatures.signature import Signature, SignatureMeta, ensure_signature, make_signature

__all__ = [
    "InputField",
    "OutputField",
    "Signature",
    "SignatureMeta",
    "ensure_signature",
    "infer_prefix",
    "make_signature",
]

"""Signatures: the typed inputs and outputs of one LM step, with the instructions that explain the task.

Two ways to write one, as in DSPy::

    class QA(Signature):
        \"\"\"Answer questions with short factoid answers.\"\"\"
        question: str = InputField()
        answer: str = OutputField(desc="often between 1 and 5 words")

    QA = Signature("question -> answer: str", "Answer questions with short factoid answers.")

A signature class is never changed after it is built: ``with_instructions``, ``append``, ``load_state`` and
friends return new classes, so a program's optimized copy can never leak into the original. Signature
strings are parsed, without eval, by ``bestofn_core.signatures._parse``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo

from bestofn_core.errors import SignatureError
from bestofn_core.signatures._parse import ALLOWED_TYPES as ALLOWED_TYPES  # re-exported: importable here
from bestofn_core.signatures._parse import FieldSpecs, parse_fields
from bestofn_core.signatures.field import (
    field_extra,
    field_kind,
    mark_untyped,
    replace_extra,
    with_defaults,
)

# Class-level views the metaclass provides. They are data descriptors on the metaclass, so on the class
# they hide any attribute of the same name: pydantic would read a field's default from them. Reserved.
_METACLASS_PROPERTIES = frozenset({"instructions", "input_fields", "output_fields", "fields", "signature"})


class SignatureMeta(ModelMetaclass):
    """Metaclass of ``Signature``: builds signature classes and gives them their class-level views.

    Calling ``Signature("question -> answer")`` builds a new signature class from a string, as in DSPy;
    calling any other signature class instantiates it as a pydantic model.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        """``Signature(spec, instructions=None, *, custom_types=None)`` builds a class; others instantiate."""
        if cls is Signature:
            return make_signature(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> SignatureMeta:
        """Build a signature class, checking that every field is an ``InputField`` or ``OutputField``."""
        if not any(isinstance(base, SignatureMeta) for base in bases):
            # ``Signature`` itself: no fields to check, and its docstring is not instructions.
            return typing.cast(SignatureMeta, super().__new__(mcs, name, bases, namespace, **kwargs))
        namespace = _prepare_namespace(name, namespace)
        cls = typing.cast(SignatureMeta, super().__new__(mcs, name, bases, namespace, **kwargs))
        _check_fields(cls)
        if cls.__doc__ is None:
            cls.__doc__ = _inherited_instructions(bases) or _default_instructions(cls)
        return cls

    @property
    def instructions(cls) -> str:
        """The task description shown to the LM: the class docstring, or a default naming the fields."""
        return inspect.cleandoc(cls.__doc__ or "")

    @property
    def input_fields(cls) -> dict[str, FieldInfo]:
        """Input fields, name -> pydantic ``FieldInfo``, in declaration order."""
        return _fields_of_kind(cls, "input")

    @property
    def output_fields(cls) -> dict[str, FieldInfo]:
        """Output fields, name -> pydantic ``FieldInfo``, in declaration order."""
        return _fields_of_kind(cls, "output")

    @property
    def fields(cls) -> dict[str, FieldInfo]:
        """All fields: the inputs, then the outputs, each in declaration order."""
        return {**cls.input_fields, **cls.output_fields}

    @property
    def signature(cls) -> str:
        """The short form, ``"question, context -> answer"``."""
        return f"{', '.join(cls.input_fields)} -> {', '.join(cls.output_fields)}"

    def __repr__(cls) -> str:
        """``QA(question -> answer, instructions='...', fields...)``: what the signature looks like."""
        lines = [
            f"{name}: {_type_name(info.annotation)} = {field_extra(info)}"
            for name, info in cls.fields.items()
        ]
        body = "\n    ".join([f"instructions={cls.instructions!r}", *lines])
        return f"{cls.__name__}({cls.signature}\n    {body}\n)"


class Signature(BaseModel, metaclass=SignatureMeta):
    """Base class of signatures: subclass it with ``InputField``/``OutputField`` attributes, or call
    ``Signature("question -> answer")``. The subclass's docstring is the instructions.

    Every method here is a class method returning a NEW signature class; none changes the class it is
    called on.
    """

    # Signatures are declarations more than data models: allow any annotation (images, clients, ...).
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        """A copy with different instructions."""
        return _rebuild(cls, _field_specs(cls), instructions)

    @classmethod
    def append_instructions(cls, instructions: str) -> type[Signature]:
        """A copy whose instructions are the current ones, a blank line, then ``instructions``."""
        return _rebuild(cls, _field_specs(cls), f"{cls.instructions}\n\n{instructions}")

    @classmethod
    def with_updated_fields(cls, name: str, type_: Any = None, **json_schema_extra: Any) -> type[Signature]:
        """A copy where field ``name`` has ``json_schema_extra`` merged in (``desc=...``, ``prefix=...``) and,
        when given, the type ``type_``."""
        specs = _field_specs(cls)
        if name not in specs:
            raise SignatureError(_unknown_field(cls, name, "update"))
        annotation, info = specs[name]
        new_info = replace_extra(info, {**field_extra(info), **json_schema_extra})
        specs[name] = (annotation if type_ is None else type_, new_info)
        return _rebuild(cls, specs, cls.instructions)

    @classmethod
    def prepend(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """A copy with ``field`` added first among the inputs (or outputs, for an ``OutputField``)."""
        return cls.insert(0, name, field, type_)

    @classmethod
    def append(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """A copy with ``field`` added last among the inputs (or outputs, for an ``OutputField``)."""
        return cls.insert(-1, name, field, type_)

    @classmethod
    def insert(cls, index: int, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """A copy with ``field`` at position ``index`` among the fields of its kind.

        ``index`` counts within the inputs for an ``InputField`` and within the outputs for an
        ``OutputField``; ``-1`` means last, ``-2`` before the last, and so on. The type is ``type_``, else
        the field's own annotation, else ``str``.
        """
        kind = field_kind(field) if isinstance(field, FieldInfo) else None
        if kind is None:
            raise SignatureError(
                f"Cannot insert field `{name}` into `{cls.__name__}`: it must be an InputField() or "
                "OutputField(), "
                f"got {field!r}."
            )
        if name in cls.fields:
            raise SignatureError(
                f"Cannot insert field `{name}` into `{cls.__name__}`: a field with that name exists."
            )
        group = list((cls.input_fields if kind == "input" else cls.output_fields).items())
        position = index + len(group) + 1 if index < 0 else index
        if not 0 <= position <= len(group):
            raise SignatureError(
                f"Cannot insert {kind} field `{name}` at index {index}: `{cls.__name__}` has {len(group)} "
                f"{kind} field(s), so the index must be between {-len(group) - 1} and {len(group)}."
            )
        group.insert(position, (name, field))
        others = cls.output_fields if kind == "input" else cls.input_fields
        ordered = [*group, *others.items()] if kind == "input" else [*others.items(), *group]
        specs = _field_specs(cls)
        annotation = (
            type_ if type_ is not None else (field.annotation if field.annotation is not None else str)
        )
        specs[name] = (annotation, field)
        return _rebuild(cls, {key: specs[key] for key, _ in ordered}, cls.instructions)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        """A copy without field ``name`` (``SignatureError`` if there is no such field)."""
        specs = _field_specs(cls)
        if name not in specs:
            raise SignatureError(_unknown_field(cls, name, "delete"))
        del specs[name]
        return _rebuild(cls, specs, cls.instructions)

    @classmethod
    def equals(cls, other: Any) -> bool:
        """Whether ``other`` has the same instructions and the same fields (names, order, types, metadata)."""
        if not isinstance(other, SignatureMeta) or cls.instructions != other.instructions:
            return False
        mine, theirs = cls.fields, other.fields
        return list(mine) == list(theirs) and all(
            mine[k].annotation == theirs[k].annotation and field_extra(mine[k]) == field_extra(theirs[k])
            for k in mine
        )

    @classmethod
    def dump_state(cls) -> dict[str, Any]:
        """The learnable state, in DSPy's format: ``{"instructions": ..., "fields": [...]}`` with one
        ``{"prefix": ..., "description": ...}`` per field, inputs then outputs."""
        return {
            "instructions": cls.instructions,
            "fields": [
                {"prefix": field_extra(info)["prefix"], "description": field_extra(info)["desc"]}
                for info in cls.fields.values()
            ],
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> type[Signature]:
        """A copy with the instructions and the fields' prefix/description from ``state`` (``dump_state``)."""
        saved = state.get("fields") if isinstance(state, Mapping) else None
        if not isinstance(saved, list) or not isinstance(state.get("instructions"), str):
            raise SignatureError(
                f"Cannot load signature state into `{cls.__name__}`: expected a dict with 'instructions' "
                f"(str) and 'fields' (list), as dump_state() writes; got {state!r}."
            )
        specs = _field_specs(cls)
        if len(saved) != len(specs):
            raise SignatureError(
                f"Cannot load signature state into `{cls.__name__}` ({cls.signature}): the state has "
                f"{len(saved)} field(s), the signature has {len(specs)}. "
                "Was it saved from a different signature?"
            )
        for (name, (annotation, info)), entry in zip(list(specs.items()), saved, strict=True):
            extra = {**field_extra(info), "prefix": entry["prefix"], "desc": entry["description"]}
            specs[name] = (annotation, replace_extra(info, extra))
        return _rebuild(cls, specs, state["instructions"])


# ----------------------------------------------------------------------------------------------------------
# Building classes


def make_signature(
    spec: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    *,
    custom_types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Build a signature class from ``"a, b: int -> c: list[str]"`` or a dict.

    Args:
        spec: a signature string (see ``parse_signature_string``), or a dict mapping each field name to a
            ``(type, InputField()/OutputField())`` tuple or to a field alone (type taken from the field, else
            ``str``), inputs and outputs in the order they should appear.
        instructions: the task description (default: "Given the fields `a`, `b`, produce the fields `c`.").
        signature_name: the new class's name.
        custom_types: names a signature string may use besides the built-in ones, e.g. ``{"Item": Item}``.
    """
    if isinstance(spec, str):
        specs = parse_signature_string(spec, custom_types)
    elif isinstance(spec, Mapping):
        specs = {name: _normalize_spec(name, value) for name, value in spec.items()}
    else:
        raise SignatureError(
            "A signature must be a string like 'question -> answer' or a dict of fields, "
            f"got {type(spec).__name__}."
        )
    return _build(signature_name, specs, instructions)


def ensure_signature(
    signature: str | Mapping[str, Any] | type[Signature],
    instructions: str | None = None,
    *,
    custom_types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """A signature class from a string or dict (built with ``make_signature``), or the class passed in."""
    if isinstance(signature, SignatureMeta):
        if instructions is not None:
            raise SignatureError(
                "Don't pass instructions together with a Signature class; "
                "use MySignature.with_instructions(...)."
            )
        return signature
    if isinstance(signature, (str, Mapping)):
        return make_signature(signature, instructions, custom_types=custom_types)
    raise SignatureError(
        f"Expected a signature string like 'question -> answer' or a Signature class, got {signature!r}."
    )


def parse_signature_string(spec: str, custom_types: Mapping[str, Any] | None = None) -> FieldSpecs:
    """Parse ``"a, b: int -> c: list[str]"`` into name -> (type, field), inputs first.

    Each side of the single ``->`` is a comma-separated list of ``name`` or ``name: type`` (commas inside
    brackets belong to the type). Types are read with ``ast`` and resolved from ``ALLOWED_TYPES`` and
    ``custom_types`` only: nothing in the string is ever evaluated. The input side may be empty. Field
    names that would hide a pydantic/Signature attribute are refused.
    """
    return parse_fields(spec, custom_types, reserved=_reserved_names())


def _field_specs(cls: SignatureMeta) -> FieldSpecs:
    """name -> (annotation, field) for every field, in order: what ``_rebuild`` needs to make a copy."""
    return {name: (info.annotation, info) for name, info in cls.fields.items()}


def _rebuild(cls: SignatureMeta, specs: FieldSpecs, instructions: str) -> type[Signature]:
    return _build(cls.__name__, specs, instructions)


def _build(name: str, specs: FieldSpecs, instructions: str | None) -> type[Signature]:
    fields: dict[str, Any] = {
        key: (annotation, with_defaults(key, info)) for key, (annotation, info) in specs.items()
    }
    return create_model(name, __base__=Signature, __doc__=instructions, **fields)


def _normalize_spec(name: Any, value: Any) -> tuple[Any, FieldInfo]:
    if not isinstance(name, str):
        raise SignatureError(f"Field names must be strings, got {name!r}.")
    annotation, info = value if isinstance(value, tuple) and len(value) == 2 else (None, value)
    if not isinstance(info, FieldInfo) or field_kind(info) is None:
        raise SignatureError(
            f"Field `{name}` must map to InputField()/OutputField() or to a "
            f"(type, InputField()/OutputField()) tuple, got {value!r}."
        )
    if annotation is None:
        annotation = info.annotation if info.annotation is not None else str
    return annotation, info


# ----------------------------------------------------------------------------------------------------------
# Checks made while a class is built


@functools.cache
def _reserved_names() -> frozenset[str]:
    # Public attributes of BaseModel and of Signature: a field with such a name would hide a method.
    names = {n for n in dir(BaseModel) if not n.startswith("_")}
    names |= {n for n in vars(Signature) if not n.startswith("_")}
    return frozenset(names | _METACLASS_PROPERTIES)


def _prepare_namespace(class_name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Copy the namespace with name-based defaults filled in and fields given without a type typed ``str``."""
    namespace = dict(namespace)
    annotations = dict(namespace.get("__annotations__", {}))
    declared = [key for key, value in namespace.items() if isinstance(value, FieldInfo)]
    reserved = _reserved_names()
    for key in [*declared, *annotations]:
        if key in reserved:
            raise SignatureError(
                f"Field `{key}` in `{class_name}` collides with the pydantic/Signature attribute `{key}`; "
                f"rename the field (e.g. `{key}_`)."
            )
        if key.startswith("_") and isinstance(namespace.get(key), FieldInfo):
            raise SignatureError(
                f"Field `{key}` in `{class_name}` starts with an underscore, which pydantic reserves for "
                "private attributes; rename the field."
            )
    for key in declared:
        if field_kind(namespace[key]) is not None:
            namespace[key] = with_defaults(key, namespace[key])
            if key not in annotations:
                namespace[key] = mark_untyped(namespace[key])
    if declared and any(key not in annotations for key in declared):
        # DSPy lets ``question = InputField()`` go without a type: it means ``str``. Fields keep the order
        # in which they were written, whether they had a type or not.
        ordered = {key: annotations.get(key, str) for key in declared}
        ordered.update({key: value for key, value in annotations.items() if key not in ordered})
        namespace["__annotations__"] = ordered
    return namespace


def _model_fields(cls: SignatureMeta) -> dict[str, FieldInfo]:
    return typing.cast("type[BaseModel]", cls).model_fields


def _check_fields(cls: SignatureMeta) -> None:
    for name, info in _model_fields(cls).items():
        if field_kind(info) is None:
            raise SignatureError(
                f"Field `{name}` in `{cls.__name__}` must be declared with InputField() or OutputField(), "
                f"e.g. `{name}: str = InputField()`."
            )
        completed = with_defaults(name, info)
        if completed is not info:  # a field declared through ``Annotated[...]`` escaped the namespace pass
            info.json_schema_extra = field_extra(completed)


def _inherited_instructions(bases: tuple[type, ...]) -> str | None:
    for base in bases:
        if isinstance(base, SignatureMeta) and base is not Signature and base.__doc__:
            return base.__doc__
    return None


def _default_instructions(cls: SignatureMeta) -> str:
    inputs = ", ".join(f"`{name}`" for name in cls.input_fields)
    outputs = ", ".join(f"`{name}`" for name in cls.output_fields)
    return f"Given the fields {inputs}, produce the fields {outputs}."


def _fields_of_kind(cls: SignatureMeta, kind: str) -> dict[str, FieldInfo]:
    return {name: info for name, info in _model_fields(cls).items() if field_kind(info) == kind}


def _unknown_field(cls: SignatureMeta, name: str, action: str) -> str:
    fields = ", ".join(cls.fields)
    return f"Cannot {action} field `{name}`: `{cls.__name__}` has no such field (fields: {fields})."


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is None and hasattr(annotation, "__name__"):
        return str(annotation.__name__)
    return repr(annotation).replace("typing.", "")

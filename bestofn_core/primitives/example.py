"""Example: a record of named fields, some marked as inputs (the rest are labels)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Example:
    """A dict-like record with attribute access, used for training data, demos and inputs.

    ``Example(question="...", answer="...").with_inputs("question")`` marks ``question`` as an input;
    ``inputs()`` and ``labels()`` split the record accordingly.
    """

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **kwargs: Any) -> None:
        self._store: dict[str, Any] = {}
        self._input_keys: frozenset[str] | None = None
        if isinstance(base, Example):
            self._store.update(base._store)
            self._input_keys = base._input_keys
        elif base is not None:
            self._store.update(base)
        self._store.update(kwargs)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") and key.endswith("__"):
            raise AttributeError(key)
        store = self.__dict__.get("_store")
        if store is not None and key in store:
            return store[key]
        raise AttributeError(f"{type(self).__name__} has no field {key!r}; fields: {sorted(store or ())}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_") or key in type(self).__dict__:
            object.__setattr__(self, key, value)
        else:
            self._store[key] = value

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __eq__(self, other: object) -> bool:
        # a plain mapping with the same fields is equal too: demos loaded from a file compare equal to the
        # dicts (``example.toDict()``) they were saved from, as DSPy's loaded demos (plain dicts) do
        if isinstance(other, Example):
            return self._store == other._store
        return isinstance(other, Mapping) and self._store == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._store.items())))

    def __repr__(self) -> str:
        input_keys = None if self._input_keys is None else set(self._input_keys)
        return f"{type(self).__name__}({dict(self.items())}) (input_keys={input_keys})"

    def keys(self, include_dspy: bool = False) -> list[str]:
        """Field names, in insertion order.

        Names starting with ``dspy_`` are DSPy's bookkeeping (``dspy_uuid``, ``dspy_split``): they are
        left out, as in DSPy, unless ``include_dspy`` is true; ``len()`` does not count them either.
        """
        return [key for key in self._store if include_dspy or not key.startswith("dspy_")]

    def values(self, include_dspy: bool = False) -> list[Any]:
        """Field values, in insertion order (``dspy_`` fields only with ``include_dspy``)."""
        return [self._store[key] for key in self.keys(include_dspy)]

    def items(self, include_dspy: bool = False) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs, in insertion order (``dspy_`` fields only with ``include_dspy``)."""
        return [(key, self._store[key]) for key in self.keys(include_dspy)]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._store.get(key, default)

    def with_inputs(self, *keys: str) -> Example:
        """A copy with ``keys`` marked as the input fields."""
        copied = self.copy()
        copied._input_keys = frozenset(keys)
        return copied

    def inputs(self) -> Example:
        """A new Example holding only the input fields (``with_inputs`` must have been called)."""
        if self._input_keys is None:
            raise ValueError("This Example has no input keys: call .with_inputs('field', ...) first.")
        selected = Example({k: v for k, v in self._store.items() if k in self._input_keys})
        selected._input_keys = self._input_keys
        return selected

    def labels(self) -> Example:
        """A new Example holding the fields that are not inputs."""
        keys = self._input_keys or frozenset()
        return Example({k: v for k, v in self._store.items() if k not in keys})

    def copy(self, **kwargs: Any) -> Example:
        """A shallow copy with ``kwargs`` set."""
        copied = type(self).__new__(type(self))
        object.__setattr__(copied, "_store", {**self._store, **kwargs})
        object.__setattr__(copied, "_input_keys", self._input_keys)
        for key, value in self.__dict__.items():
            if key not in ("_store", "_input_keys"):
                object.__setattr__(copied, key, value)
        return copied

    def without(self, *keys: str) -> Example:
        """A copy without ``keys``."""
        copied = self.copy()
        for key in keys:
            copied._store.pop(key, None)
        return copied

    def toDict(self) -> dict[str, Any]:
        """A plain dict copy of the fields (nested Examples converted too)."""
        return {k: (v.toDict() if isinstance(v, Example) else v) for k, v in self._store.items()}

    def to_dict(self) -> dict[str, Any]:
        """Same as ``toDict``."""
        return self.toDict()

"""Prediction: the output of a module call, with every completion and the token usage."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bestofn_core.primitives.example import Example


class Completions:
    """All completions of one call: ``completions.answer`` is the list of every ``answer``."""

    def __init__(self, items: Sequence[Mapping[str, Any]], signature: Any = None) -> None:
        self._items = [dict(item) for item in items]
        self.signature = signature

    def __getattr__(self, name: str) -> list[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._items and name in self._items[0]:
            return [item.get(name) for item in self._items]
        raise AttributeError(f"Completions have no field {name!r}")

    def __getitem__(self, index: int | str) -> Any:
        if isinstance(index, str):
            return [item.get(index) for item in self._items]
        return Prediction(**self._items[index])

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Prediction]:
        return (Prediction(**item) for item in self._items)

    def items(self) -> list[tuple[str, list[Any]]]:
        """``(field, [value per completion])`` for each field."""
        keys = self._items[0].keys() if self._items else []
        return [(key, [item.get(key) for item in self._items]) for key in keys]

    def __repr__(self) -> str:
        return f"Completions({self._items!r})"


class Prediction(Example):
    """A module's output: the first completion's fields as attributes, all of them in ``completions``.

    ``get_lm_usage()`` returns the token usage per model when usage tracking was on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._completions: Completions | None = None
        self._lm_usage: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_completions(cls, completions: Sequence[Mapping[str, Any]], signature: Any = None) -> Prediction:
        """A Prediction whose fields are the first completion's, keeping all of them."""
        if not completions:
            raise ValueError("A Prediction needs at least one completion.")
        pred = cls(**dict(completions[0]))
        pred._completions = Completions(completions, signature=signature)
        return pred

    @property
    def completions(self) -> Completions:
        """Every completion of the call (just this one when ``n`` was 1)."""
        if self._completions is None:
            return Completions([self._store])
        return self._completions

    def get_lm_usage(self) -> dict[str, dict[str, Any]] | None:
        """Token usage per model of the call that produced this prediction (None if not tracked)."""
        return self._lm_usage

    def set_lm_usage(self, usage: dict[str, dict[str, Any]] | None) -> None:
        """Attach token usage per model (done by the outermost module call under ``track_usage``)."""
        self._lm_usage = usage

    def __repr__(self) -> str:
        shown = ",\n    ".join(f"{k}={v!r}" for k, v in self._store.items())
        extra = ""
        if self._completions is not None and len(self._completions) > 1:
            extra = f"\n    ({len(self._completions) - 1} completions omitted)"
        return f"Prediction(\n    {shown}{extra}\n)"

    __str__ = __repr__

    def _score(self) -> float:
        if "score" not in self._store:
            raise TypeError("Only a Prediction with a `score` field can be used as a number.")
        return float(self._store["score"])

    def __float__(self) -> float:
        return self._score()

    def __lt__(self, other: Any) -> bool:
        return self._score() < float(other)

    def __le__(self, other: Any) -> bool:
        return self._score() <= float(other)

    def __gt__(self, other: Any) -> bool:
        return self._score() > float(other)

    def __ge__(self, other: Any) -> bool:
        return self._score() >= float(other)

    def __add__(self, other: Any) -> float:
        return self._score() + float(other)

    def __radd__(self, other: Any) -> float:
        return float(other) + self._score()

    def __truediv__(self, other: Any) -> float:
        return self._score() / float(other)

    __hash__ = Example.__hash__

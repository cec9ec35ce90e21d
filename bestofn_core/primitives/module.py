"""Module: the base class of every program, with DSPy's Module API.

Async is native: ``acall`` runs ``aforward``; ``__call__`` runs ``forward``. A subclass defines either
one: a module with only ``aforward`` gets a ``forward`` that runs it on the library's event loop, and a
module with only ``forward`` gets an ``aforward`` that runs it in a worker thread, so neither style
blocks an event loop.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import logging
import re
import types
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bestofn_core._runner import run_in_thread, run_sync
from bestofn_core.errors import ConfigurationError
from bestofn_core.primitives.batching import Batching
from bestofn_core.primitives.callbacks import with_callbacks
from bestofn_core.primitives.prediction import Prediction
from bestofn_core.primitives.usage import UsageTracker
from bestofn_core.settings import check_lm, settings

if TYPE_CHECKING:
    from bestofn_core.predict.predict import Predict

logger = logging.getLogger(__name__)

# attributes that are bookkeeping, not part of a program's structure
_NOT_STRUCTURE = frozenset({"callbacks", "history", "_compiled"})
# how copies treat bookkeeping: a fresh history, the same callback objects
_NOT_DEEP_COPIED: dict[str, Callable[[Any], Any]] = {"history": lambda _: [], "callbacks": list}
# the module whose __call__/acall is running now: its own forward() is being called the right way
_CALLED_MODULE: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "bestofn_called_module", default=None
)


class Parameter:
    """Marker base class for learnable state (predictors): what ``named_parameters`` collects."""

    def reset(self) -> None:
        """Forget learned state (demos and the like)."""

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """This parameter's state as a dict (JSON-able when ``json_mode``)."""
        return {}

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> Parameter:
        """Restore state written by ``dump_state`` (``allow_unsafe_lm_state``: see ``Module.load``)."""
        return self


class Module(Batching):
    """Base class of programs. Subclasses define ``forward`` and/or ``aforward``.

    Attributes:
        callbacks: callbacks for this instance's calls, in addition to ``settings.callbacks``.
        history: LM calls made while this module was running (bounded by ``settings.max_history_size``).
    """

    callbacks: list[Any]
    history: list[dict[str, Any]]
    _compiled: bool

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks = list(callbacks or [])
        self.history = []
        self._compiled = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if inspect.isfunction(forward):
            cls.forward = _DirectCallWarning(forward)  # type: ignore[method-assign,assignment]

    def __getattr__(self, name: str) -> Any:
        # subclasses that forget super().__init__() still get the bookkeeping attributes
        if name == "callbacks":
            value: Any = []
        elif name == "history":
            value = []
        elif name == "_compiled":
            value = False
        else:
            raise AttributeError(f"{type(self).__name__!s} object has no attribute {name!r}")
        object.__setattr__(self, name, value)
        return value

    # ------------------------------------------------------------------ calling

    @with_callbacks("module")
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._calling() as tracker:
            result = self.forward(*args, **kwargs)
        return _with_usage(result, tracker)

    @with_callbacks("module")
    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Run the module asynchronously (``aforward``), with callbacks and usage tracking."""
        with self._calling() as tracker:
            result = await self.aforward(*args, **kwargs)
        return _with_usage(result, tracker)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The program's logic (sync). By default runs ``aforward`` on the library's event loop."""
        if type(self).aforward is not Module.aforward:
            return run_sync(self.aforward(*args, **kwargs))
        raise NotImplementedError(f"{type(self).__name__} must define forward() or aforward().")

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """The program's logic (async). By default runs ``forward`` in a worker thread."""
        if type(self).forward is not Module.forward:
            token = _CALLED_MODULE.set(self)  # the worker thread runs in a copy of this context
            try:
                return await run_in_thread(self.forward, *args, **kwargs)
            finally:
                _CALLED_MODULE.reset(token)
        raise NotImplementedError(f"{type(self).__name__} must define forward() or aforward().")

    @contextmanager
    def _calling(self) -> Iterator[UsageTracker | None]:
        overrides: dict[str, Any] = {"caller_modules": (*settings.caller_modules, self)}
        tracker = None
        if settings.track_usage and settings.usage_tracker is None:
            tracker = UsageTracker()
            overrides["usage_tracker"] = tracker
        token = _CALLED_MODULE.set(self)
        try:
            with settings.context(**overrides):
                yield tracker
        finally:
            _CALLED_MODULE.reset(token)

    # ------------------------------------------------------------------ structure

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``(name, parameter)`` for every parameter, looking into lists, tuples, dicts and sub-modules.

        Parameters of compiled sub-modules (``_compiled = True``) are frozen and not listed.
        """
        named: list[tuple[str, Parameter]] = []
        seen: set[int] = set()

        def add(name: str, value: Any) -> None:
            if isinstance(value, Parameter):
                if id(value) not in seen:
                    seen.add(id(value))
                    named.append((name, value))
            elif isinstance(value, Module):
                if not value._compiled:
                    for sub_name, param in value.named_parameters():
                        add(f"{name}.{sub_name}", param)
            elif isinstance(value, list | tuple):
                for index, item in enumerate(value):
                    add(f"{name}[{index}]", item)
            elif isinstance(value, dict):
                for key, item in value.items():
                    add(f"{name}[{key!r}]", item)

        if isinstance(self, Parameter):
            add("self", self)
        for name, value in self.__dict__.items():
            if name not in _NOT_STRUCTURE:
                add(name, value)
        return named

    def parameters(self) -> list[Parameter]:
        """Every parameter (see ``named_parameters``)."""
        return [param for _, param in self.named_parameters()]

    def named_predictors(self) -> list[tuple[str, Predict]]:
        """``(name, predictor)`` for every ``Predict`` among the parameters."""
        from bestofn_core.predict.predict import Predict

        return [(name, param) for name, param in self.named_parameters() if isinstance(param, Predict)]

    def predictors(self) -> list[Predict]:
        """Every ``Predict`` among the parameters."""
        return [param for _, param in self.named_predictors()]

    def named_sub_modules(
        self, type_: type | None = None, skip_compiled: bool = False
    ) -> Iterator[tuple[str, Module]]:
        """Breadth-first ``(name, module)`` for this module and every module inside it.

        Names are DSPy's: ``self.sub``, ``self.items[0]``, ``self.table[key]`` (dict keys unquoted).

        Args:
            type_: only yield instances of this type (default: every ``Module``).
            skip_compiled: do not look inside compiled sub-modules.
        """
        wanted = type_ or Module
        queue: deque[tuple[str, Any]] = deque([("self", self)])
        seen = {id(self)}

        def enqueue(name: str, value: Any) -> None:
            if id(value) not in seen and isinstance(value, Module | list | tuple | dict):
                seen.add(id(value))
                queue.append((name, value))

        while queue:
            name, item = queue.popleft()
            if isinstance(item, Module):
                if isinstance(item, wanted):
                    yield name, item
                if skip_compiled and item._compiled and item is not self:
                    continue
                for sub_name, value in item.__dict__.items():
                    if sub_name not in _NOT_STRUCTURE:
                        enqueue(f"{name}.{sub_name}", value)
            elif isinstance(item, list | tuple):
                for index, value in enumerate(item):
                    enqueue(f"{name}[{index}]", value)
            elif isinstance(item, dict):
                for key, value in item.items():
                    enqueue(
                        f"{name}[{key}]", value
                    )  # DSPy's form: x[key], unquoted (named_parameters quotes)

    def map_named_predictors(self, func: Callable[[Predict], Predict]) -> Module:
        """Replace every predictor ``p`` by ``func(p)``, in place; returns ``self``."""
        for name, predictor in self.named_predictors():
            _set_by_path(self, name, func(predictor))
        return self

    def set_lm(self, lm: Any) -> None:
        """Make every predictor use ``lm`` (a language model, or ``None`` for ``settings.lm``)."""
        check_lm(lm, f"{type(self).__name__}.set_lm(lm)")
        for _, predictor in self.named_predictors():
            predictor.lm = lm

    def get_lm(self) -> Any:
        """The LM all predictors use (``None`` when they use the configured ``settings.lm``).

        Raises ``ConfigurationError`` when there is no predictor or when predictors use different LMs.
        """
        predictors = self.named_predictors()
        if not predictors:
            raise ConfigurationError(f"{type(self).__name__} has no predictors, so it has no LM.")
        lms = {id(p.lm): p.lm for _, p in predictors}
        if len(lms) > 1:
            users = ", ".join(f"{name} -> {getattr(p.lm, 'model', p.lm)!r}" for name, p in predictors)
            raise ConfigurationError(
                f"{type(self).__name__} uses several LMs ({users}); get_lm() needs exactly one. "
                "Call set_lm(lm) to use one LM everywhere, or read each predictor's .lm."
            )
        return next(iter(lms.values()))

    # ------------------------------------------------------------------ copies

    def deepcopy(self) -> Module:
        """A deep copy; attributes that cannot be deep-copied are shallow-copied (logged).

        The copy starts with an empty ``history`` and shares the callback objects: copying a long
        history on every copy would make repeated copies (one per BestOfN attempt) ever slower.
        """
        try:
            return copy.deepcopy(self)
        except Exception:
            logger.debug("copy.deepcopy(%s) failed; copying attribute by attribute", type(self).__name__)
        new = type(self).__new__(type(self))
        for name, value in self.__dict__.items():
            if name in _NOT_DEEP_COPIED:
                new.__dict__[name] = _NOT_DEEP_COPIED[name](value)
                continue
            if isinstance(value, Module):
                new.__dict__[name] = value.deepcopy()
                continue
            try:
                new.__dict__[name] = copy.deepcopy(value)
            except Exception:
                logger.warning(
                    "Attribute %r of %s cannot be deep-copied; sharing a shallow copy",
                    name,
                    type(self).__name__,
                )
                try:
                    new.__dict__[name] = copy.copy(value)
                except Exception:
                    new.__dict__[name] = value
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Module:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            if name in _NOT_DEEP_COPIED:
                new.__dict__[name] = _NOT_DEEP_COPIED[name](value)
            else:
                new.__dict__[name] = copy.deepcopy(value, memo)
        return new

    def reset_copy(self) -> Module:
        """A deep copy with every parameter reset (no demos)."""
        new = self.deepcopy()
        for param in new.parameters():
            param.reset()
        return new

    # ------------------------------------------------------------------ state

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """Every parameter's state, keyed by its name (JSON-able when ``json_mode``)."""
        return {name: param.dump_state(json_mode=json_mode) for name, param in self.named_parameters()}

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> Module:
        """Restore parameters from ``dump_state`` output; returns ``self``.

        ``allow_unsafe_lm_state``: the state is trusted (see ``load``).
        """
        missing = [name for name, _ in self.named_parameters() if name not in state]
        if missing:
            raise ConfigurationError(
                f"The saved state has no entry for {', '.join(missing)}; it was saved from a program "
                f"with parameters {', '.join(k for k in state if k != 'metadata') or '(none)'}."
            )
        from bestofn_core.lm.lm import loading_parameter

        for name, param in self.named_parameters():
            token = loading_parameter.set(name)  # warnings about its saved LM name it
            try:
                load_into(param, state[name], trusted=allow_unsafe_lm_state)
            finally:
                loading_parameter.reset(token)
        return self

    def save(
        self,
        path: str | Path,
        save_program: bool = False,
        modules_to_serialize: list[Any] | None = None,
    ) -> None:
        """Save state to ``path`` (format chosen by suffix), or the whole program to a directory.

        Args:
            path: a file (``.json``, ``.pkl``, or a suffix a serializer plugin adds), or a directory
                when ``save_program`` is true.
            save_program: pickle the whole program (code by reference) with cloudpickle into
                ``path/program.pkl`` plus ``path/metadata.json``.
            modules_to_serialize: Python modules to pickle by value (custom code not importable where
                the program will be loaded).
        """
        from bestofn_core.serialization import save_module

        save_module(self, path, save_program=save_program, modules_to_serialize=modules_to_serialize)

    def load(
        self, path: str | Path, allow_pickle: bool = False, allow_unsafe_lm_state: bool = False
    ) -> Module:
        """Load state saved by ``save`` into this program; returns ``self``.

        ``allow_pickle=True`` is required for formats that can run code when loaded (``.pkl``).
        ``allow_unsafe_lm_state=True`` trusts the file's LM settings, as DSPy's option of that name does: a
        predictor without an LM gets the custom ``BaseLM`` class the file names (imported, so it runs that
        module's code), and the file may choose where requests go (``api_base`` and the like). Only for
        files you trust.
        """
        from bestofn_core.serialization import load_module

        return load_module(self, path, allow_pickle=allow_pickle, allow_unsafe_lm_state=allow_unsafe_lm_state)

    # ------------------------------------------------------------------ history

    def inspect_history(self, n: int = 1) -> str:
        """Print (and return) the last ``n`` LM calls made while this module ran."""
        from bestofn_core.lm.history import pretty_print_history

        return pretty_print_history(self.history, n)

    def __repr__(self) -> str:
        parts = [f"{name} = {param!r}" for name, param in self.named_predictors()]
        return f"{type(self).__name__}(" + ("\n    " + "\n    ".join(parts) + "\n" if parts else "") + ")"


class _DirectCallWarning:
    """A subclass's ``forward``, warning as DSPy does when it is called other than by ``__call__``/``acall``.

    Calling ``forward`` directly skips callbacks, usage tracking and history, which is rarely meant. A
    class rather than a closure, so that programs whose classes are pickled by value still pickle.
    """

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.forward = forward
        functools.update_wrapper(self, forward)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, module: Module, *args: Any, **kwargs: Any) -> Any:
        if _CALLED_MODULE.get() is not module:
            logger.warning(
                "Calling module.forward(...) on %s directly is discouraged. Please use module(...) instead.",
                type(module).__name__,
            )
        return self.forward(module, *args, **kwargs)


def load_into(target: Any, state: Any, *, trusted: bool) -> Any:
    """``target.load_state(state)``, passing ``allow_unsafe_lm_state=True`` only when ``trusted``.

    So that a parameter or module class of a user's own, whose ``load_state`` predates the option, keeps
    loading untrusted state.
    """
    if trusted:
        return target.load_state(state, allow_unsafe_lm_state=True)
    return target.load_state(state)


def _with_usage(result: Any, tracker: UsageTracker | None) -> Any:
    if tracker is not None and isinstance(result, Prediction):
        result.set_lm_usage(tracker.get_total_tokens())
    return result


_PATH_PART = re.compile(r"\.(\w+)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]")


def _set_by_path(root: Any, path: str, value: Any) -> None:
    """Set the attribute/item that a ``named_parameters`` name such as ``a.b[0]['k']`` points to."""
    import ast

    parts: list[tuple[str, Any]] = []
    text = "." + path if not path.startswith("[") else path
    position = 0
    while position < len(text):
        match = _PATH_PART.match(text, position)
        if match is None:
            raise ValueError(f"Cannot follow the parameter path {path!r}")
        attr, index, key = match.groups()
        if attr is not None:
            parts.append(("attr", attr))
        elif index is not None:
            parts.append(("item", int(index)))
        else:
            parts.append(("item", ast.literal_eval(key)))
        position = match.end()
    if parts == [("attr", "self")]:
        raise ValueError("A module cannot replace itself; map_named_predictors needs sub-predictors.")
    _replace(root, parts, value)


def _replace(container: Any, parts: list[tuple[str, Any]], value: Any) -> Any:
    """Set ``value`` at ``parts`` inside ``container``; returns the container (a new one for tuples)."""
    (kind, key), rest = parts[0], parts[1:]
    current = getattr(container, key) if kind == "attr" else container[key]
    new = _replace(current, rest, value) if rest else value
    if kind == "attr":
        setattr(container, key, new)
    elif isinstance(container, tuple):
        return (*container[:key], new, *container[key + 1 :])
    elif new is not current or not rest:
        container[key] = new
    return container

"""The whole plugin API on one screen: the markers, the ``register`` callbacks and the six hooks.

A plugin is a module (or any object) with functions marked ``@hookimpl`` and named after a hook below,
published under the ``bestofn`` entry-point group::

    # pyproject.toml
    [project.entry-points.bestofn]
    myplugin = "my_package.plugin"

    # my_package/plugin.py
    from bestofn_core import hookimpl

    @hookimpl
    def register_rewards(register):
        register(one_word)                  # referenced as "myplugin:one_word"

Each hook receives one argument, ``register``, a callable. A hook may call it any number of times and
returns ``None``. Because plugins call ``register`` with keyword arguments, new optional keywords can be
added to it later without breaking existing plugins. The entry-point name (``myplugin``) is the plugin's
namespace: users write ``"myplugin:one_word"``, or a bare ``"one_word"`` when no other plugin offers it.

Every hook is called once per plugin when the registry is first needed (the first name lookup) and again
after plugins are registered or unregistered. If a hook raises or registers something invalid, what that
plugin registered in that call is dropped, the error is shown by ``bestofn plugins``, and every other
plugin keeps working (``BESTOFN_STRICT_PLUGINS=1`` raises instead).
"""

# String annotations keep the signatures exactly as written here, which is what docs/plugins/hooks.md
# shows (tests/test_plugins.py fails when the two drift apart).
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pluggy

from bestofn_core.protocols import AdapterProtocol, Executor, LMBackend, SelectionPolicy, Serializer

__all__ = [
    "RegisterAdapter",
    "RegisterExecutor",
    "RegisterLMBackend",
    "RegisterReward",
    "RegisterSelectionPolicy",
    "RegisterSerializer",
    "hookimpl",
    "hookspec",
    "register_adapters",
    "register_executors",
    "register_lm_backends",
    "register_rewards",
    "register_selection_policies",
    "register_serializers",
]

#: Marks the hook specifications below (used by bestofn-core itself).
hookspec = pluggy.HookspecMarker("bestofn")
#: Marks a plugin's hook implementations: ``@hookimpl def register_rewards(register): ...``.
hookimpl = pluggy.HookimplMarker("bestofn")


class RegisterLMBackend(Protocol):
    """The ``register`` callback of ``register_lm_backends``."""

    def __call__(self, backend: LMBackend, /, *, name: str, prefixes: Sequence[str] = ()) -> None:
        """Offer ``backend`` as ``"<plugin>:<name>"``, claiming the model strings that start with a prefix.

        ``prefixes`` empty (or containing ``""``) claims every model string, as a fallback; otherwise the
        backend with the longest matching prefix serves a model string.
        """
        ...


class RegisterReward(Protocol):
    """The ``register`` callback of ``register_rewards``."""

    def __call__(
        self, reward: Callable[..., Any], /, *, name: str | None = None, factory: bool = False
    ) -> None:
        """Offer ``reward(inputs, prediction) -> float`` (sync or async) as ``"<plugin>:<name>"``.

        ``name`` defaults to ``reward.__name__``. With ``factory=True``, ``reward`` is called with the
        user's parameters (``bon.reward("plugin:name", n=1)`` calls ``reward(n=1)``) to build the reward.
        """
        ...


class RegisterSelectionPolicy(Protocol):
    """The ``register`` callback of ``register_selection_policies``."""

    def __call__(self, policy: SelectionPolicy, /, *, name: str) -> None:
        """Offer ``policy`` (a ``bestofn_core.protocols.SelectionPolicy``) as ``"<plugin>:<name>"``."""
        ...


class RegisterSerializer(Protocol):
    """The ``register`` callback of ``register_serializers``."""

    def __call__(self, serializer: Serializer, /, *, name: str, suffixes: Sequence[str]) -> None:
        """Offer ``serializer`` as ``"<plugin>:<name>"`` for files ending in one of ``suffixes``.

        Suffixes start with a dot (``".json"``, ``".tar.gz"``) and match case-insensitively; the
        longest matching suffix wins.
        """
        ...


class RegisterExecutor(Protocol):
    """The ``register`` callback of ``register_executors``."""

    def __call__(self, executor: Executor, /, *, name: str) -> None:
        """Offer ``executor`` (a ``bestofn_core.protocols.Executor``) as ``"<plugin>:<name>"``."""
        ...


class RegisterAdapter(Protocol):
    """The ``register`` callback of ``register_adapters``."""

    def __call__(self, adapter: AdapterProtocol, /, *, name: str) -> None:
        """Offer ``adapter`` (a ``bestofn_core.protocols.AdapterProtocol``) as ``"<plugin>:<name>"``."""
        ...


@hookspec
def register_lm_backends(register: RegisterLMBackend) -> None:
    """Register LM backends: objects that send chat-completion requests to a model.

    Called once per plugin when the registry is built (the first time an ``LM`` picks its backend).

    :param register: call ``register(backend, name=..., prefixes=(...))`` once per backend.
        ``backend`` must satisfy ``bestofn_core.protocols.LMBackend`` (``supports_n`` and an
        ``async def acomplete(request)``). ``LM("openai/gpt-4o")`` uses the backend whose prefix is the
        longest match; ``LM(model, backend="plugin:name")`` picks one explicitly.
    """


@hookspec
def register_rewards(register: RegisterReward) -> None:
    """Register reward functions, usable as ``BestOfN(reward_fn="plugin:name")``.

    Called once per plugin when the registry is built (the first time a reward is looked up by name).

    :param register: call ``register(fn)`` or ``register(fn, name=...)`` once per reward; ``fn`` is
        ``fn(inputs, prediction) -> float``, sync or async. ``register(make_fn, name=..., factory=True)``
        registers a factory that builds the reward from the user's parameters.
    """


@hookspec
def register_selection_policies(register: RegisterSelectionPolicy) -> None:
    """Register selection policies, which choose the winning candidate and when to stop sampling.

    Called once per plugin when the registry is built (the first time a policy is looked up by name).

    :param register: call ``register(policy, name=...)`` once per policy; ``policy`` must satisfy
        ``bestofn_core.protocols.SelectionPolicy`` (``should_stop`` and ``select``).
    """


@hookspec
def register_serializers(register: RegisterSerializer) -> None:
    """Register serializers, which save and load program state for some file suffixes.

    Called once per plugin when the registry is built (the first ``save``/``load``).

    :param register: call ``register(serializer, name=..., suffixes=(".ext",))`` once per serializer;
        ``serializer`` must satisfy ``bestofn_core.protocols.Serializer`` (``executes_code``, ``dump``,
        ``load``). Set ``executes_code = True`` when loading can run code, so users must opt in.
    """


@hookspec
def register_executors(register: RegisterExecutor) -> None:
    """Register batch executors: where the calls of ``Module.batch`` / ``Parallel`` run.

    Called once per plugin when the registry is built (the first time an executor is looked up, e.g. by
    ``module.batch(examples, executor="plugin:name")``).

    :param register: call ``register(executor, name=...)`` once per executor; ``executor`` must satisfy
        ``bestofn_core.protocols.Executor``: ``open(*, num_workers)`` returns a session for one batch whose
        ``submit(call)`` starts a ``BatchCall`` and returns an ``asyncio.Future`` of its result (cancelling
        the future cancels the call) and whose ``async aclose()`` releases its workers. Ordering, error
        budget, stragglers and progress are the kernel's: an executor only starts and cancels calls.
    """


@hookspec
def register_adapters(register: RegisterAdapter) -> None:
    """Register adapters: the prompt formats that turn a signature into chat messages and back.

    Called once per plugin when the registry is built (the first time a ``Predict`` call picks its
    adapter, or an adapter is looked up by name, e.g. by ``bestofn run --adapter plugin:name``).

    :param register: call ``register(adapter, name=...)`` once per adapter; ``adapter`` must satisfy
        ``bestofn_core.protocols.AdapterProtocol`` (``format``, ``parse`` and ``async acall``; subclass
        ``bestofn_core.adapters.Adapter`` to get ``acall``). One instance serves every call, so keep no
        per-call state on it. Users pick it with ``configure(adapter="plugin:name")``; a backend names
        the one that suits its models with its ``preferred_adapter`` attribute.
    """

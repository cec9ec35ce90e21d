"""pytest fixtures for testing bestofn plugins and programs, registered with pytest automatically.

bestofn-core declares this module under pytest's ``pytest11`` entry-point group (plugin name
``bestofn``), so wherever bestofn-core is installed, these fixtures are available to every test suite
without a ``conftest.py``; ``pytest --fixtures`` lists them and ``pytest -p no:bestofn`` turns them off.

- ``bestofn_plugin``: ``bestofn_plugin(obj, name="mine")`` registers an in-process plugin for one test.
- ``bestofn_no_autoload``: no entry-point plugin is loaded during the test (built-ins still are).
- ``bestofn_server``: a running ``OpenAICompatServer`` (a real HTTP chat-completions server).
- ``bestofn_dummy_lm``: the ``DummyLM`` class, a scripted LM: ``bestofn_dummy_lm(["answer"])``.
- ``bestofn_isolated``: fresh settings and a response cache in a temporary directory for one test.

None of them is autouse: a test that does not ask for one by name is not touched by this plugin. pytest
imports this module at start-up for every suite, so it imports nothing at module level beyond the
``bestofn_core`` package itself (which Python imports as its parent); each fixture imports what it needs
when it runs, and litellm is never imported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from bestofn_core.plugins import BestOfNPluginManager
    from bestofn_core.testing.dummy_lm import DummyLM
    from bestofn_core.testing.openai_server import OpenAICompatServer

__all__ = [
    "PluginRegistrar",
    "bestofn_dummy_lm",
    "bestofn_isolated",
    "bestofn_no_autoload",
    "bestofn_plugin",
    "bestofn_server",
]


class PluginRegistrar(Protocol):
    """The type of the ``bestofn_plugin`` fixture, for annotating tests."""

    def __call__(self, plugin: object, name: str, *, check: bool = True) -> str:
        """Register ``plugin`` as ``name`` until the test ends; return ``name``.

        With ``check`` (the default) the registry is built at once and a plugin whose hooks raised, or
        that registered nothing, fails here with its error instead of later with "Unknown reward".
        """
        ...


@pytest.fixture
def bestofn_plugin() -> Iterator[PluginRegistrar]:
    """Register in-process plugins for this test: ``bestofn_plugin(obj, name="mine")``.

    ``obj`` is a module, class instance or any object with ``@hookimpl`` functions; ``name`` is its
    namespace, so what it registers resolves as ``"mine:item"``. Each plugin is unregistered when the test
    ends. Registering and unregistering both rebuild the registry, so lookups see the change at once.

    If the plugin is also installed, its entry point loads it under the same name: ask for
    ``bestofn_no_autoload`` too, so that only the in-process registration is seen.
    """
    from bestofn_core.errors import PluginError
    from bestofn_core.plugins import get_plugin_manager

    registered: list[tuple[BestOfNPluginManager, object]] = []

    def register(plugin: object, name: str, *, check: bool = True) -> str:
        if not isinstance(name, str) or not name:
            raise TypeError(f'bestofn_plugin(plugin, name="...") needs a plugin name, got {name!r}')
        pm = get_plugin_manager()
        try:
            pm.register(plugin, name=name)
        except ValueError as exc:
            if "already registered" not in str(exc):
                raise
            raise ValueError(
                f'bestofn_plugin could not register {plugin!r} as "{name}": {exc}\n'
                "If the plugin is installed, its entry point already loaded it: ask for the "
                "bestofn_no_autoload fixture as well, so that only this registration is used."
            ) from exc
        # Remembered before checking, so a plugin that fails the check is still unregistered at teardown.
        registered.append((pm, plugin))
        if check:
            info = next(info for info in pm.registry.plugins if info.name == name)
            if info.error is not None:
                raise PluginError(
                    f'The plugin "{name}" failed when its hooks were called:\n{info.error}\n'
                    "(Pass check=False to bestofn_plugin(...) to test a plugin that is meant to fail.)"
                )
            if not any(info.registered.values()):
                raise PluginError(
                    f'The plugin "{name}" ({plugin!r}) registered nothing. Are its hook functions marked '
                    "with @bestofn_core.hookimpl and named after a hook (register_rewards, ...), and do "
                    "they call register(...)? (Pass check=False to allow an empty plugin.)"
                )
        return name

    yield register
    for pm, plugin in reversed(registered):
        # The test may have called reset_plugins(), leaving this manager unused: unregistering is harmless.
        if pm.is_registered(plugin):
            pm.unregister(plugin)


@pytest.fixture
def bestofn_no_autoload(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Load no entry-point plugin during this test: only bestofn-core's built-ins (and what it registers).

    Sets ``BESTOFN_LOAD_PLUGINS=""`` and forgets the plugin manager before and after the test, so the
    test sees none of the plugins installed in the environment and the next test sees them all again.
    Ask for it before any fixture that registers plugins: starting a new manager drops earlier ones.
    """
    from bestofn_core.plugins import reset_plugins

    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")
    reset_plugins()
    yield
    # monkeypatch restores the variable after this; the next use rebuilds the manager from it
    reset_plugins()


@pytest.fixture
def bestofn_server() -> Iterator[OpenAICompatServer]:
    """A started ``OpenAICompatServer`` on 127.0.0.1 (a free port), stopped after the test.

    Point an LM at it with ``bon.LM("openai/test", api_base=bestofn_server.url, api_key="k")``. It answers
    in the format the prompt asks for; script answers with ``set_responder(lambda request, i: ...)``,
    failures with ``fail_next(...)``, and read what it received in ``requests``. Starting one takes a few
    milliseconds, so each test gets its own.
    """
    from bestofn_core.testing.openai_server import OpenAICompatServer

    with OpenAICompatServer() as server:
        yield server


@pytest.fixture
def bestofn_dummy_lm() -> type[DummyLM]:
    """The ``DummyLM`` class: ``bestofn_dummy_lm(["Paris"])`` is a scripted LM (see its docstring).

    The script is a list of answers served in order, a dict from prompt substring to answer, or
    ``fn(request, choice_index) -> answer``; an answer is text, a dict of output fields, or an exception.
    """
    from bestofn_core.testing.dummy_lm import DummyLM

    return DummyLM


@pytest.fixture
def bestofn_isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Default settings and an empty response cache in a temporary directory, for this test only.

    Before the test, ``bestofn_core.settings`` is reset to its defaults and the response cache is replaced
    (``configure_cache``) by one in a new temporary directory, which the fixture yields. After the test,
    the settings and the cache in place before are restored.
    """
    from bestofn_core.lm import cache as cache_module
    from bestofn_core.settings import settings

    previous_settings = settings.snapshot()
    previous_cache = cache_module._cache  # may be None: then the next use creates the default one
    directory = tmp_path_factory.mktemp("bestofn-cache")
    settings.reset()
    cache = cache_module.configure_cache(disk_cache_dir=directory)
    try:
        yield directory
    finally:
        settings.reset()
        settings.configure(**previous_settings)
        cache.close()
        cache_module._cache = previous_cache

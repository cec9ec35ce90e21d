"""The plugin manager and registry: entry points of installed distributions, in-process plugins, errors."""

from __future__ import annotations

import inspect
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import bestofn_tests_plugin_fixtures as plugin_fixtures  # loaded by tests/conftest.py
import pluggy
import pytest

import bestofn_core as bon
from bestofn_core import default_plugins, hookspecs
from bestofn_core._version import __version__
from bestofn_core.errors import (
    AmbiguousNameError,
    ConfigurationError,
    NoBackendError,
    PluginError,
    PluginLoadError,
    RegistrationError,
    SerializationError,
    UnknownNameError,
)
from bestofn_core.hookspecs import hookimpl
from bestofn_core.plugins import (
    ENTRY_POINT_GROUP,
    KINDS,
    PluginInfo,
    Registration,
    Registry,
    get_plugin_manager,
    get_registry,
    reset_plugins,
)
from bestofn_core.protocols import LMRequest, LMResponse

TESTS = Path(__file__).resolve().parent
HOOKS_DOC = TESTS.parent / "docs" / "plugins" / "hooks.md"
HOOK_PAGES = TESTS.parent / "docs" / "plugins" / "hooks"


isolated_plugins = plugin_fixtures.isolated_plugins
plugin_site = plugin_fixtures.plugin_site
installed_plugins = plugin_fixtures.installed_plugins


# --------------------------------------------------------------------------------- test plugin objects


class Backend:
    """A valid LM backend."""

    supports_n = False

    async def acomplete(self, request: LMRequest) -> LMResponse:
        return LMResponse(outputs=["ok"])


class Policy:
    """A valid selection policy."""

    def should_stop(self, candidates: Sequence[Any], threshold: float | None) -> bool:
        return False

    def select(self, candidates: Sequence[Any]) -> Any:
        return candidates[0]


class Executor:
    """A valid executor."""

    def open(self, *, num_workers: int) -> Any:
        return None


class Serializer:
    """A valid serializer."""

    executes_code = False

    def dump(self, state: Any, path: Path) -> None:
        pass

    def load(self, path: Path) -> Any:
        return None


def score(inputs: dict[str, Any], prediction: Any) -> float:
    return 1.0


def make_plugin(**hooks: Callable[[Any], object]) -> type:
    """A plugin class whose hook ``h`` calls ``hooks[h](register)``: ``make_plugin(register_rewards=...)``."""
    namespace: dict[str, Any] = {}
    for hook_name, body in hooks.items():

        def impl(register: Any, _body: Callable[[Any], object] = body) -> None:
            _body(register)

        impl.__name__ = hook_name
        namespace[hook_name] = staticmethod(hookimpl(specname=hook_name)(impl))
    return type("Plugin", (), namespace)


def register(name: str, **hooks: Callable[[Any], object]) -> object:
    """Register an in-process plugin built by ``make_plugin`` under ``name``; return it."""
    plugin = make_plugin(**hooks)()
    get_plugin_manager().register(plugin, name=name)
    return plugin


def info_of(name: str) -> PluginInfo:
    matches = [info for info in get_registry().plugins if info.name == name]
    assert len(matches) == 1, [info.name for info in get_registry().plugins]
    return matches[0]


# --------------------------------------------------------------------------------- hookspecs and docs


def _hook_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "bestofn_spec"))


def _signature_text(function: Callable[..., Any], *, drop_self: bool = False) -> str:
    signature = inspect.signature(function)  # string annotations: exactly as written in hookspecs.py
    if drop_self:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return str(signature).replace("'", "")


def _doc_sections() -> dict[str, str]:
    sections: dict[str, str] = {}
    current = None
    for line in HOOKS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip().strip("`")
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def test_every_hook_maps_to_a_kind() -> None:
    from bestofn_core.plugins import _HOOK_NAMES

    assert sorted(_HOOK_NAMES) == _hook_names()
    assert len(KINDS) == len(_HOOK_NAMES) == 6


@pytest.mark.parametrize("hook_name", _hook_names())
def test_hook_is_documented_with_its_exact_signatures(hook_name: str) -> None:
    page = HOOK_PAGES / f"{hook_name}.md"
    assert page.is_file(), f"docs/plugins/hooks/{hook_name}.md is missing: every hook has a page of its own"
    text = page.read_text(encoding="utf-8")
    hook = getattr(hookspecs, hook_name)
    signature = f"def {hook_name}{_signature_text(hook)}"
    assert signature in text, f"docs/plugins/hooks/{hook_name}.md must show the exact signature {signature}"
    callback = getattr(hookspecs, hook.__annotations__["register"])
    register_signature = f"register{_signature_text(callback.__call__, drop_self=True)}"
    assert register_signature in text, (
        f"docs/plugins/hooks/{hook_name}.md must show the exact callback signature {register_signature}"
    )
    assert "@hookimpl" in text  # an example (tests/test_docs_tutorial.py runs it)
    section = _doc_sections().get(hook_name)
    assert section is not None and f"(hooks/{hook_name}.md)" in section, (
        f"docs/plugins/hooks.md needs a '## {hook_name}' section linking to hooks/{hook_name}.md"
    )


def test_docs_have_no_section_for_a_hook_that_does_not_exist() -> None:
    documented = {name for name in _doc_sections() if name.startswith("register_")}
    assert documented == set(_hook_names())
    assert {page.stem for page in HOOK_PAGES.glob("*.md")} == set(_hook_names())


@pytest.mark.parametrize("hook_name", _hook_names())
def test_hook_docstring_says_when_it_is_called_and_what_register_is(hook_name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook_name)) or ""
    assert "Called" in doc and ":param register:" in doc


def test_importing_the_plugin_module_loads_no_plugin(plugin_site: Path) -> None:
    code = (
        "import sys, bestofn_core.plugins, bestofn_core.hookspecs\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('litellm', 'bestofn_testplugin')"
        " or m.startswith('bestofn_core.default_plugins.')]\n"
        "print(loaded)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------------- built-ins


def test_builtin_plugins_are_registered_like_any_plugin() -> None:
    registry = get_registry()
    assert registry.names("serializer") == ["json:json", "pickle:pickle"]
    json_info = info_of("json")
    assert json_info.builtin and json_info.distribution is None and json_info.version == __version__
    assert json_info.module == "bestofn_core.default_plugins.json_serializer"
    assert json_info.location is not None and json_info.location.endswith("json_serializer.py")
    assert json_info.registered["serializer"] == ["json:json"] and json_info.error is None


def test_builtin_plugin_names_come_from_the_module_name() -> None:
    assert default_plugins.builtin_plugin_name("bestofn_core.default_plugins.litellm_backend") == "litellm"
    assert default_plugins.builtin_plugin_name("x.weighted_vote_policy") == "weighted_vote"
    assert default_plugins.builtin_plugin_name("x.threads") == "threads"
    assert default_plugins.builtin_plugin_name("x.selection_policies") == "selection_policies"
    assert default_plugins.builtin_plugin_name("x.threads_executor") == "threads"


def test_a_missing_builtin_is_recorded_and_the_others_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "bestofn_core.default_plugins.nonexistent_backend"
    monkeypatch.setattr(default_plugins, "BUILTIN_PLUGINS", (missing, *plugin_fixtures.SERIALIZER_BUILTINS))
    reset_plugins()
    info = info_of("nonexistent")
    assert info.builtin and info.error is not None and "ModuleNotFoundError" in info.error
    assert get_registry().names("serializer") == ["json:json", "pickle:pickle"]


def test_blocking_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", " json , other")
    reset_plugins()
    registry = get_registry()
    assert info_of("json").blocked
    assert registry.names("serializer") == ["pickle:pickle"]
    with pytest.raises(UnknownNameError, match="blocked by BESTOFN_BLOCK_PLUGINS"):
        registry.resolve("serializer", "json:json")
    with pytest.raises(SerializationError, match=r'"\.json".*Supported suffixes: \.pickle, \.pkl'):
        registry.serializer_for("state.json")


# --------------------------------------------------------------------------------- resolution


def test_resolve_qualified_and_bare_names() -> None:
    register(
        "myplug", register_rewards=lambda r: r(score), register_executors=lambda r: r(Executor(), name="ex")
    )
    registry = get_registry()
    registration = registry.resolve("reward", "myplug:score")
    assert registration == registry.resolve("reward", "score")
    assert (registration.kind, registration.name, registration.plugin) == ("reward", "score", "myplug")
    assert registration.qualified_name == "myplug:score"
    assert registry.get("reward", "score") is score
    assert registry.names("executor") == ["myplug:ex"]
    assert registry.names("reward") == ["myplug:score"]


def test_two_plugins_may_offer_the_same_bare_name_but_it_is_then_ambiguous() -> None:
    register("alpha", register_rewards=lambda r: r(score))
    register("beta", register_rewards=lambda r: r(lambda i, p: 0.0, name="score"))
    registry = get_registry()
    assert registry.names("reward") == ["alpha:score", "beta:score"]
    assert registry.get("reward", "alpha:score") is score
    with pytest.raises(AmbiguousNameError, match=r'"score".*"alpha:score", "beta:score"'):
        registry.resolve("reward", "score")


def test_unknown_qualified_name_lists_what_is_available() -> None:
    register("myplug", register_rewards=lambda r: r(score))
    with pytest.raises(UnknownNameError) as info:
        get_registry().resolve("reward", "myplug:scroe")
    message = str(info.value)
    assert 'Unknown reward "myplug:scroe"' in message
    assert "registers no reward with that name" in message
    assert 'Did you mean "myplug:score"?' in message
    assert "Available rewards: myplug:score." in message


def test_unknown_plugin_suggests_a_package_and_bestofn_plugins() -> None:
    register("myplug", register_rewards=lambda r: r(score))
    with pytest.raises(UnknownNameError) as info:
        get_registry().resolve("reward", "text_tools:one_word")
    message = str(info.value)
    assert 'No plugin named "text_tools" is installed' in message
    assert "pip install bestofn-text-tools" in message
    assert "`bestofn plugins`" in message
    assert "Available rewards: myplug:score." in message


def test_unknown_bare_name_and_unknown_kind() -> None:
    registry = get_registry()
    with pytest.raises(UnknownNameError, match=r'Unknown executor "threads"\. Available executors: none\.'):
        registry.resolve("executor", "threads")
    with pytest.raises(UnknownNameError, match="non-empty string"):
        registry.resolve("reward", "")
    with pytest.raises(ConfigurationError, match="Unknown plugin kind 'rewards'"):
        registry.resolve("rewards", "x")  # type: ignore[arg-type]


def test_reward_factories() -> None:
    def max_words(n: int) -> Callable[[Any, Any], float]:
        return lambda inputs, prediction: float(len(str(prediction).split()) <= n)

    register("myplug", register_rewards=lambda r: (r(max_words, name="max_words", factory=True), r(score)))
    registry = get_registry()
    assert registry.resolve("reward", "max_words").options["factory"] is True
    reward = registry.build_reward("myplug:max_words", n=1)
    assert reward({}, "one") == 1.0 and reward({}, "two words") == 0.0
    assert registry.build_reward("score") is score
    with pytest.raises(ConfigurationError, match="takes no parameters"):
        registry.build_reward("score", n=1)


# --------------------------------------------------------------------------------- registration errors


def test_duplicate_registration_names_both_and_drops_the_hook_call(caplog: pytest.LogCaptureFixture) -> None:
    def other(inputs: Any, prediction: Any) -> float:
        return 0.0

    register("dup", register_rewards=lambda r: (r(score), r(other, name="score")))
    register("fine", register_rewards=lambda r: r(other))
    with caplog.at_level(logging.WARNING, logger="bestofn_core.plugins"):
        registry = get_registry()
    error = info_of("dup").error
    assert error is not None and "RegistrationError" in error
    assert 'registered an invalid reward "score" in hook register_rewards' in error
    assert "function score" in error and "function" in error and "other" in error  # both registrations
    assert registry.names("reward") == ["fine:other"]  # the whole failing call is dropped
    assert any("dup" in record.getMessage() for record in caplog.records)


def test_duplicate_in_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTOFN_STRICT_PLUGINS", "1")
    reset_plugins()
    register("dup", register_rewards=lambda r: (r(score), r(score)))
    with pytest.raises(PluginLoadError, match='Plugin "dup" failed in hook register_rewards') as info:
        get_registry()
    assert isinstance(info.value.__cause__, RegistrationError)


class NoSupportsN:
    async def acomplete(self, request: Any) -> Any: ...


class SyncBackend:
    supports_n = True

    def acomplete(self, request: Any) -> Any: ...


class NoLoad:
    executes_code = False

    def dump(self, state: Any, path: Path) -> None: ...


class NotCallableOpen:
    open = 3


BACKENDS, REWARDS, SERIALIZERS = "register_lm_backends", "register_rewards", "register_serializers"
EXECUTORS, POLICIES = "register_executors", "register_selection_policies"


@pytest.mark.parametrize(
    ("hook", "call", "expected"),
    [
        (BACKENDS, lambda r: r(NoSupportsN(), name="b"), 'LM backend "b".*missing attribute "supports_n"'),
        (BACKENDS, lambda r: r(SyncBackend(), name="b"), '"acomplete" must be a coroutine function'),
        (BACKENDS, lambda r: r(Backend, name="b"), "register an instance, not the class Backend"),
        (BACKENDS, lambda r: r(Backend(), name="b", prefixes="openai/"), "prefixes must be a list"),
        (
            SERIALIZERS,
            lambda r: r(NoLoad(), name="s", suffixes=(".x",)),
            'serializer "s".*missing method "load"',
        ),
        (SERIALIZERS, lambda r: r(Serializer(), name="s", suffixes=("yaml",)), 'must start with "."'),
        (EXECUTORS, lambda r: r(object(), name="e"), 'executor "e".*Executor: missing method "open"'),
        (EXECUTORS, lambda r: r(NotCallableOpen(), name="e"), '"open" must be a method'),
        (POLICIES, lambda r: r(object(), name="p"), 'policy "p".*missing method "should_stop"'),
        (REWARDS, lambda r: r(42, name="x"), 'reward "x".*42 is not callable'),
        (REWARDS, lambda r: r(lambda only_one: 0.0, name="x"), r"reward\(inputs, prediction\)"),
        (REWARDS, lambda r: r(lambda i, p: 0.0), "no usable __name__.*pass name="),
        (REWARDS, lambda r: r(score, name="a:b"), "invalid name 'a:b'"),
        (REWARDS, lambda r: r(score, name=""), "invalid name ''"),
        (REWARDS, lambda r: r(score, name="has space"), "invalid name 'has space'"),
        (REWARDS, lambda r: r(score, factory="yes"), "factory must be True or False"),
    ],
)
def test_invalid_registrations_name_plugin_hook_item_and_problem(hook: str, call: Any, expected: str) -> None:
    register("badplug", **{hook: call})
    register("goodplug", register_executors=lambda r: r(Executor(), name="ok"))
    error = info_of("badplug").error
    assert error is not None
    assert 'Plugin "badplug" registered an invalid' in error and f"in hook {hook}" in error
    assert re.search(expected, error), error
    assert get_registry().names("executor") == ["goodplug:ok"]  # other plugins unaffected


def test_register_raises_inside_the_hook_and_a_swallowed_error_still_counts() -> None:
    seen: list[BaseException] = []

    def swallow(r: Any) -> None:
        r(score)
        try:
            r(object(), name="bad")
        except RegistrationError as exc:
            seen.append(exc)

    register("sneaky", register_rewards=swallow)
    error = info_of("sneaky").error
    assert len(seen) == 1 and error is not None and "object object" in error
    assert get_registry().names("reward") == []


def test_valid_names_and_options() -> None:
    register(
        "p",
        register_rewards=lambda r: r(score, name="v1.score-2_x"),
        register_lm_backends=lambda r: r(Backend(), name="b", prefixes=["a/", "b/"]),
        register_serializers=lambda r: r(Serializer(), name="s", suffixes=[".Y", ".tar.y"]),
    )
    registry = get_registry()
    assert info_of("p").error is None
    assert registry.names("reward") == ["p:v1.score-2_x"]
    assert registry.resolve("lm_backend", "b").options["prefixes"] == ("a/", "b/")
    assert registry.resolve("serializer", "s").options["suffixes"] == (".Y", ".tar.y")


# --------------------------------------------------------------------------------- error isolation


def test_a_raising_hook_drops_only_that_call(caplog: pytest.LogCaptureFixture) -> None:
    def half_then_raise(r: Any) -> None:
        r(score)
        raise RuntimeError("boom in the hook")

    register(
        "flaky",
        register_rewards=half_then_raise,
        register_selection_policies=lambda r: r(Policy(), name="pol"),
    )
    register("steady", register_rewards=lambda r: r(score))
    with caplog.at_level(logging.WARNING, logger="bestofn_core.plugins"):
        registry = get_registry()
    assert registry.names("reward") == ["steady:score"]
    assert registry.names("selection_policy") == ["flaky:pol"]  # its other hooks still count
    info = info_of("flaky")
    assert info.error is not None
    assert "In hook register_rewards" in info.error and "Traceback" in info.error
    assert "RuntimeError: boom in the hook" in info.error
    assert info.registered["selection_policy"] == ["flaky:pol"] and info.registered["reward"] == []
    assert any("flaky" in r.getMessage() and "boom in the hook" in r.getMessage() for r in caplog.records)
    with pytest.raises(UnknownNameError, match=r'"flaky" had errors \(RuntimeError: boom in the hook\)'):
        registry.resolve("reward", "flaky:score")


def test_strict_mode_raises_the_first_hook_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTOFN_STRICT_PLUGINS", "true")
    reset_plugins()
    register("flaky", register_rewards=lambda r: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(PluginLoadError, match="boom") as info:
        get_registry()
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_hook_with_a_typo_in_its_name_is_refused() -> None:
    class Typo:
        @hookimpl
        def register_reward(self, register: Any) -> None: ...

    with pytest.raises(
        pluggy.PluginValidationError, match=r'unknown hook "register_reward".*"register_rewards"'
    ):
        get_plugin_manager().register(Typo(), name="typo")
    assert get_plugin_manager().get_plugin("typo") is None


def test_a_hook_with_a_wrong_argument_is_refused_by_pluggy() -> None:
    class WrongArgument:
        @hookimpl
        def register_rewards(self, reg: Any) -> None: ...

    with pytest.raises(pluggy.PluginValidationError, match="reg"):
        get_plugin_manager().register(WrongArgument(), name="wrong")


def test_plugin_names_cannot_contain_a_colon() -> None:
    with pytest.raises(ValueError, match="cannot contain ':'"):
        get_plugin_manager().register(make_plugin()(), name="a:b")


def test_a_hook_that_asks_for_the_registry_gets_an_error_not_a_deadlock() -> None:
    register("loop", register_rewards=lambda r: get_registry())
    error = info_of("loop").error
    assert error is not None and "while it was being built" in error


def test_a_plugin_that_asks_for_plugins_while_being_imported_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reentrant_executor.py").write_text(
        "from bestofn_core.plugins import get_registry\nget_registry()\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        default_plugins, "BUILTIN_PLUGINS", ("reentrant_executor", *plugin_fixtures.SERIALIZER_BUILTINS)
    )
    reset_plugins()
    error = info_of("reentrant").error
    assert error is not None and "while plugins were being loaded" in error
    assert get_registry().names("serializer") == ["json:json", "pickle:pickle"]


def test_a_hook_returning_a_value_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    class Returns:
        @hookimpl
        def register_rewards(self, register: Any) -> Any:
            return [score]

    get_plugin_manager().register(Returns(), name="returns")
    with caplog.at_level(logging.WARNING, logger="bestofn_core.plugins"):
        get_registry()
    assert any("call register(...) instead" in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------------- registry cache


def test_registry_is_cached_and_invalidated_by_register_and_unregister() -> None:
    first = get_registry()
    assert get_registry() is first
    plugin = register("late", register_rewards=lambda r: r(score))
    second = get_registry()
    assert second is not first and second.names("reward") == ["late:score"]
    get_plugin_manager().unregister(plugin)
    third = get_registry()
    assert third.names("reward") == [] and all(info.name != "late" for info in third.plugins)
    reset_plugins()
    assert get_registry() is not third


def test_registry_is_built_once_across_threads() -> None:
    results: list[Registry] = []
    threads = [threading.Thread(target=lambda: results.append(get_registry())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(registry) for registry in results}) == 1


def test_in_process_plugins_are_listed_without_distribution() -> None:
    register("inproc", register_rewards=lambda r: r(score))
    info = info_of("inproc")
    assert (info.distribution, info.version, info.builtin, info.blocked) == (None, None, False, False)
    assert info.module == __name__ and info.location is not None and info.location.endswith("test_plugins.py")
    assert info.registered["reward"] == ["inproc:score"] and set(info.registered) == set(KINDS)
    assert info.to_dict()["registered"]["reward"] == ["inproc:score"]


def test_a_module_registered_in_process() -> None:
    module = ModuleType("my_module_plugin")
    module.register_rewards = hookimpl(lambda register: register(score))  # type: ignore[attr-defined]
    get_plugin_manager().register(module, name="modplug")
    assert get_registry().names("reward") == ["modplug:score"]
    assert info_of("modplug").module == "my_module_plugin"


def test_trace_env_var_logs_hook_calls(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BESTOFN_TRACE_PLUGINS", "1")
    reset_plugins()
    with caplog.at_level(logging.DEBUG, logger="bestofn_core.plugins"):
        get_registry()
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "register_serializers [hook]" in messages
    assert "register serializer for plugin 'json'" in messages


# --------------------------------------------------------------------------------- LM backend choice


def _backends(*specs: tuple[str, str, Sequence[str]]) -> Registry:
    """A registry with backends ``(plugin, name, prefixes)``, registered through real plugins."""
    by_plugin: dict[str, list[tuple[str, Sequence[str]]]] = {}
    for plugin, name, prefixes in specs:
        by_plugin.setdefault(plugin, []).append((name, prefixes))
    for plugin, backends in by_plugin.items():

        def hook(r: Any, backends: list[tuple[str, Sequence[str]]] = backends) -> None:
            for name, prefixes in backends:
                r(Backend(), name=name, prefixes=prefixes)

        register(plugin, register_lm_backends=hook)
    return get_registry()


def test_longest_matching_prefix_wins() -> None:
    registry = _backends(
        ("litellm", "litellm", ()),
        ("fast", "openai", ("openai/", "azure/")),
        ("tuned", "gpt4", ("openai/gpt-4",)),
    )
    assert registry.lm_backend_for("openai/gpt-4o").qualified_name == "tuned:gpt4"
    assert registry.lm_backend_for("openai/o1").qualified_name == "fast:openai"
    assert registry.lm_backend_for("azure/x").qualified_name == "fast:openai"
    assert registry.lm_backend_for("anthropic/claude").qualified_name == "litellm:litellm"


def test_the_empty_prefix_is_a_fallback_too() -> None:
    registry = _backends(("a", "catchall", ("",)), ("b", "local", ("local/",)))
    assert registry.lm_backend_for("local/llama").qualified_name == "b:local"
    assert registry.lm_backend_for("whatever").qualified_name == "a:catchall"


def test_a_tie_on_the_longest_prefix_is_ambiguous() -> None:
    registry = _backends(
        ("litellm", "litellm", ()), ("fast", "openai", ("openai/",)), ("other", "oai", ("openai/",))
    )
    with pytest.raises(AmbiguousNameError) as info:
        registry.lm_backend_for("openai/gpt-4o")
    message = str(info.value)
    assert '"fast:openai", "other:oai"' in message and 'prefix "openai/"' in message
    assert 'backend="plugin:name"' in message and "LM(" in message
    assert registry.lm_backend_for("anthropic/x").qualified_name == "litellm:litellm"  # others unaffected


def test_explicit_backend_wins_without_a_prefix_check() -> None:
    registry = _backends(("fast", "openai", ("openai/",)), ("other", "oai", ("openai/",)))
    assert registry.lm_backend_for("anthropic/x", backend="fast:openai").qualified_name == "fast:openai"
    assert registry.lm_backend_for("openai/x", backend="oai").qualified_name == "other:oai"
    with pytest.raises(UnknownNameError, match="Available LM backends: fast:openai, other:oai"):
        registry.lm_backend_for("openai/x", backend="nope:x")


def test_no_backend_claims_the_model() -> None:
    registry = _backends(("fast", "openai", ("openai/", "azure/")))
    with pytest.raises(NoBackendError) as info:
        registry.lm_backend_for("anthropic/claude")
    message = str(info.value)
    assert 'No LM backend claims the model "anthropic/claude"' in message
    assert "fast:openai ('openai/', 'azure/')" in message


def test_no_backend_installed_at_all() -> None:
    with pytest.raises(NoBackendError, match=r"No LM backend is installed.*bestofn plugins --all"):
        get_registry().lm_backend_for("openai/gpt-4o")


# --------------------------------------------------------------------------------- serializer_for


def test_serializer_for_matches_the_longest_suffix_case_insensitively() -> None:
    register(
        "arch",
        register_serializers=lambda r: (
            r(Serializer(), name="gz", suffixes=(".gz",)),
            r(Serializer(), name="targz", suffixes=(".TAR.GZ",)),
        ),
    )
    registry = get_registry()
    assert registry.serializer_for("a/b/state.tar.gz").qualified_name == "arch:targz"
    assert registry.serializer_for(Path("STATE.Tar.Gz")).qualified_name == "arch:targz"
    assert registry.serializer_for("state.gz").qualified_name == "arch:gz"
    assert registry.serializer_for("dir.json/state.JSON").qualified_name == "json:json"


def test_serializer_for_an_unknown_suffix_lists_the_supported_ones() -> None:
    with pytest.raises(SerializationError) as info:
        get_registry().serializer_for("state.yaml")
    assert '".yaml"' in str(info.value) and "Supported suffixes: .json, .pickle, .pkl" in str(info.value)
    with pytest.raises(SerializationError, match=r"\(no suffix\)"):
        get_registry().serializer_for("README")


def test_two_serializers_for_the_same_suffix_are_ambiguous() -> None:
    register("yaml1", register_serializers=lambda r: r(Serializer(), name="yaml", suffixes=(".yaml",)))
    register("yaml2", register_serializers=lambda r: r(Serializer(), name="yaml", suffixes=(".YAML",)))
    with pytest.raises(AmbiguousNameError, match='"yaml1:yaml", "yaml2:yaml"'):
        get_registry().serializer_for("x.yaml")


def test_registration_and_registry_can_be_built_directly() -> None:
    registration = Registration("executor", "ex", "me", Executor())
    registry = Registry([registration])
    assert registry.get("executor", "me:ex") is registration.obj and registry.plugins == []
    assert dict(registration.options) == {}


# --------------------------------------------------------------------------------- entry points


def test_entry_point_plugins_are_discovered(installed_plugins: Path) -> None:
    registry = get_registry()
    assert registry.get("reward", "testplug:tp_length")({}, "abc") == 3.0
    assert registry.resolve("selection_policy", "tp_first").plugin == "testplug"
    assert registry.serializer_for("data.TESTFMT").qualified_name == "testplug:testfmt"
    assert registry.names("executor") == ["testplug:tp_serial"]
    assert registry.lm_backend_for("echo/model").qualified_name == "testplug:echo"
    assert registry.names("adapter") == ["testplug:tp_lines"]
    assert registry.build_reward("tp_max_words", n=1)({}, "one two") == 0.0
    info = info_of("testplug")
    assert (info.distribution, info.version, info.module) == (
        "bestofn-testplugin",
        "0.1.0",
        "bestofn_testplugin",
    )
    assert not info.builtin and info.error is None and not info.blocked
    assert info.location is not None and Path(info.location).is_relative_to(installed_plugins)
    assert info.registered["reward"] == ["testplug:tp_length", "testplug:tp_max_words"]


def test_a_backend_of_an_installed_plugin_picks_the_adapter_its_plugin_registered(
    installed_plugins: Path,
) -> None:
    lm = bon.LM("echo/model", cache=False)
    assert lm.preferred_adapter == "testplug:tp_lines"
    prediction = bon.Predict("question -> answer")(question="hi", lm=lm)
    assert prediction.answer == "question=hi"  # tp_lines wrote the prompt, the backend echoed it
    with bon.context(adapter="testplug:tp_lines"):  # also by name, for any LM
        assert bon.Predict("question -> answer")(question="x", lm=lm).answer == "question=x"


def test_broken_entry_points_are_recorded_and_the_rest_works(
    installed_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bestofn_core.plugins"):
        registry = get_registry()
    broken = info_of("brokenplug")
    assert broken.distribution == "bestofn-brokenplugin" and broken.version == "0.1.0"
    assert broken.error is not None and broken.error.startswith("Traceback")
    assert "ImportError: bestofn_brokenplugin needs the package" in broken.error
    assert broken.location is not None and broken.location.endswith("__init__.py")
    assert any("brokenplug" in record.getMessage() for record in caplog.records)

    raising = info_of("raisingplug")
    assert raising.error is not None
    assert "RuntimeError: raisingplug's reward hook is broken on purpose" in raising.error
    assert 'invalid serializer "rp_writeonly" in hook register_serializers' in raising.error
    assert 'missing method "load"' in raising.error
    assert registry.names("selection_policy") == ["raisingplug:rp_last", "testplug:tp_first"]
    assert "raisingplug:rp_partial" not in registry.names("reward")  # dropped with its failing call
    with pytest.raises(SerializationError):
        registry.serializer_for("x.rpw")
    with pytest.raises(UnknownNameError, match=r'"brokenplug" had errors.*ImportError'):
        registry.resolve("reward", "brokenplug:anything")
    assert registry.names("serializer") == ["json:json", "pickle:pickle", "testplug:testfmt"]


def test_strict_mode_raises_on_a_broken_entry_point(
    installed_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_STRICT_PLUGINS", "1")
    reset_plugins()
    with pytest.raises(PluginLoadError, match=r'Plugin "brokenplug" \(bestofn-brokenplugin\) failed') as info:
        get_plugin_manager()
    assert isinstance(info.value.__cause__, ImportError)
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "testplug,raisingplug")
    reset_plugins()
    with pytest.raises(PluginLoadError, match='"raisingplug" failed in hook'):
        get_registry()
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "testplug")
    reset_plugins()
    assert "testplug:tp_length" in get_registry().names("reward")


def test_load_plugins_env_var(installed_plugins: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "testplug, not_installed")
    reset_plugins()
    with caplog.at_level(logging.WARNING, logger="bestofn_core.plugins"):
        names = [info.name for info in get_registry().plugins if not info.builtin]
    assert names == ["testplug"]
    assert any("not_installed" in record.getMessage() for record in caplog.records)
    with pytest.raises(UnknownNameError, match="installed but not loaded: add it to BESTOFN_LOAD_PLUGINS"):
        get_registry().resolve("reward", "raisingplug:rp_partial")

    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")
    reset_plugins()
    assert [info.name for info in get_registry().plugins if not info.builtin] == []

    monkeypatch.delenv("BESTOFN_LOAD_PLUGINS")  # unset: every installed entry point
    reset_plugins()
    loaded = {info.name for info in get_registry().plugins}
    assert {"testplug", "brokenplug", "raisingplug", "json", "pickle"} <= loaded


def test_block_plugins_env_var(installed_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "brokenplug,testplug,pickle")
    reset_plugins()
    registry = get_registry()
    assert info_of("brokenplug").blocked and info_of("brokenplug").error is None  # never imported
    assert info_of("testplug").blocked and info_of("testplug").distribution == "bestofn-testplugin"
    assert info_of("pickle").blocked and info_of("pickle").builtin
    assert registry.names("serializer") == ["json:json"]
    assert registry.names("selection_policy") == ["raisingplug:rp_last"]
    with pytest.raises(UnknownNameError, match='"testplug" is blocked'):
        registry.resolve("reward", "testplug:tp_length")


def test_blocked_entry_point_module_is_not_imported(installed_plugins: Path) -> None:
    code = (
        "import sys\n"
        "from bestofn_core.plugins import get_registry\n"
        "registry = get_registry()\n"
        "print(sorted(m for m in sys.modules if m.startswith('bestofn_') and m.endswith('plugin')))\n"
    )
    env = {**os.environ, "BESTOFN_BLOCK_PLUGINS": "brokenplug,raisingplug"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "['bestofn_testplugin']"


def test_entry_point_group_name() -> None:
    assert ENTRY_POINT_GROUP == "bestofn" == hookspecs.hookimpl.project_name


def test_plugin_error_hierarchy() -> None:
    assert issubclass(RegistrationError, PluginError) and issubclass(PluginLoadError, PluginError)
    assert issubclass(UnknownNameError, LookupError) and issubclass(AmbiguousNameError, LookupError)

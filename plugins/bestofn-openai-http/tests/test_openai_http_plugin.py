"""The plugin as users meet it: entry-point discovery, prefix resolution, the tie rule, BestOfN."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import bestofn_openai_http
import pytest
from bestofn_openai_http import plugin

import bestofn_core as bon
from bestofn_core.errors import AmbiguousNameError, NoBackendError
from bestofn_core.plugins import get_plugin_manager, get_registry, reset_plugins
from bestofn_core.protocols import LMRequest, LMResponse

MESSAGES = [{"role": "user", "content": "Say hello."}]
MakeLM = Callable[..., bon.LM]


class EchoBackend:
    """A second backend for the tie and longest-prefix tests; answers without any I/O."""

    supports_n = False

    def __init__(self, text: str) -> None:
        self.text = text

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Answer ``self.text``."""
        return LMResponse(outputs=[self.text])


class RivalPlugin:
    """An in-process plugin registering backends under the given prefixes."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    @bon.hookimpl
    def register_lm_backends(self, register: Any) -> None:
        """Register an ``EchoBackend`` as ``"rival:echo"``."""
        register(EchoBackend("from the rival"), name="echo", prefixes=self.prefixes)


@pytest.fixture
def rival() -> Iterator[Callable[[tuple[str, ...]], None]]:
    """Register a ``rival`` plugin with the given prefixes for the test."""
    manager = get_plugin_manager()

    def add(prefixes: tuple[str, ...]) -> None:
        manager.register(RivalPlugin(prefixes), name="rival")

    yield add
    if manager.get_plugin("rival") is not None:
        manager.unregister(name="rival")


def test_the_installed_distribution_is_discovered_through_its_entry_point() -> None:
    reset_plugins()
    registry = get_registry()
    info = next(p for p in registry.plugins if p.name == "openai_http")
    assert info.distribution == "bestofn-openai-http" and info.version == bestofn_openai_http.__version__
    assert info.module == "bestofn_openai_http.plugin" and not info.builtin and info.error is None
    assert info.registered["lm_backend"] == ["openai_http:openai", "openai_http:openai_http"]
    registration = registry.resolve("lm_backend", "openai_http:openai_http")
    assert registration.obj is plugin.backend and registration.options["prefixes"] == ("openai-http/",)
    registration = registry.resolve("lm_backend", "openai_http:openai")
    assert registration.obj is plugin.openai_backend and registration.options["prefixes"] == ("openai/",)
    assert plugin.openai_backend.lean is plugin.backend  # one connection pool for both


def test_prefixes_pick_the_backend_and_leave_other_providers_to_litellm() -> None:
    registry = get_registry()
    assert registry.lm_backend_for("openai-http/gpt-4o-mini").qualified_name == "openai_http:openai_http"
    assert registry.lm_backend_for("openai/gpt-4o-mini").qualified_name == "openai_http:openai"
    assert registry.lm_backend_for("openai-httpx/foo").qualified_name == "litellm:litellm"
    assert registry.lm_backend_for("anthropic/claude-3-5-haiku").qualified_name == "litellm:litellm"
    assert registry.lm_backend_for("gpt-4o-mini").qualified_name == "litellm:litellm"  # no prefix
    assert bon.LM("openai-http/gpt-4o-mini").backend is plugin.backend
    assert bon.LM("openai/gpt-4o-mini").backend is plugin.openai_backend


def test_explicit_backend_serves_an_openai_model_string(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm("openai/gpt-4o-mini", backend="openai_http:openai_http")
    assert lm.backend is plugin.backend
    assert lm(messages=MESSAGES)
    assert server.requests[0].body["model"] == "gpt-4o-mini"
    assert server.requests[0].headers["user-agent"].startswith("bestofn-openai-http/")
    # the choice survives copies (BestOfN copies the LM for every attempt) and is saved with the state
    assert lm.copy(temperature=0.3).backend is plugin.backend
    assert lm.dump_state()["backend"] == "openai_http:openai_http"


def test_a_tie_on_the_longest_prefix_is_an_error_and_backend_resolves_it(
    make_lm: MakeLM, server: Any, rival: Callable[[tuple[str, ...]], None]
) -> None:
    rival(("openai-http/",))
    with pytest.raises(AmbiguousNameError) as info:
        bon.LM("openai-http/test-model")
    message = str(info.value)
    assert '"openai_http:openai_http"' in message and '"rival:echo"' in message and "backend=" in message
    assert make_lm(backend="openai_http:openai_http")(messages=MESSAGES) != ["from the rival"]
    assert len(server.requests) == 1
    assert bon.LM("openai-http/test-model", backend="rival:echo")(messages=MESSAGES) == ["from the rival"]


def test_the_longest_prefix_wins(
    make_lm: MakeLM, server: Any, rival: Callable[[tuple[str, ...]], None]
) -> None:
    rival(("openai-http/special/",))
    assert bon.LM("openai-http/special/model")(messages=MESSAGES) == ["from the rival"]
    assert make_lm("openai-http/plain")(messages=MESSAGES) != ["from the rival"]
    assert server.requests[0].body["model"] == "plain"


def test_the_plugin_module_registers_in_process_too(
    make_lm: MakeLM, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")  # no entry-point plugin at all
    reset_plugins()
    assert "openai_http:openai_http" not in get_registry().names("lm_backend")
    with pytest.raises(NoBackendError, match="runs on the bestofn-openai-http plugin"):
        get_registry().lm_backend_for("openai-http/x")  # not handed to the litellm fallback
    get_plugin_manager().register(plugin, name="openai_http")
    assert get_registry().lm_backend_for("openai-http/x").obj is plugin.backend
    assert make_lm()(messages=MESSAGES)
    assert server.requests[0].body["model"] == "test-model"


def test_best_of_n_samples_through_the_backend(make_lm: MakeLM, server: Any) -> None:
    answers = iter(["a", "bb", "ccc", "dddd"])
    server.set_responder(lambda request, i: {"answer": next(answers)})
    bon.configure(lm=make_lm())

    def longest(inputs: dict[str, Any], prediction: Any) -> float:
        return float(len(prediction.answer))

    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=longest)
    prediction = best(question="q")
    assert prediction.answer == "ccc" and len(prediction.candidates) == 3
    assert len(server.requests) == 3  # one request per rollout

    server.reset()
    server.set_responder(lambda request, i: {"answer": "x" * (i + 1)})
    batched = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=longest, sampling="batched")
    assert batched(question="another").answer == "xxxx"
    assert len(server.requests) == 1 and server.requests[0].n == 4  # one request for every choice


def test_the_backend_and_an_lm_using_it_pickle_without_clients(make_lm: MakeLM, server: Any) -> None:
    lm = make_lm(cache=False)
    lm(messages=MESSAGES)  # opens the background loop's client
    copy = pickle.loads(pickle.dumps(plugin.backend))
    assert copy._clients == {} and copy.max_connections == plugin.backend.max_connections
    restored = pickle.loads(pickle.dumps(lm))
    assert restored.backend is plugin.backend  # resolved again through the registry
    assert "api_key" not in restored.kwargs  # the kernel never pickles secrets


def test_a_forked_child_opens_its_own_connections(server: Any, secret_key: str) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import bestofn_core as bon
        bon.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        lm = bon.LM("openai-http/fork", api_base={server.url!r}, api_key={secret_key!r}, cache=False)
        assert lm(messages=[{{"role": "user", "content": "parent"}}])
        backend = lm.backend
        pid = os.fork()
        if pid == 0:
            ok = backend._clients == {{}} and lm(messages=[{{"role": "user", "content": "child"}}])
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert lm(messages=[{{"role": "user", "content": "parent again"}}])
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(r.last_user_text for r in server.requests) == ["child", "parent", "parent again"]

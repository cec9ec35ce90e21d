"""Shared fixtures: a real OpenAI-compatible server on 127.0.0.1 and isolated settings, cache and plugins."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# before anything imports litellm or the cache: no network at import, no writes to the real home
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("BESTOFN_CACHE_DIR", tempfile.mkdtemp(prefix="bestofn-test-cache-"))

import pytest

import bestofn_core as bon
from bestofn_core.lm.cache import configure_cache
from bestofn_core.testing.openai_server import OpenAICompatServer

#: The module name test modules import the plugin-distribution fixtures by
#: (``import bestofn_tests_plugin_fixtures as plugin_fixtures``): tests/ is no package and pytest runs in
#: importlib mode, so the file is loaded here, once, before any test module is imported.
PLUGIN_FIXTURES = "bestofn_tests_plugin_fixtures"
#: The same for the prompt cases recorded from DSPy (``import bestofn_tests_dspy_prompts as dspy_prompts``).
DSPY_PROMPTS = "bestofn_tests_dspy_prompts"


def _load_fixture_module(name: str, path: Path) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_FIXTURES = Path(__file__).resolve().parent / "fixtures"
_load_fixture_module(PLUGIN_FIXTURES, _FIXTURES / "plugin_dists" / "plugin_fixtures.py")
_load_fixture_module(DSPY_PROMPTS, _FIXTURES / "dspy_prompts" / "cases.py")


@pytest.fixture(scope="session")
def lm_server() -> Iterator[OpenAICompatServer]:
    """One server for the whole session (fast); `server` resets it for each test."""
    with OpenAICompatServer() as server:
        yield server


@pytest.fixture
def server(lm_server: OpenAICompatServer) -> Iterator[OpenAICompatServer]:
    """The session's server, reset before and after the test."""
    lm_server.reset()
    yield lm_server
    lm_server.reset()


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Any) -> Iterator[None]:
    """Fresh settings and a fresh, test-local response cache for every test."""
    bon.settings.reset()
    configure_cache(disk_cache_dir=tmp_path / "cache")
    yield
    bon.settings.reset()


@pytest.fixture
def make_lm(server: OpenAICompatServer) -> Callable[..., bon.LM]:
    """Build an LM pointed at the test server, sent through the built-in litellm backend.

    Pinned with ``backend=``: once installed, the bestofn-openai-http plugin serves ``openai/`` model
    strings, and the kernel's tests test the kernel with its own backend whatever else is installed.
    """

    def make(model: str = "openai/test-model", **kwargs: Any) -> bon.LM:
        kwargs.setdefault("backend", "litellm:litellm")
        kwargs.setdefault("api_key", "sk-test-key")
        kwargs.setdefault("retry_base_delay", 0.01)
        return bon.LM(model, api_base=server.url, **kwargs)

    return make


@pytest.fixture
def lm(make_lm: Callable[..., bon.LM]) -> bon.LM:
    """An LM pointed at the test server, configured as the default."""
    model = make_lm()
    bon.configure(lm=model)
    return model


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """For ``bestofn`` commands: no configuration file or LM from the developer's machine, a key litellm
    accepts, and a test-local response cache (inherited by subprocesses)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BESTOFN_CONFIG", raising=False)
    monkeypatch.delenv("BESTOFN_LM", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test")
    monkeypatch.setenv("BESTOFN_CACHE_DIR", str(tmp_path / "cache"))

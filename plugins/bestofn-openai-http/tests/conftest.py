"""Fixtures of the openai_http tests: a real OpenAI-compatible server, isolated settings and cache."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# before bestofn_core (and litellm) are imported: no network at import, no writes to the real home
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["BESTOFN_CACHE_DIR"] = tempfile.mkdtemp(prefix="bestofn-openai-http-test-cache-")

import pytest

import bestofn_core as bon
from bestofn_core.lm.cache import configure_cache
from bestofn_core.plugins import reset_plugins
from bestofn_core.testing.openai_server import OpenAICompatServer

# The API key the tests send; tests check it never shows up in errors or logs.
SECRET_KEY = "sk-test-SECRET-7f3a9c"


@pytest.fixture
def secret_key() -> str:
    """The API key ``make_lm`` sends by default."""
    return SECRET_KEY


@pytest.fixture(scope="session")
def lm_server() -> Iterator[OpenAICompatServer]:
    """One server for the session; ``server`` resets it around each test."""
    with OpenAICompatServer() as server:
        yield server


@pytest.fixture
def server(lm_server: OpenAICompatServer) -> Iterator[OpenAICompatServer]:
    """The session's server, reset before and after the test."""
    lm_server.reset()
    yield lm_server
    lm_server.reset()


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh settings, a test-local response cache, the installed plugins, and no OpenAI env vars."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "BESTOFN_LOAD_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    bon.settings.reset()
    configure_cache(disk_cache_dir=tmp_path / "cache")
    reset_plugins()
    yield
    bon.settings.reset()
    reset_plugins()


@pytest.fixture
def make_lm(server: OpenAICompatServer) -> Callable[..., bon.LM]:
    """Build an LM served by this plugin and pointed at the test server."""

    def make(model: str = "openai-http/test-model", **kwargs: Any) -> bon.LM:
        kwargs.setdefault("api_key", SECRET_KEY)
        kwargs.setdefault("retry_base_delay", 0.01)
        kwargs.setdefault("api_base", server.url)
        return bon.LM(model, **kwargs)

    return make

"""Fixtures for the bestofn-rewards tests: isolated settings and cache, and a plugin manager that loads
only this distribution's entry point (so a bare name is not made ambiguous by other installed plugins)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# before anything imports litellm or the cache: no network at import, no writes to the real home
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("BESTOFN_CACHE_DIR", tempfile.mkdtemp(prefix="bestofn-rewards-test-cache-"))

import pytest

import bestofn_core as bon
from bestofn_core.lm.cache import configure_cache
from bestofn_core.plugins import reset_plugins


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path) -> Iterator[None]:
    """Fresh settings and a test-local response cache for every test."""
    bon.settings.reset()
    configure_cache(disk_cache_dir=tmp_path / "cache")
    yield
    bon.settings.reset()


@pytest.fixture
def only_text_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A plugin manager built from the installed entry points, loading only ``text`` (plus built-ins)."""
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "text")
    reset_plugins()
    yield
    reset_plugins()  # the next test builds its manager from the restored environment


@pytest.fixture
def no_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A plugin manager with the built-ins only, for registering this package in-process."""
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "")
    reset_plugins()
    yield
    reset_plugins()

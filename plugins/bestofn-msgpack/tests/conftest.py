"""Fixtures for bestofn-msgpack's tests: isolated settings, cache and plugin manager for every test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# before anything imports litellm or the cache: no network at import, no writes to the real home
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("BESTOFN_CACHE_DIR", tempfile.mkdtemp(prefix="bestofn-msgpack-test-cache-"))

import pytest

import bestofn_core as bon
from bestofn_core.lm.cache import configure_cache
from bestofn_core.plugins import reset_plugins


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh settings, cache and plugins; the plugin env vars as the test sets them, and only then."""
    for name in ("BESTOFN_LOAD_PLUGINS", "BESTOFN_BLOCK_PLUGINS", "BESTOFN_STRICT_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    bon.settings.reset()
    configure_cache(disk_cache_dir=tmp_path / "cache")
    reset_plugins()
    yield
    bon.settings.reset()
    # the env vars come back after this fixture; the next test (of any suite) rebuilds the manager
    reset_plugins()

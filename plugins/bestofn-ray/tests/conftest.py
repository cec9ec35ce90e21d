"""Fixtures: one real local Ray cluster for the session, the OpenAI-compatible test server, fresh settings."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

# Before bestofn_core (litellm, the response cache) is imported, and before Ray starts: the local Ray
# workers inherit the driver's environment from ray.init, so they see these values too.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("BESTOFN_CACHE_DIR", tempfile.mkdtemp(prefix="bestofn-ray-test-cache-"))
# The workers must get their API key only the ways these tests choose (see ray_cluster and the secrets
# test), never by inheriting one from whoever runs the tests.
os.environ.pop("OPENAI_API_KEY", None)

import pytest

import bestofn_core as bon
from bestofn_core.lm.cache import configure_cache
from bestofn_core.testing.openai_server import OpenAICompatServer

#: The API key the workers find in their own environment (set for the whole Ray job by ray_cluster).
WORKER_KEY = "sk-worker-environment-key"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A fresh local Ray cluster with 2 CPUs, shut down at the end of the session.

    Its workers have ``OPENAI_API_KEY=WORKER_KEY`` in their environment, as the nodes of a real cluster
    would (set there with ``ray start`` or the job's runtime_env), and nothing else from a driver's LM.
    """
    import ray

    if ray.is_initialized():  # pragma: no cover - another plugin's tests left Ray running
        ray.shutdown()
    ray.init(
        address="local",  # never a cluster that RAY_ADDRESS might name
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
        runtime_env={"env_vars": {"OPENAI_API_KEY": WORKER_KEY}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def worker_key() -> str:
    """The API key in the environment of every Ray worker of the session."""
    return WORKER_KEY


@pytest.fixture(scope="session")
def lm_server() -> Iterator[OpenAICompatServer]:
    """One server on 127.0.0.1 for the session; the local Ray workers reach it like the driver does."""
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
    """Fresh settings and a test-local response cache in the driver for every test."""
    bon.settings.reset()
    configure_cache(disk_cache_dir=tmp_path / "cache")
    yield
    bon.settings.reset()


@pytest.fixture
def make_lm(server: OpenAICompatServer) -> Callable[..., bon.LM]:
    """Build an LM pointed at the test server.

    ``cache=False``: the workers share one on-disk cache for the whole session, and a cached answer
    would never reach the server whose requests the tests inspect.
    """

    def make(model: str = "openai/test-model", **kwargs: Any) -> bon.LM:
        kwargs.setdefault("retry_base_delay", 0.01)
        kwargs.setdefault("cache", False)
        return bon.LM(model, api_base=server.url, **kwargs)

    return make

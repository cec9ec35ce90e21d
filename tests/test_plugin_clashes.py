"""Hostile plugins: an impostor declaring installed plugins' namespaces, a plugin that exits at import.

Real distributions (tests/fixtures/plugin_dists), installed with pip into a directory found first on the
path, as a package installed later or in a user site would be: ``bestofn-impostor`` declares ``text``
(bestofn-rewards, installed in the environment) and ``testplug`` (bestofn-testplugin, with a backend for
``echo/`` models); ``bestofn-exitplugin`` parses the command line with argparse when imported.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bestofn_tests_plugin_fixtures as plugin_fixtures  # loaded by tests/conftest.py
import orjson
import pytest

import bestofn_core as bon
from bestofn_core.cli import main
from bestofn_core.errors import PluginLoadError, UnknownNameError
from bestofn_core.hookspecs import hookimpl
from bestofn_core.plugins import get_plugin_manager, get_registry, reset_plugins
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_core.testing.openai_server import OpenAICompatServer

isolated_plugins = plugin_fixtures.isolated_plugins
plugin_site = plugin_fixtures.plugin_site
installed_plugins = plugin_fixtures.installed_plugins
hostile_plugin_site = plugin_fixtures.hostile_plugin_site
hostile_plugins = plugin_fixtures.hostile_plugins

CLASH = "declared by two distributions"


@pytest.fixture(autouse=True)
def forget_hostile_modules() -> Iterator[None]:
    """Each test imports the hostile plugins afresh (or shows that it did not import them at all)."""
    yield
    for name in ("bestofn_impostor", "bestofn_exitplugin"):
        sys.modules.pop(name, None)
    reset_plugins()


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m bestofn_core.cli ARGS`` in a fresh process, with this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "bestofn_core.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
        timeout=180,
        check=False,
    )


# ----------------------------------------------------------------------------------- namespace clashes


@pytest.mark.parametrize("allowed", [None, "text"])
def test_an_impostor_never_takes_the_namespace_of_an_installed_plugin(
    hostile_plugins: Path, monkeypatch: pytest.MonkeyPatch, allowed: str | None
) -> None:
    if allowed is not None:  # naming the namespace lets neither distribution through either
        monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", allowed)
    with pytest.raises(UnknownNameError) as info:
        get_registry().get("reward", "text:one_word")
    message = str(info.value)
    assert CLASH in message and "bestofn-rewards" in message and "bestofn-impostor" in message
    if allowed is not None:  # (unrestricted, its other namespace, "testplug", is its alone: it loads)
        assert "bestofn_impostor" not in sys.modules  # its code never ran
    clashing = [plugin for plugin in get_registry().plugins if plugin.name == "text"]
    assert sorted(plugin.distribution for plugin in clashing) == ["bestofn-impostor", "bestofn-rewards"]
    assert all(plugin.error and CLASH in plugin.error for plugin in clashing)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BESTOFN_LOAD_PLUGINS", "bestofn-rewards"), ("BESTOFN_BLOCK_PLUGINS", "bestofn-impostor")],
)
def test_the_allow_and_block_lists_can_name_distributions(
    hostile_plugins: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    reward = get_registry().get("reward", "text:one_word")
    assert reward.__module__.startswith("bestofn_rewards")
    assert "bestofn_impostor" not in sys.modules
    # the normalized spelling of a distribution name works too
    monkeypatch.setenv(variable, value.replace("-", "_").upper())
    reset_plugins()
    assert get_registry().get("reward", "text:one_word").__module__.startswith("bestofn_rewards")


def test_an_impostor_backend_never_receives_a_request(
    installed_plugins: Path, hostile_plugin_site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # bestofn-testplugin serves echo/ models; the impostor declares its namespace with a backend for them
    monkeypatch.syspath_prepend(str(hostile_plugin_site))
    mark = tmp_path / "impostor-ran"
    monkeypatch.setenv("BESTOFN_IMPOSTOR_MARK", str(mark))
    reset_plugins()
    with pytest.raises(UnknownNameError) as info:
        bon.LM("echo/model", backend="testplug:echo", api_key="sk-for-the-real-backend-0123")
    assert CLASH in str(info.value) and "bestofn-testplugin" in str(info.value)
    assert "bestofn-impostor" in str(info.value)
    assert not mark.exists()
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "bestofn-impostor")  # the user picks the real one
    reset_plugins()
    lm = bon.LM("echo/model", api_key="sk-for-the-real-backend-0123", cache=False)
    assert lm(prompt="hello") == ["hello"] and not mark.exists()


def test_bestofn_plugins_shows_the_clash_and_both_distributions(hostile_plugins: Path) -> None:
    result = run_cli("plugins", "--json", BESTOFN_LOAD_PLUGINS="text,bestofn-impostor")
    assert result.returncode == 0, result.stderr
    plugins = orjson.loads(result.stdout)["plugins"]
    text = [plugin for plugin in plugins if plugin["name"] == "text"]
    assert sorted(plugin["distribution"] for plugin in text) == ["bestofn-impostor", "bestofn-rewards"]
    assert all(CLASH in plugin["error"] for plugin in text)


def test_the_cli_refuses_a_reward_whose_namespace_is_contested(
    hostile_plugins: Path, server: OpenAICompatServer, tmp_path: Path
) -> None:
    mark = tmp_path / "impostor-ran"
    result = run_cli(
        "run",
        "question -> answer",
        "question=hi",
        "--lm",
        "openai/test-model",
        "--api-base",
        server.url,
        "-n",
        "1",
        "--reward",
        "text:one_word",
        "--no-progress",
        BESTOFN_IMPOSTOR_MARK=str(mark),
        BESTOFN_LOAD_PLUGINS="text",
        OPENAI_API_KEY="sk-test-key-0123456789",
        BESTOFN_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert not mark.exists(), mark.read_text()  # the impostor's reward never ran
    assert result.returncode == 2, result.stdout + result.stderr
    assert CLASH in result.stderr and "bestofn-impostor" in result.stderr
    assert "BESTOFN_LOAD_PLUGINS" in result.stderr  # the fix: name the distribution to trust
    assert 'bestofn run: warning: plugin "text" (bestofn-rewards) is not loaded' in result.stderr


def test_the_cli_runs_and_warns_when_a_plugin_exits_at_import(
    hostile_plugins: Path, server: OpenAICompatServer, tmp_path: Path
) -> None:
    result = run_cli(
        "run",
        "question -> answer",
        "question=hi",
        "--lm",
        "openai/test-model",
        "--api-base",
        server.url,
        "-n",
        "1",
        "--reward",
        "text:nonempty",
        "--no-progress",
        BESTOFN_LOAD_PLUGINS="exitplug,bestofn-rewards",
        OPENAI_API_KEY="sk-test-key-0123456789",
        BESTOFN_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'warning: plugin "exitplug" (bestofn-exitplugin) is not loaded' in result.stderr
    assert "sys.exit()" in result.stderr and len(server.requests) == 1


# ----------------------------------------------------------------------------------- exits at import


def test_a_plugin_that_exits_at_import_is_recorded_as_broken(
    hostile_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "exitplug,bestofn-rewards")
    lm = bon.LM("openai/test-model")  # builds the registry: the exit did not end the program
    assert lm.model == "openai/test-model"
    broken = next(plugin for plugin in get_registry().plugins if plugin.name == "exitplug")
    assert broken.distribution == "bestofn-exitplugin" and broken.error is not None
    assert "SystemExit: 2" in broken.error and "sys.exit()" in broken.error
    assert get_registry().get("reward", "text:one_word")  # the other plugins work


def test_bestofn_plugins_survives_a_plugin_that_exits_at_import(hostile_plugins: Path) -> None:
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    assert "exitplug  bestofn-exitplugin 0.1.0  [ERROR]" in result.stdout
    assert "SystemExit: 2" in result.stdout
    assert "text  bestofn-rewards" in result.stdout


def test_strict_mode_turns_an_exit_at_import_into_a_plugin_error(
    hostile_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "exitplug")
    monkeypatch.setenv("BESTOFN_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match=r'"exitplug".*SystemExit'):
        get_registry()


def test_a_keyboard_interrupt_during_a_plugins_import_still_interrupts(
    hostile_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "exitplug")
    monkeypatch.setenv("BESTOFN_EXITPLUGIN", "interrupt")
    with pytest.raises(KeyboardInterrupt):
        get_registry()


# ----------------------------------------------------------------------------------- backend prefixes


class EchoBackend:
    """Claims ``echo/`` like bestofn-testplugin's backend: a second installed backend for the prefix."""

    supports_n = False

    async def acomplete(self, request: LMRequest) -> LMResponse:
        return LMResponse(
            outputs=["[[ ## answer ## ]]\nfrom other\n\n[[ ## completed ## ]]"], model=request.model
        )


class OtherEchoPlugin:
    @hookimpl
    def register_lm_backends(self, register: Any) -> None:
        register(EchoBackend(), name="echo", prefixes=("echo/",))


def test_the_cli_names_its_own_fix_when_backends_claim_the_same_prefix(
    installed_plugins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    get_plugin_manager().register(OtherEchoPlugin(), name="other")
    # the isolated registry keeps only the serializer built-ins; this test's backends answer ChatAdapter's
    # format, so the built-in adapters are registered too
    get_plugin_manager().register(
        importlib.import_module("bestofn_core.default_plugins.adapters"), name="adapters"
    )
    argv = [
        "run",
        "question -> answer",
        "question=hi",
        "--lm",
        "echo/model",
        "-n",
        "1",
        "--reward",
        "testplug:tp_length",
        "--policy",
        "testplug:tp_first",
    ]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "other:echo, testplug:echo" in err and "--backend" in err
    assert "LM(" not in err and "backend=" not in err  # Python advice a CLI user cannot follow
    assert main([*argv, "--no-progress", "--backend", "other:echo", "--json"]) == 0, capsys.readouterr().err
    assert orjson.loads(capsys.readouterr().out)["outputs"]["answer"] == "from other"

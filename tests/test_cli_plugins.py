"""The `bestofn` command line: `bestofn plugins`, `--version`, `--help` and usage errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bestofn_tests_plugin_fixtures as plugin_fixtures  # loaded by tests/conftest.py
import orjson
import pytest

from bestofn_core._version import __version__
from bestofn_core.cli import main
from bestofn_core.hookspecs import hookimpl
from bestofn_core.plugins import get_plugin_manager, reset_plugins

TESTS = Path(__file__).resolve().parent


isolated_plugins = plugin_fixtures.isolated_plugins
plugin_site = plugin_fixtures.plugin_site
installed_plugins = plugin_fixtures.installed_plugins


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m bestofn_core.cli ARGS`` in a fresh process, with this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "bestofn_core.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def plugins_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["plugins", "--json", *args]) == 0
    document: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    return document


def test_plugins_lists_entry_point_plugins_with_errors(
    installed_plugins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins"]) == 0  # broken plugins are shown, not fatal
    out = capsys.readouterr().out
    assert "testplug  bestofn-testplugin 0.1.0\n" in out
    assert f"location: {installed_plugins}" in out
    assert "rewards: testplug:tp_length, testplug:tp_max_words" in out
    assert "serializers: testplug:testfmt" in out and "executors: testplug:tp_serial" in out
    assert "LM backends: testplug:echo (echo/)\n" in out and "selection policies: testplug:tp_first" in out
    assert "brokenplug  bestofn-brokenplugin 0.1.0  [ERROR]" in out
    assert "    Traceback (most recent call last):" in out
    assert "ImportError: bestofn_brokenplugin needs the package" in out
    assert "raisingplug  bestofn-raisingplugin 0.1.0  [ERROR]" in out
    assert "RuntimeError: raisingplug's reward hook is broken on purpose" in out
    assert "json" not in out.split("Built-in plugins are hidden")[0].split()  # built-ins hidden
    assert "`bestofn plugins --all`" in out


def test_plugins_all_includes_builtins(installed_plugins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"json  built-in (bestofn-core {__version__})" in out
    assert "serializers: json:json" in out and "serializers: pickle:pickle" in out
    assert "testplug  bestofn-testplugin 0.1.0" in out


def test_plugins_json(installed_plugins: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = plugins_json(capsys)
    assert document["bestofn_core_version"] == __version__ and document["entry_point_group"] == "bestofn"
    by_name = {plugin["name"]: plugin for plugin in document["plugins"]}
    assert set(by_name) == {"testplug", "brokenplug", "raisingplug"}
    testplug = by_name["testplug"]
    assert testplug["distribution"] == "bestofn-testplugin" and testplug["version"] == "0.1.0"
    assert testplug["module"] == "bestofn_testplugin" and testplug["builtin"] is False
    assert testplug["location"].startswith(str(installed_plugins))
    assert testplug["registered"]["serializer"] == ["testplug:testfmt"] and testplug["error"] is None
    assert "ImportError" in by_name["brokenplug"]["error"] and by_name["brokenplug"]["blocked"] is False
    assert by_name["raisingplug"]["registered"]["selection_policy"] == ["raisingplug:rp_last"]

    assert document["lm_backend_prefixes"] == {"testplug:echo": ["echo/"]}

    everything = plugins_json(capsys, "--all")
    assert {"json", "pickle"} <= {plugin["name"] for plugin in everything["plugins"]}


def test_a_backend_without_a_prefix_is_shown_as_the_fallback() -> None:
    from bestofn_core.cli.plugins_command import _with_prefixes

    assert _with_prefixes("a:b", {"a:b": ["x/", "y/"]}) == "a:b (x/, y/)"
    assert _with_prefixes("litellm:litellm", {"litellm:litellm": []}) == (
        "litellm:litellm (every model string, as the fallback)"
    )


def test_plugins_json_in_a_subprocess_keeps_stdout_clean(installed_plugins: Path) -> None:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    document = orjson.loads(result.stdout)
    assert {plugin["name"] for plugin in document["plugins"]} == {"testplug", "brokenplug", "raisingplug"}
    assert "brokenplug" not in result.stderr  # load failures are in the document, not repeated as warnings


def test_plugins_shows_blocked_plugins(
    installed_plugins: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "brokenplug")
    reset_plugins()
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "brokenplug  bestofn-brokenplugin 0.1.0  [BLOCKED by BESTOFN_BLOCK_PLUGINS]" in out
    assert "BESTOFN_LOAD_PLUGINS='testplug,brokenplug,raisingplug': other plugins are not loaded." in out


def test_plugins_shows_in_process_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    class InProcess:
        @hookimpl
        def register_executors(self, register: Any) -> None:
            register(self, name="inline")

        def open(self, *, num_workers: int) -> Any:
            return None

    get_plugin_manager().register(InProcess(), name="inproc")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "inproc  registered in-process" in out and "executors: inproc:inline" in out


def test_plugins_with_nothing_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    assert capsys.readouterr().out.startswith("No plugins installed.\n")


def test_plugins_in_strict_mode_fails_with_the_error(
    installed_plugins: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BESTOFN_STRICT_PLUGINS", "1")
    reset_plugins()
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert "PluginLoadError" in err and "brokenplug" in err and "BESTOFN_STRICT_PLUGINS is set" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bestofn-core {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["plugins", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("bestofn")
    assert message in captured.err and "--help" in captured.err


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: bestofn" in out and "plugins" in out


@pytest.mark.parametrize("argv", [["--help"], ["plugins", "--help"], ["--version"]])
def test_help_imports_no_plugin_and_no_litellm(argv: list[str], installed_plugins: Path) -> None:
    code = (
        "import sys\n"
        "from bestofn_core.cli import main\n"
        f"code = main({argv!r})\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('litellm', 'openai', 'bestofn_testplugin')\n"
        "               or m.startswith('bestofn_core.default_plugins') or m == 'bestofn_core.plugins')\n"
        "print(heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = dict(os.environ)
    del env["BESTOFN_LOAD_PLUGINS"]  # unset: every entry point would load if anything asked
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_console_script(installed_plugins: Path) -> None:
    script = Path(sys.executable).parent / ("bestofn.exe" if os.name == "nt" else "bestofn")
    if not script.exists():
        pytest.skip("the bestofn console script is not installed in this environment")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == f"bestofn-core {__version__}"


def test_module_entry_point_bad_usage() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("bestofn: error: argument COMMAND: invalid choice: 'frobnicate'")

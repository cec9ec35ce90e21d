"""The first-party plugins are written the way a third party would: only public kernel modules."""

from __future__ import annotations

import ast
import asyncio
import contextvars
import threading
from pathlib import Path

import bestofn_core as bon
from bestofn_core import _runner, runtime

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def private_kernel_imports(path: Path) -> list[str]:
    """Each ``bestofn_core`` module ``path`` imports whose dotted name has a part starting with ``_``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bestofn_core" and any(part.startswith("_") for part in parts[1:]):
                found.append(f"{path.relative_to(PLUGINS)}:{node.lineno}: {name}")
    return found


def test_plugin_packages_import_no_private_kernel_module() -> None:
    sources = sorted(PLUGINS.glob("*/bestofn_*/**/*.py"))
    assert len(sources) > 20  # every plugin package was found
    offenders = [line for path in sources for line in private_kernel_imports(path)]
    assert offenders == [], "plugins must use bestofn_core's public modules (e.g. bestofn_core.runtime)"


def test_runtime_runs_blocking_work_in_the_worker_pool_with_the_callers_settings() -> None:
    assert runtime.run_in_thread is _runner.run_in_thread and runtime.runner_loop is _runner.runner_loop
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    def blocking() -> tuple[str, str, object]:
        return threading.current_thread().name, marker.get(), bon.settings.lm

    async def main() -> tuple[str, str, object]:
        marker.set("caller's")
        return await runtime.run_in_thread(blocking)

    marker_lm = bon.LM("openai/marker-model")
    with bon.context(lm=marker_lm):
        thread, seen, lm = runtime.run_sync(main())
    assert thread.startswith("bestofn-worker") and seen == "caller's" and lm is marker_lm
    assert isinstance(runtime.runner_loop(), asyncio.AbstractEventLoop)

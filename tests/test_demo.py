"""The README's first command runs the demo: it must work offline against the bundled server."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_best_of_n_against_the_bundled_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bestofn_core.demo", "-n", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Answer: Brussels" in result.stdout
    assert "<- winner" in result.stdout
    assert "demo-key" not in result.stdout + result.stderr

"""The README's main job: ``bestofn run`` on the embedded model, in a fresh process, no server, no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson


def test_bestofn_run_samples_the_embedded_model_by_default(tmp_path: Path) -> None:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("BESTOFN_", "OPENAI_"))}
    environ.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # no configuration file: the default model is used
        BESTOFN_CACHE_DIR=str(tmp_path / "cache"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    command = [
        sys.executable, "-m", "bestofn_core.cli", "run", "question -> answer",
        "question=What is the capital of Belgium?", "-n", "3", "--reward", "text:one_word",
        "--max-tokens", "40", "--json", "--no-cache",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    document = orjson.loads(completed.stdout)
    assert document["lm"] == {"model": "local/smollm2", "source": "default"}
    candidates = document["candidates"]
    assert [candidate["rollout_id"] for candidate in candidates] == [0, 1, 2]
    # the JSON adapter's schema grammar: every attempt of a 135M model parses
    assert [candidate["error"] for candidate in candidates] == [None, None, None]
    assert all(isinstance(candidate["prediction"]["answer"], str) for candidate in candidates)
    assert len({candidate["prediction"]["answer"] for candidate in candidates}) > 1  # rollouts differ
    assert all(candidate["tokens"] > 0 for candidate in candidates)
    assert document["winner"]["reward"] == max(candidate["reward"] for candidate in candidates)

    # the same rollouts give the same answers, from the model itself (the response cache is off)
    again = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=300, check=False)
    assert [candidate["prediction"] for candidate in orjson.loads(again.stdout)["candidates"]] == [
        candidate["prediction"] for candidate in candidates
    ]


def test_what_bestofn_run_prints_is_not_lost_while_the_model_loads(tmp_path: Path) -> None:
    # the second run answers rollout 0 from the response cache at once and cancels the other attempts
    # while the fresh process is still loading the model: llama.cpp must not swallow the table then
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("BESTOFN_", "OPENAI_"))}
    environ.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        BESTOFN_CACHE_DIR=str(tmp_path / "cache"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    command = [
        sys.executable,
        "-m",
        "bestofn_core.cli",
        "run",
        "question -> answer",
        "question=What is the capital of Belgium?",
        "-n",
        "5",
        "--reward",
        "text:one_word",
        "--threshold",
        "1.0",
    ]  # fmt: skip (the README's main job)
    for _ in range(3):
        completed = subprocess.run(
            command, capture_output=True, text=True, env=environ, timeout=300, check=False
        )
        assert completed.returncode == 0, completed.stderr
        assert "the winner (rollout 0" in completed.stdout, (completed.stdout, completed.stderr)

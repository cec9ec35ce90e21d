"""The README's main job: ``bestofn run`` on the embedded model, in a fresh process, no server, no key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest


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
    # the compact prompt (the backend's preferred adapter): the whole reply is the answer, so it parses
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


#: The README's first command, after the installs (tests/test_docs_site.py keeps the README verbatim).
README_JOB = ["run", "question -> answer", "question=What is the capital of Belgium?", "-n", "16"]
#: Ten first rollout ids, far apart: no two runs share a rollout, so each run is a fresh sample of 16.
SEEDS = range(0, 1000, 100)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 160 generations of the real model: minutes on 2 busy CPUs
def test_the_readme_job_answers_right_and_wrong_candidates_lose_over_ten_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bestofn_core.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the default model, as in the README
    for name in [name for name in os.environ if name.startswith(("BESTOFN_LM", "BESTOFN_CONFIG"))]:
        monkeypatch.delenv(name)
    right = []
    for seed in SEEDS:
        status = main([*README_JOB, "--seed", str(seed), "--no-cache", "--no-progress"])
        out = capsys.readouterr().out
        assert status == 0, out
        winner = out.splitlines()[0]
        table = out.split("\n\n")[1].splitlines()[1:]
        votes = {int(row.split()[2 if row.startswith("*") else 1]) for row in table}
        win_votes = int(next(row for row in table if row.startswith("*")).split()[2])
        assert win_votes == max(votes)  # every other answer had fewer votes: it lost
        right.append(bool(re.search(r"(?i)\bbrussels\b", winner)))
    print(f"right winners: {sum(right)} of {len(right)}")  # shown with -s
    assert sum(right) >= 9, right


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
    ]  # fmt: skip (a job that stops early: rollout 0 reaches the threshold)
    for _ in range(3):
        completed = subprocess.run(
            command, capture_output=True, text=True, env=environ, timeout=300, check=False
        )
        assert completed.returncode == 0, completed.stderr
        assert "the winner (rollout 0" in completed.stdout, (completed.stdout, completed.stderr)

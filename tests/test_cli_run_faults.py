"""`bestofn run --input/--output` when the machine fails it: a full disk, a file-size limit, a directory it
cannot write, an example slow enough to get a second (straggler) try, and input lines that are not objects.

The process is what matters here (its exit status, its one line on stderr, the bytes left in the output
file), so the command runs in a subprocess against the session's test server, through litellm.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bestofn_core.testing.openai_server import OpenAICompatServer, ReceivedRequest

SIGNATURE = "question -> answer"
pytestmark = pytest.mark.usefixtures("cli_environment")


def write_questions(path: Path, count: int) -> list[dict[str, str]]:
    examples = [{"question": f"question {index}"} for index in range(count)]
    path.write_bytes(b"".join(orjson.dumps(example) + b"\n" for example in examples))
    return examples


def run_file(
    server: OpenAICompatServer,
    source: Path,
    target: Path,
    *more: str,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``bestofn run SIGNATURE --input SOURCE --output TARGET ...`` in a subprocess, to its end."""
    command = [
        sys.executable,
        "-m",
        "bestofn_core.cli",
        "run",
        SIGNATURE,
        "--input",
        str(source),
        "--output",
        str(target),
        "--reward",
        "text:one_word",
        "--lm",
        "openai/test",
        "--api-base",
        server.url,
        "--no-progress",
        "--no-cache",
        *more,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=180, preexec_fn=preexec_fn, env=dict(os.environ)
    )


def whole_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path``, each of which must be a whole JSON line (no torn bytes anywhere)."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"a torn last line: {data[-80:]!r}"
    return [orjson.loads(line) for line in data.splitlines()]


# ------------------------------------------------------------------------------------------ a full disk


def file_size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` that caps the files the process writes at ``limit`` bytes, like ``ulimit -f``.

    SIGXFSZ is ignored, as a shell's ``ulimit`` leaves it for most programs' purposes, so a write past the
    limit writes what fits and the next one fails with EFBIG: the same failure a full disk gives (ENOSPC).
    """

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def test_a_full_disk_stops_the_run_with_one_line_and_no_torn_line(
    server: OpenAICompatServer, tmp_path: Path
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    examples = write_questions(source, 15)
    limited = run_file(server, source, target, "-n", "1", preexec_fn=file_size_limit(4000))
    assert limited.returncode == 1, limited.stderr
    assert limited.stdout == ""  # no summary claiming answers the file does not hold
    assert len(limited.stderr.strip().splitlines()) == 1, limited.stderr
    assert str(target) in limited.stderr and "File too large" in limited.stderr
    assert "Traceback" not in limited.stderr
    kept = whole_lines(target)
    assert 0 < len(kept) < 15
    assert len({record["index"] for record in kept}) == len(kept)

    # space comes back: the rerun keeps every finished line, as it was, and runs only the rest
    before = target.read_bytes()
    rerun = run_file(server, source, target, "-n", "1")
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(kept)} already there, {15 - len(kept)} run now)" in rerun.stdout
    assert target.read_bytes().startswith(before)
    records = whole_lines(target)
    assert sorted(record["index"] for record in records) == list(range(15))
    assert all(record["inputs"] == examples[record["index"]] for record in records)


def test_an_output_file_at_the_size_limit_from_the_start_stops_at_the_first_line(
    server: OpenAICompatServer, tmp_path: Path
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_questions(source, 3)
    limited = run_file(server, source, target, "-n", "1", preexec_fn=file_size_limit(100))
    assert limited.returncode == 1
    assert "File too large" in limited.stderr and str(target) in limited.stderr
    assert target.read_bytes() == b""  # the bytes that fitted were taken back


# ------------------------------------------------------------------------------- a directory it cannot write


def without_root_privileges() -> None:
    """A ``preexec_fn`` that makes file permissions apply to root too (drops CAP_DAC_*).

    The tests run as root in CI, and root writes into a read-only directory: dropping the capabilities
    that override permission checks from the bounding set before ``exec`` makes the child an ordinary
    user as far as files go (a non-root user has none to drop).
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def can_drop_root_privileges() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import os; os.open('/', os.O_RDONLY)"],
        preexec_fn=without_root_privileges,
        capture_output=True,
    )
    return probe.returncode == 0


def test_retry_failed_in_a_directory_it_cannot_write_exits_2_naming_the_directory(
    server: OpenAICompatServer, tmp_path: Path
) -> None:
    if not can_drop_root_privileges():
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here, so permissions do not apply to this root process")
    directory = tmp_path / "results"
    directory.mkdir()
    source, target = tmp_path / "in.jsonl", directory / "out.jsonl"
    write_questions(source, 2)
    server.set_responder(
        lambda request, index: "garbage" if "question 1" in request.last_user_text else {"answer": "ok"}
    )
    assert run_file(server, source, target, "-n", "1").returncode == 1  # example 1 failed
    before = target.read_bytes()
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        retried = run_file(
            server, source, target, "-n", "1", "--retry-failed", preexec_fn=without_root_privileges
        )
    finally:
        directory.chmod(stat.S_IRWXU)
    assert retried.returncode == 2, retried.stderr
    assert len(retried.stderr.strip().splitlines()) == 1, retried.stderr
    assert retried.stderr.startswith("bestofn run: error: ")
    assert f"directory {directory}" in retried.stderr and "Permission denied" in retried.stderr
    assert ".tmp" not in retried.stderr  # the temporary file is not the user's to know about
    assert target.read_bytes() == before
    assert sorted(path.name for path in directory.iterdir()) == ["out.jsonl"]


# ------------------------------------------------------------------------------------- straggler tries


def slow_first_try(
    second_try_fails: bool,
) -> tuple[Callable[[ReceivedRequest], float], Callable[[ReceivedRequest, int], Any]]:
    """Latency and responder for one example whose first try outlasts a straggler timeout of 0.5 s.

    Requests in arrival order: one try's (1.5 s, garbage), the other's (2.5 s, ``ok`` or garbage). The
    command runs with ``--adapter json`` (no second LM call after an unparsable answer), so the first
    answer fails its try while the other try still runs, whichever try sent first: before its first
    request, JSONAdapter may import litellm to read the model's capabilities, which takes long enough
    for the straggler try to start and both to send together.
    """
    plan = {1: (1.5, False), 2: (2.5, not second_try_fails)}
    lock = threading.Lock()
    arrived: dict[int, int] = {}

    def latency(request: ReceivedRequest) -> float:
        with lock:
            arrived[id(request)] = len(arrived) + 1
            return plan.get(arrived[id(request)], (0.0, False))[0]

    def respond(request: ReceivedRequest, index: int) -> Any:
        with lock:
            answers = plan.get(arrived.get(id(request), 0), (0.0, False))[1]
        return {"answer": "ok"} if answers else "garbage"

    return latency, respond


@pytest.mark.parametrize("second_try_fails", [False, True])
def test_a_straggler_second_try_still_leaves_one_line_per_example(
    server: OpenAICompatServer, tmp_path: Path, second_try_fails: bool
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_questions(source, 1)
    latency, respond = slow_first_try(second_try_fails)
    server.set_latency(latency)
    server.set_responder(respond)
    result = run_file(server, source, target, "-n", "1", "--straggler-timeout", "0.5", "--adapter", "json")
    assert len(server.requests) == 2  # the second try did start
    records = whole_lines(target)
    assert [record["index"] for record in records] == [0]  # one line, whichever tries ran
    if second_try_fails:
        assert result.returncode == 1
        assert records[0]["error"] is not None and "1 failed" in result.stdout
    else:
        assert result.returncode == 0, result.stderr
        assert records[0]["outputs"] == {"answer": "ok"} and records[0]["error"] is None
    rerun = run_file(server, source, target, "-n", "1")
    assert rerun.returncode == result.returncode, rerun.stderr  # the file is still a valid results file
    assert "(1 already there, 0 run now)" in rerun.stdout


# ------------------------------------------------------------------------------------- input lines


@pytest.mark.parametrize(
    ("line", "shown"),
    [("null", "null"), ("true", "true"), ("3", "the number 3"), ('"q"', "a string"), ("[1]", "an array")],
)
def test_an_input_line_that_is_not_an_object_is_named_as_json_names_it(
    server: OpenAICompatServer, tmp_path: Path, line: str, shown: str
) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"question": "a"}\n' + line + "\n")
    result = run_file(server, source, target)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{source}, line 2: expected a JSON object of input fields such as" in result.stderr
    assert f"got {shown}" in result.stderr
    assert "NoneType" not in result.stderr and "JSON list" not in result.stderr
    assert not target.exists()

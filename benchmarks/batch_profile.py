"""Where the client's time goes in the batch benchmark's comparison (optional, needs py-spy).

Run from the repository root, after ``bash benchmarks/run_batch.sh`` has created the environment::

    benchmarks/.venv/bin/pip install py-spy
    benchmarks/.venv/bin/python benchmarks/batch_profile.py [--library ours] [--repeats 10] [--top 30]

It starts the batch test server (100 ms latency) as a separate process, runs ``batch_worker.py LIBRARY
compare`` (64 questions x N=4, ``batch(num_threads=8)``) under ``py-spy record --gil --threads``
(samples taken while a thread holds the GIL, i.e. Python work), drops import stacks, and prints the
batches' wall and CPU times, the share of samples per thread, per area and per function (inclusive).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import LIBRARIES, ROOT, child_env, test_server
from batch import LATENCY_S, WORKER

#: (area, substring that puts a sample's stack in it), first match wins
AREAS = (
    ("litellm: cost calculation (no price for the model)", "cost_calculator"),
    ("litellm: model-info lookups", "get_model_info"),
    ("litellm: openai SDK / httpx / aiohttp (building, sending, reading)", "openai/_base_client"),
    ("litellm: logging and success handlers", "litellm_logging"),
    ("litellm: other (dispatch, transforms, response conversion)", "litellm/"),
    ("sync reward_fn hop to a worker thread (_runner.run_in_thread)", "run_in_thread"),
    ("Module.deepcopy of each attempt's program", "Module.deepcopy"),
    ("bestofn_core: adapters (prompt formatting, parsing)", "bestofn_core/adapters/"),
    ("bestofn_core: batch engine (parallel/)", "bestofn_core/parallel/"),
    ("bestofn_core: other (BestOfN, Predict, LM, settings, callbacks)", "bestofn_core/"),
    ("DSPy (all)", "dspy/"),
)
_FRAME = re.compile(r"(?P<function>.*) \((?P<file>[^()]*?):\d+\)$")
_THREAD = re.compile(r"^(?:process \d+:\"[^\"]*\";)?thread \((?:0x[0-9a-fA-F]+|\d+)\)(?:: (?P<name>[^;]*))?")


def _short(path: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _thread(stack: str) -> str:
    match = _THREAD.match(stack)
    name = match["name"] if match and match["name"] else "(unnamed)"
    return re.sub(r"_\d+$", "_N", name)  # pool threads together


def analyse(raw: Path, top: int) -> None:
    """Print sample shares per thread, per area and the top inclusive functions of a py-spy raw file."""
    threads: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "_find_and_load" in stack or "Harness.__init__" in stack:
            continue
        count = int(count_text)
        total += count
        threads[_thread(stack)] += count
        areas[next((name for name, key in AREAS if key in stack), "other (event loop, stdlib)")] += count
        seen: set[str] = set()
        for frame in stack.split(";")[1:]:
            match = _FRAME.match(frame)
            if match and "threading.py" not in match["file"]:
                key = f"{_short(match['file'])}:{match['function']}"
                if key not in seen:
                    seen.add(key)
                    functions[key] += count
    if not total:
        print("no samples")
        return
    print(f"\n{total} samples (GIL held), imports excluded")
    print("\nby thread:")
    for name, count in threads.most_common(8):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\nby area (self + callees):")
    for name, count in areas.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\ntop {top} functions (inclusive):")
    for name, count in functions.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    """Profile one library's comparison batches and print where the samples fall."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--library", default="ours", choices=list(LIBRARIES))
    parser.add_argument("--repeats", type=int, default=10, help="timed batches (default 10)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is not installed: benchmarks/.venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, test_server(LATENCY_S) as server:
        raw = Path(tmp) / "profile.txt"
        command = [
            py_spy,
            "record",
            "--gil",
            "--threads",
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--",
            sys.executable,
            str(WORKER),
            args.library,
            "compare",
            "--url",
            server.url,
            "--repeats",
            str(args.repeats),
        ]
        completed = subprocess.run(command, env=child_env(), cwd=ROOT, capture_output=True, text=True)
        if completed.returncode != 0 or not raw.exists():
            sys.stderr.write(completed.stderr[-4000:])
            return 2
        results = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if results:
            result = json.loads(results[-1])
            print(f"{args.library} under py-spy, 64 questions x N=4, batch(num_threads=8), per timed batch:")
            for index, (wall, cpu) in enumerate(zip(result["seconds"], result["cpu_seconds"], strict=True)):
                loop = result["loop_cpu_seconds"][index]
                loop_text = f", event-loop thread CPU {loop:.2f} s" if loop is not None else ""
                print(f"  wall {wall:.3f} s, process CPU {cpu:.3f} s{loop_text}")
        analyse(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

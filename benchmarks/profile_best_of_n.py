"""Where bestofn-core's client CPU goes in the benchmark's CPU measurement (optional, needs py-spy).

Run from the repository root, after ``bash benchmarks/run_best_of_n.sh`` has created the environment::

    benchmarks/.venv/bin/pip install py-spy
    benchmarks/.venv/bin/python benchmarks/profile_best_of_n.py [--library ours] [--top 25]

It starts the test server (0 ms latency) as a separate process, runs ``best_of_n_worker.py LIBRARY cpu``
under ``py-spy record --gil --threads`` (samples taken while a thread holds the GIL, i.e. Python work),
drops the import and warm-up phases, and prints the share of samples per area and the functions that
take the most samples (inclusive), with their file and share.
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
from best_of_n import WORKER

#: (area, substring that puts a sample's stack in it), first match wins
AREAS = (
    ("Module.deepcopy (BestOfN._attempt_program copies each attempt's module)", "Module.deepcopy"),
    ("BestOfN._attempt_program (other)", "BestOfN._attempt_program"),
    ("sync reward_fn run in a worker thread (rewards.py -> _runner.run_in_thread)", "run_in_thread"),
    ("litellm: cost calculation", "cost_calculator"),
    ("litellm: openai/httpx/aiohttp client", "openai/_base_client"),
    ("litellm: logging and success handlers", "litellm_logging"),
    ("litellm: other (transforms, model info, executor hop)", "litellm/"),
    ("DSPy (all)", "dspy/"),
    ("bestofn_core: other (adapters, signatures, callbacks, settings, LM)", "bestofn_core/"),
)
_FRAME = re.compile(r"(?P<function>.*) \((?P<file>[^()]*?):\d+\)$")


def analyse(raw: Path, top: int) -> None:
    """Print sample shares per area and the top inclusive functions of a py-spy raw (collapsed) file."""
    areas: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "_find_and_load" in stack or "Harness.__init__" in stack or "cpu-warmup" in stack:
            continue
        if "measure_cpu" not in stack and "bestofn-event-loop" not in stack and "asyncio_" not in stack:
            continue
        count = int(count_text)
        total += count
        areas[next((name for name, key in AREAS if key in stack), "other (event loop, stdlib)")] += count
        seen: set[str] = set()
        for frame in stack.split(";")[1:]:
            match = _FRAME.match(frame)
            if match and "threading.py" not in match["file"]:
                key = f"{match['file']}:{match['function']}"
                if key not in seen:
                    seen.add(key)
                    functions[key] += count
    if not total:
        print("no samples")
        return
    print(f"{total} samples (GIL held) in the timed part")
    print("\nby area (self + callees):")
    for name, count in areas.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\ntop {top} functions (inclusive):")
    for name, count in functions.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    """Profile one library's CPU measurement and print where the samples fall."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--library", default="ours", choices=list(LIBRARIES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is not installed: benchmarks/.venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, test_server(0.0) as server:
        raw = Path(tmp) / "profile.txt"
        command = [
            py_spy,
            "record",
            "--gil",
            "--threads",
            "--rate",
            "500",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--",
            sys.executable,
            str(WORKER),
            args.library,
            "cpu",
            "--url",
            server.url,
            "--repeats",
            str(args.repeats),
            "--calls",
            str(args.calls),
        ]
        completed = subprocess.run(command, env=child_env(), cwd=ROOT, capture_output=True, text=True)
        if completed.returncode != 0 or not raw.exists():
            sys.stderr.write(completed.stderr[-4000:])
            return 2
        results = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if results:
            samples = json.loads(results[-1])["cpu_ms_per_attempt"]
            shown = ", ".join(f"{value:.2f}" for value in samples)
            print(f"{args.library}: client CPU per attempt by repeat (under py-spy), ms: {shown}")
        analyse(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

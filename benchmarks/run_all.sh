#!/usr/bin/env bash
# Every benchmark whose figures the docs state, one command from the repository root:
#
#     bash benchmarks/run_all.sh            # the full runs (about 30 minutes on 2 CPUs)
#     bash benchmarks/run_all.sh --quick    # a smoke run with small parameters (a few minutes);
#                                           # its results go to a temporary directory, not results/
#
# Prepares benchmarks/.venv once (see _env.sh), then runs, each with that environment's Python:
#   best_of_n.py  BestOfN N=8 against DSPy 3.4.1            -> results/best_of_n.{json,md}
#   sweep.py      wall time against N, with the plot        -> results/sweep.{json,md},
#                                                              docs/assets/benchmarks/wall_time_vs_n.png
#   batch.py      batch() of 64 x N=4 against DSPy; 1,000 x 8 -> results/batch.{json,md}
#   soak.py       2 x 10,000 BestOfN(N=4) calls via abatch  -> results/soak.{json,md}
#   llamacpp.py   the embedded model against N; 16 x 4 batch -> results/llamacpp.{json,md},
#                 (through run_llamacpp.sh, which adds         docs/assets/benchmarks/llamacpp_wall_time_vs_n.png
#                 llama.cpp and the model to the environment)
# A benchmark that fails does not stop the others. At the end it prints (and writes to
# results/run_all.md) each benchmark's exit status, its time and the targets it missed.
# Exit status: 0 when every benchmark met every target, 1 when a target was missed, 2 when a
# measurement failed (a benchmark exited 2, or otherwise abnormally).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh" || exit 2

benchmarks=(best_of_n sweep batch soak llamacpp)
declare -A options=()
if [ "${1:-}" = "--quick" ]; then
    BENCH_RESULTS_DIR="$(mktemp -d -t bench-quick.XXXXXX)"
    export BENCH_RESULTS_DIR
    echo "quick run: results go to $BENCH_RESULTS_DIR"
    options[best_of_n]="--repeats 2 --warmup 1 --cpu-repeats 2 --cpu-calls 4"
    options[sweep]="--ns 1,2,4 --repeats 2"
    options[batch]="--repeats 2 --questions 16 --scale-questions 100 --scale-runs 1 --scale-warmup-questions 16"
    options[soak]="--calls 300 --warmup-calls 32"
    options[llamacpp]="--ns 1,8 --repeats 1 --warmup 0 --batch-repeats 1"
elif [ $# -gt 0 ]; then
    echo "usage: bash benchmarks/run_all.sh [--quick]" >&2
    exit 2
fi
results="${BENCH_RESULTS_DIR:-benchmarks/results}"
mkdir -p "$results"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s)
statuses=()
for name in "${benchmarks[@]}"; do
    echo
    echo "=== $name ==="
    began=$(date +%s)
    # shellcheck disable=SC2086  # the options are words
    if [ "$name" = llamacpp ]; then
        bash benchmarks/run_llamacpp.sh ${options[$name]:-}  # it installs llama.cpp and the model first
    else
        "$venv/bin/python" "benchmarks/$name.py" ${options[$name]:-}
    fi
    status=$?
    statuses+=("$name $status $(($(date +%s) - began))")
done
total=$(($(date +%s) - started))

"$venv/bin/python" - "$results" "$total" "$load_before" "${statuses[@]}" <<'PY'
"""Summarise the statuses, write run_all.md, exit with the worst status (2 > 1 > 0)."""
import datetime
import json
import os
import sys
from pathlib import Path

results, total, load_before = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
meaning = {0: "every target met", 1: "target(s) missed", 2: "measurement failed"}
lines = [
    "# run_all.sh",
    "",
    f"Finished {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}: "
    f"{total // 60} min {total % 60} s in all. Load average (1, 5, 15 min) before: {load_before}; "
    f"after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}.",
    "",
    "| Benchmark | Exit status | Time, s | Targets missed |",
    "|---|---|---:|---|",
]
worst = 0
for entry in sys.argv[4:]:
    name, status_text, seconds = entry.split()
    status = int(status_text)
    worst = max(worst, status if status in (0, 1) else 2)
    missed = ""
    if status == 1:
        document = json.loads((results / f"{name}.json").read_text())
        missed = "; ".join(target["name"] for target in document["targets"] if not target["met"])
    lines.append(f"| {name} | {status} ({meaning.get(status, 'failed')}) | {seconds} | {missed} |")
report = "\n".join(lines) + "\n"
(results / "run_all.md").write_text(report)
print()
print(report)
sys.exit(worst)
PY
exit $?

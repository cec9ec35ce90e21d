#!/usr/bin/env bash
# Best-of-N benchmark, one command from the repository root:
#
#     bash benchmarks/run_best_of_n.sh [--repeats 7] [--cpu-repeats 5] [--cpu-calls 20]
#
# Creates benchmarks/.venv if it is missing, installs dspy==3.4.1 and this repository (editable) into it,
# then runs benchmarks/best_of_n.py with that environment's Python: bestofn-core against DSPy 3.4.1 on
# the same local test server, printing ratios and writing benchmarks/results/best_of_n.{json,md}.
# Nothing reaches the internet at run time (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
# Set BENCH_PYTHON to choose the interpreter the environment is created with (default: python3).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

exec "$venv/bin/python" benchmarks/best_of_n.py "$@"

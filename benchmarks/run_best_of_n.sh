#!/usr/bin/env bash
# Best-of-N benchmark, one command from the repository root:
#
#     bash benchmarks/run_best_of_n.sh [--repeats 7] [--cpu-repeats 5] [--cpu-calls 20]
#
# Creates benchmarks/.venv if it is missing and installs into it dspy==3.4.1, this repository and the
# openai_http backend plugin (both editable) and matplotlib (see _env.sh), then runs
# benchmarks/best_of_n.py with that environment's Python: bestofn-core (litellm and openai_http backends)
# against DSPy 3.4.1 (default and litellm engines) on the same local test server, printing ratios and
# writing benchmarks/results/best_of_n.{json,md}. About a minute and a half on 2 CPUs.
# Nothing reaches the internet at run time (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
# Set BENCH_PYTHON to choose the interpreter the environment is created with (default: python3).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

exec "$venv/bin/python" benchmarks/best_of_n.py "$@"

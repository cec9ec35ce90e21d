#!/usr/bin/env bash
# Batch benchmark, one command from the repository root:
#
#     bash benchmarks/run_batch.sh [--repeats 5] [--scale-runs 3] [--scale-num-threads 64] ...
#
# Creates benchmarks/.venv if it is missing (the same environment as run_best_of_n.sh), installs
# dspy==3.4.1 and this repository (editable) into it, then runs benchmarks/batch.py with that
# environment's Python: BestOfN's batch() in bestofn-core against DSPy 3.4.1 on the same local test
# server (64 questions x N=4, num_threads=8), then bestofn-core alone on 1,000 questions x N=8 with
# max_concurrency=64. Prints ratios and writes benchmarks/results/batch.{json,md}. About 3.5 minutes on
# 2 CPUs, plus about a minute for the first install. Nothing reaches the internet at run time
# (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
# Set BENCH_PYTHON to choose the interpreter the environment is created with (default: python3).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

exec "$venv/bin/python" benchmarks/batch.py "$@"

#!/usr/bin/env bash
# Batch benchmark, one command from the repository root:
#
#     bash benchmarks/run_batch.sh [--repeats 5] [--scale-runs 2] [--scale-num-threads 64] ...
#
# Prepares benchmarks/.venv (see _env.sh: dspy==3.4.1, this repository and the openai_http backend
# plugin editable, matplotlib), then runs benchmarks/batch.py with that environment's Python: BestOfN's
# batch() in bestofn-core (litellm and openai_http backends) against DSPy 3.4.1 (default and litellm
# engines) on the same local test server (64 questions x N=4, num_threads=8), then bestofn-core alone
# (both backends) on 1,000 questions x N=8 with max_concurrency=64. Prints ratios and writes
# benchmarks/results/batch.{json,md}. About 3.5 minutes on 2 CPUs, plus a minute or two for the first
# install. Nothing reaches the internet at run time (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
# Set BENCH_PYTHON to choose the interpreter the environment is created with (default: python3).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

exec "$venv/bin/python" benchmarks/batch.py "$@"

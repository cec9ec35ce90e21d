#!/usr/bin/env bash
# Wall time against N, one command from the repository root:
#
#     bash benchmarks/run_sweep.sh [--ns 1,2,4,8,16] [--repeats 5] [--warmup 1]
#
# Prepares benchmarks/.venv (see _env.sh: dspy==3.4.1, this repository and the openai_http backend
# plugin editable, matplotlib), then runs benchmarks/sweep.py with that environment's Python: one BestOfN
# call for each N, bestofn-core (litellm and openai_http backends) against DSPy 3.4.1 (default and
# litellm engines), 100 ms server latency. Writes benchmarks/results/sweep.{json,md} and the plot
# docs/assets/benchmarks/wall_time_vs_n.png. About a minute and a half on 2 CPUs.
# Nothing reaches the internet at run time (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

exec "$venv/bin/python" benchmarks/sweep.py "$@"

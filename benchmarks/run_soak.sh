#!/usr/bin/env bash
# Soak benchmark, one command from the repository root:
#
#     bash benchmarks/run_soak.sh [--calls 10000] [--rounds 2] [--libraries ours,ours-openai-http]
#
# Prepares benchmarks/.venv (see _env.sh), then runs benchmarks/soak.py with that environment's Python:
# 2 rounds of 10,000 BestOfN(N=4) calls through abatch with max_concurrency=128 against the local test
# server at 20 ms latency, for bestofn-core's litellm and openai_http backends, each in a fresh process:
# requests/s, p50/p99 wall time per call, peak RSS, RSS after each round, bounded history and cache.
# Writes benchmarks/results/soak.{json,md}. About 10 minutes on 2 CPUs (most of it the litellm backend).
# Nothing reaches the internet at run time (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

exec "$venv/bin/python" benchmarks/soak.py "$@"

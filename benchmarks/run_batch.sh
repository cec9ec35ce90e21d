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

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=benchmarks/.venv
export LITELLM_LOCAL_MODEL_COST_MAP=True

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    "${BENCH_PYTHON:-python3}" -m venv "$venv"
fi

# (re)install only when dspy 3.4.1 or this checkout's bestofn_core is not what the environment imports
if ! "$venv/bin/python" - <<'PY' 2>/dev/null; then
import importlib.metadata
import pathlib
import sys

import bestofn_core

assert importlib.metadata.version("dspy") == "3.4.1"
assert pathlib.Path(bestofn_core.__file__).resolve().parent == pathlib.Path("bestofn_core").resolve()
sys.exit(0)
PY
    echo "installing dspy==3.4.1 and bestofn-core (editable) into $venv (about a minute the first time)"
    log="$venv/install.log"
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check "dspy==3.4.1" -e . >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "installation failed; full log in $log" >&2
        exit 2
    fi
fi

exec "$venv/bin/python" benchmarks/batch.py "$@"

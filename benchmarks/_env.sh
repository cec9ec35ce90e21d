# Shared by the benchmark commands: make benchmarks/.venv with dspy==3.4.1 and this checkout (editable).
# Sourced, not run: it leaves the repository root as the working directory and $venv set.
# Set BENCH_PYTHON to choose the interpreter the environment is created with (default: python3).

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

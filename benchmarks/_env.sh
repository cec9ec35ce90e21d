# Shared by the benchmark commands: make benchmarks/.venv with dspy==3.4.1, this checkout (editable), the
# first-party openai_http backend plugin (editable, plugins/bestofn-openai-http) and matplotlib (plots).
# Sourced, not run: it leaves the repository root as the working directory and $venv set.
# Set BENCH_PYTHON to choose the interpreter the environment is created with (default: python3).

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=benchmarks/.venv
export LITELLM_LOCAL_MODEL_COST_MAP=True

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    "${BENCH_PYTHON:-python3}" -m venv "$venv"
fi

# (re)install only when the environment does not import dspy 3.4.1, this checkout's bestofn_core and
# bestofn_openai_http, and matplotlib
if ! "$venv/bin/python" - <<'PY' 2>/dev/null; then
import importlib.metadata
import pathlib
import sys

import bestofn_core
import bestofn_openai_http
import matplotlib

assert importlib.metadata.version("dspy") == "3.4.1"
assert pathlib.Path(bestofn_core.__file__).resolve().parent == pathlib.Path("bestofn_core").resolve()
plugin = pathlib.Path("plugins/bestofn-openai-http/bestofn_openai_http").resolve()
assert pathlib.Path(bestofn_openai_http.__file__).resolve().parent == plugin
# the backend is registered through the plugin's entry point
assert any(ep.name == "openai_http" for ep in importlib.metadata.entry_points(group="bestofn"))
sys.exit(0)
PY
    echo "installing dspy==3.4.1, bestofn-core and bestofn-openai-http (editable) and matplotlib into $venv" \
        "(a minute or two the first time)"
    log="$venv/install.log"
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check \
        "dspy==3.4.1" -e . -e plugins/bestofn-openai-http matplotlib >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "installation failed; full log in $log" >&2
        exit 2
    fi
fi

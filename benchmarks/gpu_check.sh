#!/usr/bin/env bash
# One call on a CUDA machine: find or make a Python environment, run the default 10k rank study on the GPU,
# compare its ranks with the CPU's on a sample of rows, print the time and the ratio to the naive loop.
#   bash benchmarks/gpu_check.sh                 # extra arguments go to benchmarks/gpu_check.py
# Environment, first that works: ./.venv (as `make` creates it); a python3 that already has torch and the
# project's dependencies; else a new ./.venv with `pip install -e .` (as the Makefile installs; needs the
# package registry). Exit status: 0 all ranks equal, 1 some differ, 2 no GPU / no environment / bad input.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, whatever is installed
DEPS="import torch, numpy, pandas, pyarrow, scipy, joblib, threadpoolctl, tqdm, click"

if [ -x .venv/bin/python ] && .venv/bin/python -c "$DEPS" 2>/dev/null; then
    PY=.venv/bin/python
elif command -v python3 >/dev/null && python3 -c "$DEPS" 2>/dev/null; then
    PY=python3
else
    BASE=$(command -v python3.11 || command -v python3 || true)
    if [ -z "$BASE" ]; then echo "error: no python3 found; install Python 3.11" >&2; exit 2; fi
    echo "creating .venv with $BASE and installing the project (pip install -e .) ..."
    if ! { "$BASE" -m venv .venv && .venv/bin/python -m pip install --quiet --upgrade pip \
           && .venv/bin/python -m pip install --quiet -e .; }; then
        echo "error: could not install the project into .venv (is the package registry reachable?)" >&2; exit 2
    fi
    PY=.venv/bin/python
fi

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: torch in $PY sees no CUDA GPU (torch $("$PY" -c 'import torch; print(torch.__version__)')); run this on a GPU machine" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "python: $PY ($("$PY" --version 2>&1)), torch $("$PY" -c 'import torch; print(torch.__version__)')"
exec "$PY" benchmarks/gpu_check.py --device cuda "$@"

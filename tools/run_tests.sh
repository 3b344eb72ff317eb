#!/usr/bin/env bash
# The test command of the README (and of CI): set up .venv if needed, then run the pytest suite, one worker per core
# (pytest-xdist; a module's tests share a worker: tests/conftest.py), each worker's torch on one thread.
source "$(dirname "$0")/setup_venv.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$PY" -m pytest -n auto --no-loadscope-reorder "$@"

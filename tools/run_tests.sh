#!/usr/bin/env bash
# The test command of the README (and of CI): set up .venv if needed, then run the pytest suite.
source "$(dirname "$0")/setup_venv.sh"
"$PY" -m pytest "$@"

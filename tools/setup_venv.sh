# Sourced by the README's two commands: makes .venv from requirements.txt when it is missing or
# when requirements.txt changed since it was made, and sets PY to its python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Setting up .venv from requirements.txt (first run: a few minutes)..."
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$wanted" > "$stamp"
fi
PY=.venv/bin/python

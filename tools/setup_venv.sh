# Sourced by the README's two commands: makes .venv from requirements.txt, every version pinned by
# requirements-lock.txt, when it is missing or when either file changed since it was made; sets PY to its python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-lock.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Setting up .venv from requirements.txt (first run: a few minutes)..."
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet -r requirements.txt -c requirements-lock.txt
  echo "$wanted" > "$stamp"
fi
PY=.venv/bin/python

#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment at .venv, idempotently.
# Installs the pinned versions in packaging/constraints.txt and the project in editable mode.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or the pins changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv
STAMP="$VENV/.workbench-installed"
want=$(cat pyproject.toml packaging/constraints.txt | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PY --version)" >&2
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pinned dependencies (first run downloads/unpacks torch: a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip>=23.2" 2>/dev/null || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c packaging/constraints.txt \
      -e ".[test,tensorboard]"
  echo "$want" > "$STAMP"
fi

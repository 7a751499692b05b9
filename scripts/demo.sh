#!/usr/bin/env bash
# Install lancelot into ./.venv and run the whole study on an embedded default:
# synthetic NSCLC data, then linkage, exploration and training on an in-process Vantage6 network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[v6,report]" 2>&1 | grep -vE "^(WARNING|  |$)" || true
exec .venv/bin/lancelot demo "$@"

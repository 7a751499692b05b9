#!/usr/bin/env bash
# Install lancelot into ./.venv and run the whole study on an embedded default:
# synthetic NSCLC data, then linkage, exploration and training on an in-process Vantage6 network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -m pip install -q -e ".[v6,report]" >.venv/install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/install.log >&2; echo "installing lancelot failed (see above)" >&2; exit 1
fi
exec .venv/bin/lancelot demo "$@"

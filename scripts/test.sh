#!/usr/bin/env bash
# Install lancelot with its test extras into ./.venv and run the checks: ruff, the unit and
# in-process network tests, and the real-network suite when a container engine can be started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -m pip install -q -e ".[test,report]" >.venv/install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/install.log >&2; echo "installing lancelot failed (see above)" >&2; exit 1
fi
echo "== ruff"
.venv/bin/ruff check .
echo "== unit and in-process network tests"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
if [ -x scripts/devnet.sh ] && [ "${LANCELOT_SKIP_NETWORK:-0}" != 1 ]; then
  echo "== real Vantage6 network tests"
  bash scripts/run_network_tests.sh
else
  echo "== real Vantage6 network tests: SKIPPED (scripts/devnet.sh not present or LANCELOT_SKIP_NETWORK=1)"
fi

#!/usr/bin/env bash
# Install lancelot with its test extras into ./.venv and run the checks: ruff, the unit and
# in-process network tests, and the real-network suite when a container engine can be started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_venv.sh
install_lancelot "test,report"
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

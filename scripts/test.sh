#!/usr/bin/env bash
# Install lancelot with its test extras into ./.venv (vantage6 4.15) and ./.venv5 (vantage6 5.x,
# Python 3.13) and run the checks: ruff, the unit and in-process network tests, the 5.x tests
# (tests/v5: MockNetwork and the 5.x process harness against the 4.15 results), and the real-network
# suite when a container engine can be started. LANCELOT_SKIP_V5=1 leaves the 5.x part out.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_venv.sh
install_lancelot "test,report"
[ "${LANCELOT_SKIP_V5:-0}" = 1 ] || install_lancelot5 "test-5"
echo "== ruff"
.venv/bin/ruff check .
echo "== unit and in-process network tests (vantage6 4.15)"
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
if [ "${LANCELOT_SKIP_V5:-0}" != 1 ]; then
  echo "== vantage6 5.x tests (Python 3.13, ./.venv5)"
  LANCELOT_V4_PYTHON=.venv/bin/python .venv5/bin/python -m pytest -q -p no:cacheprovider tests/v5
else
  echo "== vantage6 5.x tests: SKIPPED (LANCELOT_SKIP_V5=1)"
fi
if [ -x scripts/devnet.sh ] && [ "${LANCELOT_SKIP_NETWORK:-0}" != 1 ]; then
  echo "== real Vantage6 network tests"
  bash scripts/run_network_tests.sh
else
  echo "== real Vantage6 network tests: SKIPPED (scripts/devnet.sh not present or LANCELOT_SKIP_NETWORK=1)"
fi

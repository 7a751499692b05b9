#!/usr/bin/env bash
# Install lancelot with its test extras into ./.venv (vantage6 4.15) and ./.venv5 (vantage6 5.x,
# Python 3.13) and run the checks: ruff, the unit and in-process network tests, the 5.x tests
# (tests/v5: MockNetwork and the 5.x process harness against the 4.15 results), and the real-network
# suite when a container engine can be started, side by side with the others. LANCELOT_SKIP_V5=1 leaves
# the 5.x part out, LANCELOT_SKIP_NETWORK=1 the real network.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_venv.sh
install_lancelot "test,report"
# The real-network suite (about 26 minutes here, the longest part) runs in the background from here on,
# beside the rest, its output shown when the other checks are done: 28.5 minutes in all on 2 cores
# instead of 38 one after the other.
network=skip
if [ -x scripts/devnet.sh ] && [ "${LANCELOT_SKIP_NETWORK:-0}" != 1 ]; then
  network_log=$(mktemp /tmp/lancelot-network.XXXXXX.log)
  echo "== real Vantage6 network tests: started in the background (log: $network_log)"
  bash scripts/run_network_tests.sh >"$network_log" 2>&1 &
  network=$!
fi
[ "${LANCELOT_SKIP_V5:-0}" = 1 ] || install_lancelot5 "test-5"
echo "== ruff"
.venv/bin/ruff check .
rc=0
echo "== unit and in-process network tests (vantage6 4.15)"
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${LANCELOT_TEST_WORKERS:-auto}" --dist loadscope \
  --durations=15 "$@" || rc=$?
if [ "${LANCELOT_SKIP_V5:-0}" != 1 ]; then
  echo "== vantage6 5.x tests (Python 3.13, ./.venv5)"
  LANCELOT_V4_PYTHON=.venv/bin/python .venv5/bin/python -m pytest -q -p no:cacheprovider tests/v5 || rc=$?
else
  echo "== vantage6 5.x tests: SKIPPED (LANCELOT_SKIP_V5=1)"
fi
if [ "$network" = skip ]; then
  echo "== real Vantage6 network tests: SKIPPED (scripts/devnet.sh not present or LANCELOT_SKIP_NETWORK=1)"
else
  network_rc=0
  wait "$network" || network_rc=$?
  echo "== real Vantage6 network tests"
  cat "$network_log"
  rm -f "$network_log"
  [ "$network_rc" = 0 ] || rc=$network_rc
fi
exit "$rc"

#!/usr/bin/env bash
# The end-to-end suite on a real vantage6 4.15 network: bring the dev network up (installing the
# container engine if needed), run tests/network, and always take the network down again.
# Skips, saying so, when no container engine can be started here (e.g. not root, no apt).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] && ! command -v dockerd >/dev/null 2>&1; then
  echo "== real-network tests SKIPPED: no container engine and not root to install one"
  exit 0
fi
trap 'scripts/devnet.sh down >/dev/null 2>&1 || true' EXIT
if ! scripts/devnet.sh up; then
  if [ "${LANCELOT_DEVNET_REQUIRED:-1}" = 1 ]; then
    echo "== the dev network did not come up" >&2
    exit 1
  fi
  echo "== real-network tests SKIPPED: the dev network did not come up"
  exit 0
fi
# The tests run side by side (four at a time, an idle worker taking tests queued at a busy one): a round
# waits on container starts and polling, though on 2 cores the containers' work makes each test 2-3 times
# slower side by side; those that need the network alone (marked serial: they stop a node or time
# rounds) run after them.
export LANCELOT_DEVNET_REQUIRED=1
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=10 -n "${LANCELOT_NETWORK_WORKERS:-4}" \
  --dist worksteal -m "network and not serial" tests/network || rc=$?
.venv/bin/python -m pytest -q -p no:cacheprovider -m "network and serial" tests/network || rc=$?
exit "$rc"

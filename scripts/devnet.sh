#!/usr/bin/env bash
# lancelot development network (vantage6 4.15.2 server + 4 nodes in containers).
#   scripts/devnet.sh up | status | logs [service] | down [--purge]     (--help for options)
# The logic is scripts/devnet/devnet.py, run with the project's venv (vantage6-client 4.15.2).
# Scratch folder: $V6DEV_DIR (default ./.v6dev). See docs/real-network.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${V6DEV_PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "devnet: no $PY; create the venv (python3 -m venv .venv && .venv/bin/pip install -e '.[test]') or set V6DEV_PYTHON" >&2
  exit 1
fi
if ! "$PY" -c "import vantage6.client, yaml" 2>/dev/null; then
  echo "devnet: $PY lacks vantage6-client/PyYAML: pip install 'vantage6-client==4.15.2'" >&2
  exit 1
fi
exec "$PY" "$ROOT/scripts/devnet/devnet.py" "$@"

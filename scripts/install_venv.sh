#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: create ./.venv if needed and install lancelot with the given extras.
# usage: source scripts/install_venv.sh "vantage6,report"
install_lancelot() {
  local extras=$1
  local py=${PYTHON:-python3}
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e ".[$extras]" >.venv/install.log 2>&1; then
    grep -v "^WARNING: Location" .venv/install.log >&2
    echo "installing lancelot failed (see above)" >&2
    exit 1
  fi
}

#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: create ./.venv if needed and install lancelot with the given extras
# (vantage6 4.15, Python 3.10-3.12); install_lancelot5 does the same for ./.venv5 (vantage6 5.x, Python 3.13).
# usage: source scripts/install_venv.sh; install_lancelot "vantage6,report"; install_lancelot5 "test-5"
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

# A Python 3.13 for vantage6 5.x: $PYTHON5, else pyenv's newest 3.13 (a pyenv shim only runs the
# selected version), else python3.13 on the PATH; the first that really is a 3.13.
find_python313() {
  local root=${PYENV_ROOT:-$HOME/.pyenv} candidate
  command -v pyenv >/dev/null && root=$(pyenv root)
  for candidate in "${PYTHON5:-}" "$(ls -d "$root"/versions/3.13.* 2>/dev/null | sort -V | tail -1 || true)/bin/python3.13" \
                   "$(command -v python3.13 || true)"; do
    [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null \
      && { echo "$candidate"; return; }
  done
  return 1
}

install_lancelot5() {
  local extras=$1 py
  if [ ! -x .venv5/bin/python ]; then
    py=$(find_python313) || { echo "no Python 3.13 for vantage6 5.x: install one (pyenv install 3.13) or set PYTHON5" >&2; exit 1; }
    "$py" -m venv .venv5
  fi
  .venv5/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv5/bin/python -m pip install -q -e ".[$extras]" >.venv5/install.log 2>&1; then
    grep -v "^WARNING: Location" .venv5/install.log >&2
    echo "installing lancelot with vantage6 5.x into .venv5 failed (see above)" >&2
    exit 1
  fi
}

#!/usr/bin/env bash
# Install lancelot into ./.venv and run the whole study on an embedded default:
# synthetic NSCLC data, then linkage, exploration and training on an in-process Vantage6 network.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install_venv.sh
install_lancelot "vantage6,report"
exec .venv/bin/lancelot demo "$@"

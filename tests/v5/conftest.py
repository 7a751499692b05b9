"""tests/v5 run only where vantage6 5.x is installed (./.venv5, Python 3.13; scripts/test.sh makes it)."""

from __future__ import annotations

import importlib.util


def _vantage6_5() -> bool:
    try:
        return importlib.util.find_spec("vantage6.algorithm.decorator") is not None
    except ModuleNotFoundError:
        return False


collect_ignore_glob = [] if _vantage6_5() else ["test_*.py"]

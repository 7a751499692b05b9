"""The algorithms' entry points for whichever vantage6 major is installed.

vantage6 4.15 and 5.x cannot be installed side by side (they share the ``vantage6`` namespace) and
their decorators differ, so the algorithm packages take ``make_central``, ``make_partial`` and
``extract`` from here and never know which adapter they got; the protocols know neither. 5.x is
recognised by its ``vantage6.algorithm.decorator`` package, 4.x by ``vantage6.algorithm.tools.decorators``.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def installed_major() -> int:
    """4 or 5: the major version of the installed vantage6 algorithm tools."""
    for name, major in (("vantage6.algorithm.decorator", 5), ("vantage6.algorithm.tools.decorators", 4)):
        try:
            if importlib.util.find_spec(name) is not None:
                return major
        except ModuleNotFoundError:
            break
    raise ImportError("lancelot's algorithms need vantage6-algorithm-tools: 4.15 (pip extra 'vantage6', "
                      "Python 3.10-3.12) or 5.0 (pip extra 'vantage6-5', Python 3.13)")


MAJOR = installed_major()

if MAJOR >= 5:
    from .v5.adapter import extract, make_central, make_partial
else:
    from .adapter import make_central, make_partial

    def extract(*args: Any, **kwargs: Any) -> dict:
        """vantage6 5.x's data-extraction step; a 4.15 station reads its database itself."""
        return {"lancelot_error": "'extract' is a vantage6 5.x data-extraction step; on vantage6 4.15 the "
                                  "stations read their database themselves"}


def local_network() -> type:
    """The in-process network of the installed major (process per run, the node's environment, the guard)."""
    if MAJOR >= 5:
        from .v5.local import LocalNetwork5

        return LocalNetwork5
    from .local import LocalNetwork

    return LocalNetwork


__all__ = ["MAJOR", "extract", "installed_major", "local_network", "make_central", "make_partial"]

"""lancelot_exploration: statistics on the linked cohort, with disclosure control (Vantage6 algorithm).

Thin: argument checks here, the protocol in :mod:`lancelot.explore`.
"""

from __future__ import annotations

from lancelot.explore.protocol import STEPS as EXPLORE_STEPS
from lancelot.explore.protocol import explore
from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.coordinator import Coordinator
from lancelot.runtime.errors import InputError
from lancelot.v6.entry import extract, make_central, make_partial  # the installed vantage6 major's adapter


def run(coordinator: Coordinator, spec: dict, min_cell_count: int | None = None, evaluate: bool = False,
        key_bits: int = 2048, rounding_base: int | None = None) -> dict:
    if not isinstance(evaluate, bool):
        raise InputError("'evaluate' must be true or false")
    return explore(coordinator, spec, min_cell_count=min_cell_count, evaluate=evaluate, key_bits=key_bits,
                   rounding_base=rounding_base)


central = make_central(run)
partial = make_partial({**LINK_STEPS, **EXPLORE_STEPS})
__all__ = ["central", "extract", "partial", "run"]  # extract: the 5.x data-extraction step of a session

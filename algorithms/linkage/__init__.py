"""lancelot_linkage: the Vantage6 linkage algorithm (central ``central``, partial ``partial``).

Thin by design: argument checking and the result's shape live here, the protocol in
:mod:`lancelot.linkage`.
"""

from __future__ import annotations

from lancelot.linkage.protocol import STEPS, check_researcher_protections, link
from lancelot.runtime.coordinator import Coordinator
from lancelot.runtime.errors import InputError
from lancelot.v6.entry import extract, make_central, make_partial  # the installed vantage6 major's adapter


def run(coordinator: Coordinator, spec: dict, evaluate: bool = False, min_cell_count: int | None = None,
        rounding_base: int | None = None) -> dict:
    """Link the stations of ``spec``; return aggregates only (and, with ``evaluate``, the links).

    ``rounding_base`` (1, 5 or 10) can only raise the base the node policies set for released counts.
    """
    if not isinstance(evaluate, bool):
        raise InputError("'evaluate' must be true or false")
    check_researcher_protections(min_cell_count, rounding_base)
    linkage = link(coordinator, spec, evaluate=evaluate)
    out = {"summary": linkage.summary(min_cell_count, rounding_base),
           "protections": linkage.protections(min_cell_count, rounding_base).as_dict()}
    if evaluate:
        out["links"] = linkage.links_table()
        out["evaluation_note"] = ("evaluation run: every station's node operator opted in with "
                                  "LANCELOT_ALLOW_EVALUATE; the links as record ids are for measuring quality only")
    return out


central = make_central(run)
partial = make_partial(STEPS)
__all__ = ["central", "extract", "partial", "run"]  # extract: the 5.x data-extraction step of a session

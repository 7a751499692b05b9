"""lancelot_training: models on the linked cohort, fitted to pooled accuracy (Vantage6 algorithm).

Thin: argument checks here, the protocol in :mod:`lancelot.training`.
"""

from __future__ import annotations

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.coordinator import Coordinator
from lancelot.runtime.errors import InputError
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train
from lancelot.v6.entry import extract, make_central, make_partial  # the installed vantage6 major's adapter


def run(coordinator: Coordinator, spec: dict, min_cell_count: int | None = None, evaluate: bool = False,
        rounding_base: int | None = None) -> dict:
    """Fit the spec's model; ``min_cell_count`` and ``rounding_base`` (1, 5 or 10) only raise the nodes' settings."""
    if not isinstance(evaluate, bool):
        raise InputError("'evaluate' must be true or false")
    return train(coordinator, spec, min_cell_count=min_cell_count, evaluate=evaluate, rounding_base=rounding_base)


central = make_central(run)
partial = make_partial({**LINK_STEPS, **TRAIN_STEPS})
__all__ = ["central", "extract", "partial", "run"]  # extract: the 5.x data-extraction step of a session

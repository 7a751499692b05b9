"""The training algorithm's entry: parse the spec, check the stations, fit the spec's model.

Each model is a protocol of its own, its station steps and its coordinator's rounds in separate
modules: logistic regression (:mod:`.logistic_steps`, :mod:`.logistic_fit`) and Cox proportional
hazards (:mod:`.cox_steps`, :mod:`.cox_fit`); both start from the same linkage and set-up rounds
(:mod:`.start`). Leakage tables and the algebra: docs/leakage/training.md.
"""

from __future__ import annotations

from ..runtime.coordinator import Coordinator
from ..runtime.errors import InputError
from . import cox_fit, cox_steps, cox_validation_steps, logistic_fit, logistic_steps
from .spec import parse_train_spec

STEPS = {**logistic_steps.STEPS, **cox_steps.STEPS, **cox_validation_steps.STEPS}


def train(coordinator: Coordinator, spec_raw: dict, min_cell_count: int | None = None,
          evaluate: bool = False, rounding_base: int | None = None) -> dict:
    """Fit the spec's model on the linked cohort; release only what passes disclosure control.

    ``min_cell_count`` and ``rounding_base`` can only make the node policies stricter.
    """
    spec = parse_train_spec(spec_raw, coordinator.stations)
    if len(coordinator.stations) < 2:
        raise InputError("training needs at least two stations (a hub with the outcome and one more)")
    fit = cox_fit.train_cox if spec.model == "cox" else logistic_fit.train_logistic
    return fit(coordinator, spec, spec_raw, min_cell_count=min_cell_count, evaluate=evaluate,
               rounding_base=rounding_base)


__all__ = ["STEPS", "train"]

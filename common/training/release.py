"""The disclosure rules a training result passes, stated in the result itself.

The thresholds are the job's :class:`lancelot.policy.Protections` (the strictest of every node's
policy and the researcher's request). Where each rule is enforced: the residual degrees of freedom
and the counts before the first coefficient exists (``logistic_fit._check_counts``,
``cox_fit._CoxFit._check_counts``), small levels from the first Hessian (``logistic.check_levels``),
rounding where the result is assembled, survival times in ``cox_fit._CoxFit._baseline``.
Documented in docs/leakage/training.md.
"""

from __future__ import annotations

from ..disclosure import MIN_RESIDUAL_DOF, SIGNIFICANT_DIGITS
from ..runtime.errors import PrivacyError

# the cells of a 0/1 feature's table against the outcome that must each hold at least k patients
LOGISTIC_CELLS = ("in", "out", "events_in", "non_events_in", "events_out", "non_events_out")
COX_CELLS = ("in", "out", "events_in", "events_out")   # censoring per level is not known to the coordinator


def check_residual_dof(units: int, coefficients: int, what: str) -> None:
    """ACRO's rule for regressions: refuse a fit with fewer than MIN_RESIDUAL_DOF residual degrees of freedom
    (``units``, complete cases or events, minus coefficients). The message shows no count."""
    if units - coefficients < MIN_RESIDUAL_DOF:
        raise PrivacyError(f"too few {what} for {coefficients} coefficients: fewer than {MIN_RESIDUAL_DOF} residual "
                           f"degrees of freedom ({what} minus coefficients); drop features or merge categories")


def disclosure_note(model: str, k: int, base: int) -> dict:
    """What was done to the numbers of a training result, in words, with the thresholds in force."""
    cox = model == "cox"
    rules = [
        f"counts (complete cases, events, linked cohort, {'numbers at risk, comparable pairs' if cox else 'calibration group sizes'}, "
        f"linkage counts) below {k} are withheld (zero excepted) and the others rounded to the nearest multiple of {base}",
        f"feature means and standard deviations, {'the concordance' if cox else 'the AUC and calibration means'} to "
        f"{SIGNIFICANT_DIGITS} significant digits; shares (observed rates, key agreement) from rounded counts",
        f"a fit with fewer than {MIN_RESIDUAL_DOF} residual degrees of freedom "
        f"({'events' if cox else 'complete cases'} minus coefficients) is refused",
        f"a 0/1 feature or category level with fewer than {k} patients in or outside the level, or fewer than {k} "
        + ("events in or outside it" if cox else "events or non-events in or outside it")
        + ", is refused",
        "the log-likelihood at the start (all coefficients 0) is withheld: it is a function of counts alone",
        "coefficients, standard errors, confidence intervals, p-values and the covariance are exact",
    ]
    if cox:
        rules.append(f"baseline and predicted survival only at requested times at least {k} events apart with at "
                     f"least {k} at risk; withheld times are listed with the reason")
    return {"min_cell_count": k, "rounding_base": base, "rules": rules}

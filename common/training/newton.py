"""The Newton-Raphson loop both models share; each model supplies one iteration's rounds.

An iteration (:meth:`Iterations.iteration`) opens what the coordinator needs at the current
coefficients and returns the Hessian, the gradient and the log-likelihood there. The driver takes
the (optionally L2-penalised) step and stops when the next step is predicted below the tolerance:
Newton converges quadratically, so after a step s the error is about s^2. Stopping without opening
the linear predictors at the new coefficients keeps the last two openings far apart: at nearly
equal coefficients the coordinator could pair records across openings by rank
(scripts/attack_training_openings.py measures this).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..runtime.errors import InputError

SEPARATION_LIMIT = 25.0   # |coefficient| on the internal (about standardised) scale: the fit diverges
_SAID = {"log_likelihood": "log-likelihood", "log_partial_likelihood": "log partial likelihood"}


class Iterations(Protocol):
    def iteration(self, t: int, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
        """One iteration's rounds at ``beta``: (Hessian, gradient, log-likelihood) of the complete cases."""


def newton_step(hessian: np.ndarray, gradient: np.ndarray, beta: np.ndarray, penalty: float,
                intercept: bool) -> np.ndarray:
    """The (optionally L2-penalised) Newton step; an intercept (the first coefficient) is not penalised."""
    diagonal = ridge(len(beta), penalty, intercept)
    return np.linalg.solve(hessian + np.diag(diagonal), gradient - diagonal * beta)


def ridge(p: int, penalty: float, intercept: bool) -> np.ndarray:
    """The penalty's diagonal (also added to the Hessian for the covariance)."""
    out = np.full(p, penalty)
    if intercept and p:
        out[0] = 0.0
    return out


def newton(model: Iterations, p: int, spec, *, intercept: bool, likelihood: str, diverged: Callable[[np.ndarray], Exception],
           hint: str, log: Callable[[str], None], history: list[dict]) -> np.ndarray:
    """Iterate to convergence and return the coefficients; ``history`` gets one row per iteration.

    The log-likelihood at the start (all coefficients 0) is withheld: it is a function of counts alone
    (the complete cases, or the risk-set sizes). ``diverged(beta)`` is the error to raise when the
    coefficients run off (separation, or a feature that orders the events).
    """
    beta = np.zeros(p)
    for t in range(spec.max_iterations):
        hess, grad, loglik = model.iteration(t, beta)
        try:
            step = newton_step(hess, grad, beta, spec.penalty, intercept)
        except np.linalg.LinAlgError:   # fitted probabilities at 0 or 1 empty the Hessian
            raise diverged(beta) from None
        beta = beta + step
        largest = float(np.max(np.abs(step))) if p else 0.0
        history.append({"iteration": t + 1, likelihood: loglik if t else None, "max_step": largest})
        log(f"training: iteration {t + 1}: " + (f"{_SAID[likelihood]} {loglik:.6f}, " if t else "")
            + f"largest step {largest:.2e}")
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > SEPARATION_LIMIT:
            raise diverged(beta - step)
        if largest ** 2 < spec.tolerance:
            return beta
    raise InputError(f"no convergence in {spec.max_iterations} Newton iterations ({hint}); raise max_iterations "
                     "or add a penalty")


def convergence(history: list[dict], spec, last_iterate_gives: str, start_withheld: str) -> dict:
    """The result's convergence block: the stopping rule, what the last opened iterate gives, why the
    likelihood at the start is withheld."""
    return {"converged": True, "iterations": len(history), "history": history,
            "tolerance": spec.tolerance, "penalty": spec.penalty,
            "note": "stops when the next Newton step is predicted below the tolerance (the last step squared); "
                    f"{last_iterate_gives} the last opened iterate; {start_withheld}"}


__all__ = ["SEPARATION_LIMIT", "convergence", "newton", "newton_step", "ridge"]

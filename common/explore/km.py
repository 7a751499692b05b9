"""Kaplan-Meier curves and the log-rank test from per-time exit counts (computed at the coordinator).

Inputs per group: for each distinct time (ascending), the number of events and of censorings
among the group's cohort members. These are the same numbers lifelines derives from the records.
"""

from __future__ import annotations

import numpy as np

from ..tails import chi2_sf


def km_curve(times: np.ndarray, events: np.ndarray, censored: np.ndarray) -> dict[str, np.ndarray]:
    """Survival, Greenwood variance and at-risk counts at each distinct time."""
    exits = events + censored
    at_risk = exits[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - events / at_risk, 1.0)
        survival = np.cumprod(factor)
        gw_terms = np.where((at_risk > 0) & (at_risk > events), events / (at_risk * (at_risk - events)), 0.0)
    greenwood = np.cumsum(gw_terms)
    return {"times": times, "survival": survival, "at_risk": at_risk, "events": events, "greenwood": greenwood}


def curve_at(curve: dict[str, np.ndarray], when: np.ndarray, z: float = 1.959963984540054) -> dict[str, np.ndarray]:
    """Step-function values at the requested times, with lifelines' log(-log) confidence band."""
    idx = np.searchsorted(curve["times"], when, side="right") - 1
    surv = np.where(idx >= 0, curve["survival"][np.clip(idx, 0, None)], 1.0)
    gw = np.where(idx >= 0, curve["greenwood"][np.clip(idx, 0, None)], 0.0)
    # number at risk just after each requested time (records whose time is >= t)
    after = np.searchsorted(curve["times"], when, side="left")
    at_risk = np.array([curve["at_risk"][i] if i < len(curve["at_risk"]) else 0.0 for i in after])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(surv)
        se = np.sqrt(gw) / np.abs(log_s)
        lower = np.exp(-np.exp(np.log(-log_s) + z * se))
        upper = np.exp(-np.exp(np.log(-log_s) - z * se))
    lower = np.where((surv >= 1) | (surv <= 0), surv, lower)
    upper = np.where((surv >= 1) | (surv <= 0), surv, upper)
    return {"survival": surv, "lower": lower, "upper": upper, "at_risk": at_risk}


def logrank(events: np.ndarray, at_risk: np.ndarray) -> dict[str, float]:
    """Multi-group log-rank test; ``events`` and ``at_risk`` are (groups x times)."""
    d = events.sum(0)
    n = at_risk.sum(0)
    keep = n > 0
    d, n, ev, nr = d[keep], n[keep], events[:, keep], at_risk[:, keep]
    expected = nr * (d / n)
    observed_minus_expected = (ev - expected).sum(1)
    g = events.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n > 1, d * (n - d) / (n * n * (n - 1)), 0.0)
    cov = np.zeros((g, g))
    for a in range(g):
        for b in range(g):
            cov[a, b] = (factor * (nr[a] * ((a == b) * n - nr[b]))).sum()
    o = observed_minus_expected[:-1]
    v = cov[:-1, :-1]
    statistic = float(o @ np.linalg.pinv(v) @ o) if g > 1 else float("nan")
    dof = g - 1
    return {"statistic": statistic, "degrees_of_freedom": dof, "p_value": chi2_sf(statistic, dof)}

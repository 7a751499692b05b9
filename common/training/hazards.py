"""Coordinator-side mathematics of Cox regression: Newton steps, the hazard-ratio table, the
concordance index from binned pair counts, and the baseline hazard for predictions.

Works on opened aggregates only (gradient, Hessian, pair counts, risk-set sums at the requested
times); the protocol that produces them is :mod:`.cox`.
"""

from __future__ import annotations

import math

import numpy as np

from ..disclosure import SIGNIFICANT_DIGITS, release_count, round_magnitude
from .logistic import Z_95, level_cells, ratio_table, summary_row


def feature_summary(moments: list[tuple[float, float]], n: int, features: list[dict], base: int) -> list[dict]:
    """Mean and SD of each feature over the complete cases (``moments``: lancelot.training.terms
    .original_moments of X'1 and X'X at beta = 0), rounded."""
    return [summary_row(f, mean, sd, n, base) for f, (mean, sd) in zip(features, moments)]


def binary_levels(sum_x: np.ndarray, sum_xd: np.ndarray, n: int, events: int, features: list[dict]) -> list[dict]:
    """Patients and events in and outside the level of every 0/1 feature, over the complete cases, from the
    encoded feature sums over all complete cases (X'1) and over their events (X'd)."""
    return [level_cells(f, n, events, sum_x[j], sum_xd[j]) for j, f in enumerate(features) if f.get("binary")]


def coefficient_table(beta: np.ndarray, cov: np.ndarray, features: list[dict], summaries: list[dict]) -> list[dict]:
    return ratio_table(beta, cov, features, summaries, "hazard_ratio", "hr_ci_low", "hr_ci_high")


def concordance(correct: int, tied: int, total: int, bins: int) -> dict:
    """Harrell's C from pair counts in which predictions were compared by quantile bin.

    Pairs whose linear predictors fall in the same bin are counted half, as ties are; the exact
    C-index (ties of the linear predictor itself counted half) lies between ``lower`` (every
    same-bin pair discordant) and ``upper`` (every one concordant).
    """
    if total <= 0:
        return {"estimate": None, "lower": None, "upper": None, "comparable_pairs": 0, "bins": bins}
    return {"estimate": (correct + tied / 2) / total, "lower": correct / total, "upper": (correct + tied) / total,
            "comparable_pairs": int(total), "bins": bins,
            "note": "Harrell's C on the training cohort; linear predictors compared by quantile bin "
                    "(pairs in the same bin count half); the exact value lies between lower and upper"}


def released_concordance(c: dict | None, k: int, base: int) -> dict | None:
    """The concordance as released: estimate to 4 significant digits, bounds rounded outwards (they stay
    bounds), the number of comparable pairs as a count. Exact values are ratios of pair counts."""
    if c is None or c.get("estimate") is None:
        return c
    return {**c, "estimate": round_magnitude(c["estimate"]), "lower": _outward(c["lower"], up=False),
            "upper": _outward(c["upper"], up=True), "comparable_pairs": release_count(c["comparable_pairs"], k, base)}


def _outward(value: float, up: bool) -> float:
    """``value`` in [0, 1] to SIGNIFICANT_DIGITS significant digits, rounded up or down."""
    if value <= 0 or value >= 1:
        return float(value)
    factor = 10.0 ** (SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(value)))
    return min(1.0, max(0.0, (math.ceil if up else math.floor)(value * factor) / factor))


def survival_at(lam0: float, v0: float, q: np.ndarray, x: np.ndarray, beta: np.ndarray,
                cov: np.ndarray) -> tuple[float, float, float]:
    """Survival S(t|x) = exp(-Lambda0(t) exp(x'beta)) and a 95% interval on the log(-log) scale.

    ``x`` is the profile minus the reference profile. ``lam0`` is the Breslow cumulative baseline
    hazard at the reference, ``v0`` = sum over event times up to t of d_k / S_k^2 and ``q`` = sum of
    d_k (xbar_k - reference) / S_k (S_k at the reference). The variance of Lambda(t|x) is
    exp(2 x'beta) (v0 + r' V r), r = Lambda0 x - q (Tsiatis); V is the covariance of beta.
    """
    risk = math.exp(float(x @ beta))
    cum = lam0 * risk
    r = lam0 * x - q
    var = risk ** 2 * (v0 + float(r @ cov @ r))
    s = math.exp(-cum)
    if cum <= 0 or var <= 0:
        return s, s, s
    half = Z_95 * math.sqrt(var) / cum   # on log(Lambda) = log(-log S)
    return s, math.exp(-cum * math.exp(half)), math.exp(-cum * math.exp(-half))

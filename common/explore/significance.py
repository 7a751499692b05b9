"""The tests of a table one, in closed form (no scipy in the algorithm images).

Each test takes aggregates: a contingency table of counts, per-group n / mean / SD, or per-group
counts in the bins of a private histogram. Which aggregates (released or not) a table_one feeds
them is decided in lancelot.explore.table_one (docs/leakage/disclosure.md).

* chi-square: Pearson's test of independence, with Yates' continuity correction for a 2 x 2 table
  (as R's ``chisq.test``, scipy's ``chi2_contingency`` and the ``tableone`` package);
* two groups: Welch's t-test (unequal variances, Welch-Satterthwaite degrees of freedom; the
  ``tableone`` default); more groups: one-way ANOVA (pooled variance, as ``tableone``);
* Kruskal-Wallis on binned values: the values of one bin are ties (mid-ranks), with the tie
  correction, as ``scipy.stats.kruskal`` on the binned values.
"""

from __future__ import annotations

import math

import numpy as np

from ..tails import chi2_sf, f_sf, t_two_sided


def chi_square(table: np.ndarray) -> dict:
    """Pearson's chi-square test of independence of a rows x columns table of counts (Yates for 2 x 2).

    Rows or columns whose total is zero are left out (they have no expected count).
    """
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    r, c = t.shape
    df = (r - 1) * (c - 1)
    if df < 1:
        return {"statistic": None, "df": max(df, 0), "p_value": None}
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / t.sum()
    diff = np.abs(t - expected)
    if df == 1:  # Yates: move each observed count half a unit towards its expected count
        diff = np.maximum(diff - 0.5, 0.0)
    stat = float((diff * diff / expected).sum())
    return {"statistic": stat, "df": df, "p_value": chi2_sf(stat, df)}


def welch_t(n: list[float], mean: list[float], sd: list[float]) -> dict:
    """Welch's t-test of two groups from their sizes, means and SDs."""
    v = [s * s / m for s, m in zip(sd, n)]
    se2 = v[0] + v[1]
    if se2 <= 0:
        return {"statistic": None, "df": None, "p_value": None}
    t = (mean[0] - mean[1]) / math.sqrt(se2)
    df = se2 * se2 / (v[0] * v[0] / (n[0] - 1) + v[1] * v[1] / (n[1] - 1))
    return {"statistic": t, "df": df, "p_value": t_two_sided(t, df)}


def anova(n: list[float], mean: list[float], sd: list[float]) -> dict:
    """One-way ANOVA (F-test, pooled within-group variance) from the groups' sizes, means and SDs."""
    n_, m_, s_ = (np.asarray(x, dtype=float) for x in (n, mean, sd))
    total = n_.sum()
    grand = (n_ * m_).sum() / total
    between = (n_ * (m_ - grand) ** 2).sum()
    within = ((n_ - 1) * s_ * s_).sum()
    d1, d2 = len(n_) - 1, total - len(n_)
    if within <= 0 or d1 < 1 or d2 < 1:
        return {"statistic": None, "df": [d1, d2], "p_value": None}
    f = float((between / d1) / (within / d2))
    return {"statistic": f, "df": [d1, float(d2)], "p_value": f_sf(f, d1, d2)}


def mean_difference_test(n: list[float], mean: list[float], sd: list[float]) -> dict:
    """Two groups: Welch's t-test; more: one-way ANOVA (the ``tableone`` package's choice)."""
    if len(n) == 2:
        return {"test": "Welch's t-test", **welch_t(n, mean, sd)}
    return {"test": "one-way ANOVA", **anova(n, mean, sd)}


def kruskal_binned(counts: np.ndarray) -> dict:
    """Kruskal-Wallis H from per-group counts in ordered bins (groups x bins), values of one bin tied."""
    c = np.asarray(counts, dtype=float)
    c = c[:, c.sum(axis=0) > 0]
    n_g, per_bin = c.sum(axis=1), c.sum(axis=0)
    total = per_bin.sum()
    if len(n_g) < 2 or (n_g <= 0).any() or total < 2:
        return {"statistic": None, "df": len(n_g) - 1, "p_value": None}
    midrank = np.cumsum(per_bin) - (per_bin - 1.0) / 2.0
    rank_sums = c @ midrank
    h = 12.0 / (total * (total + 1.0)) * float((rank_sums ** 2 / n_g).sum()) - 3.0 * (total + 1.0)
    ties = 1.0 - float((per_bin ** 3 - per_bin).sum()) / (total ** 3 - total)
    if ties <= 0:  # every value in one bin: no ranking
        return {"statistic": None, "df": len(n_g) - 1, "p_value": None}
    h /= ties
    df = len(n_g) - 1
    return {"statistic": h, "df": df, "p_value": chi2_sf(h, df)}

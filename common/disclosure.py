"""Disclosure control: the rules every number released to the researcher passes.

The thresholds in force for a job are the strictest of the researcher's request and every
station's node policy (:class:`lancelot.policy.Protections`): the minimum cell count k and the
rounding base. The rules here are shared by all three algorithms; exploration's joint cell
suppression over every table of a job lives in :mod:`lancelot.explore.ledger`. The reference
points (ACRO, OpenSAFELY, statistical agencies) are in docs/leakage/disclosure.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

# Survival curves and baselines are released on a fixed grid unless the researcher asks for other
# times: 3, 6, 12, 24, 36 and 60 months in days. Never a data-derived time such as the last one.
SURVIVAL_GRID_DAYS = (91.0, 182.0, 365.0, 730.0, 1095.0, 1826.0)
# Means, standard deviations and other magnitudes of record values are released to this many
# significant digits: enough for any table in a paper, too few to difference two runs whose
# cohorts differ by one record (docs/leakage/disclosure.md measures it).
SIGNIFICANT_DIGITS = 4
# ACRO's rule for regressions: at least this many residual degrees of freedom.
MIN_RESIDUAL_DOF = 10


def suppress(count: int | float, k: int) -> int | float | None:
    """A count below k (but above zero) is withheld; zero is released (it says nothing about anyone)."""
    return count if count == 0 or count >= k else None


def round_count(value: float, base: int) -> int:
    """A released count, rounded to the nearest multiple of ``base`` (1: exact)."""
    value = float(value)
    return int(round(value)) if base <= 1 else int(base * math.floor(value / base + 0.5))


def release_count(value: float, k: int, base: int) -> int | None:
    """Withheld (None) when 0 < value < k, else rounded to ``base``."""
    return None if 0 < round(value) < k else round_count(value, base)


def round_magnitude(value: float | None, digits: int = SIGNIFICANT_DIGITS) -> float | None:
    """A mean, SD or other magnitude to ``digits`` significant digits (None and non-finite pass through)."""
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def round_mean(value: float, sd: float, n: float, base: int, digits: int = SIGNIFICANT_DIGITS) -> float:
    """A mean (or SD) of n values on a grid no finer than ``base * sd / n`` (and ``digits`` significant digits).

    n times a mean is a sum: released with more precision it would undo the rounding of counts (the
    mean of a 0/1 variable is a count divided by n) and let two jobs whose cohorts differ by one
    record give that record's value. On this grid the implied sum is no more precise than ``base``
    values of typical size (one SD).
    """
    if value is None or not math.isfinite(value) or n <= 0:
        return value
    step = base * (sd if sd and math.isfinite(sd) else 0.0) / n
    if value != 0:
        step = max(step, 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1))
    if step <= 0:
        return value
    nice = 10.0 ** math.floor(math.log10(step))
    nice = next(m * nice for m in (1, 2, 5, 10) if m * nice >= step * (1 - 1e-12))
    decimals = max(0, -math.floor(math.log10(nice)) + 1)
    return round(round(value / nice) * nice, decimals)


NK_K = 0.9   # ACRO's dominance rule (safe_nk_n 2, safe_nk_k 0.9): the 2 largest may not hold 90% of a magnitude
DOMINANCE = ("one or two values could make up 90% of the sum (ACRO's dominance rule, judged from the sums of "
             "|values| and squares)")


def may_be_dominated(abs_sum: float, sum_squares: float) -> bool:
    """Could the 2 largest |values| of a cell hold 90% of its sum of |values| (ACRO's nk rule)? Its mean would
    then show one or two patients' values (one patient with 250,000 GP visits among a thousand others: the
    mean is about that value / n, the SD about that value / sqrt(n)). The coordinator holds only the cell's
    sums, so it uses their bound: the two largest |x| add up to at most sqrt(2 sum x^2), and the cell is
    withheld where that reaches 90% of sum |x|. This also covers ACRO's p% rule (p = 0.1), and never binds on
    usual columns: positive values need a coefficient of variation above 1.7 at 10 values, above 6 at 100."""
    return sum_squares > 0 and 2 * sum_squares >= (NK_K * abs_sum) ** 2


def quantile_allowed(q: float, n: float, k: int) -> bool:
    """A quantile is released only if at least k records lie on either side of it: k/n <= q <= 1 - k/n."""
    return n > 0 and k / n <= q <= 1 - k / n


def spaced_times(requested: Sequence[float], events_up_to: Callable[[float], float],
                 at_risk: Callable[[float], float], k: int) -> tuple[list[float], list[dict]]:
    """The requested survival times that may be released, and why the others are withheld.

    A time is kept when at least k events happened since the previous kept time (or since the
    start) and at least k records are still at risk: two released points then always differ by at
    least k events, so differencing adjacent times cannot isolate fewer than k patients.
    ``events_up_to(t)``: events at times <= t; ``at_risk(t)``: records with time >= t.
    """
    kept: list[float] = []
    withheld: list[dict] = []
    previous = 0.0
    for t in sorted(float(x) for x in set(requested)):
        since = events_up_to(t) - previous
        if at_risk(t) < k:
            withheld.append({"time": t, "reason": f"fewer than {k} at risk"})
        elif since < k:
            withheld.append({"time": t, "reason": f"fewer than {k} events since the previous released time"})
        else:
            kept.append(t)
            previous = events_up_to(t)
    return kept, withheld


def step_counts(times: np.ndarray, counts: np.ndarray) -> Callable[[float], float]:
    """``f(t)`` = the sum of ``counts`` at ``times`` <= t (for :func:`spaced_times`)."""
    order = np.argsort(times)
    t_sorted, cum = np.asarray(times, float)[order], np.cumsum(np.asarray(counts, float)[order])

    def f(t: float) -> float:
        i = int(np.searchsorted(t_sorted, t, side="right"))
        return float(cum[i - 1]) if i else 0.0

    return f


def release_share(part: float, whole: float, k: int, base: int, digits: int = SIGNIFICANT_DIGITS) -> float | None:
    """``part / whole`` computed from the released (rounded) counts, as OpenSAFELY does for percentages,
    so that the share cannot undo the rounding; withheld when either side (``part`` or ``whole - part``)
    is a small count (0 < count < k) or the rounded whole is 0."""
    if release_count(part, k, base) is None or release_count(whole - part, k, base) is None:
        return None
    top, bottom = round_count(part, base), round_count(whole, base)
    return round_magnitude(min(top / bottom, 1.0), digits) if bottom > 0 else None

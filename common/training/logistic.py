"""Coordinator-side mathematics of logistic regression: Newton steps, checks, the coefficient table
and model quality. Works on opened aggregates (gradient, Hessian) and on the permuted linear
predictors the coordinator sees; never on features.
"""

from __future__ import annotations

import math

import numpy as np

from ..disclosure import DOMINANCE, may_be_dominated, round_mean
from ..runtime.errors import InputError, PrivacyError

Z_95 = 1.959963984540054


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


def log_likelihood(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(y * z - np.logaddexp(0.0, z)))


def check_identifiable(hessian: np.ndarray, names: list[str]) -> None:
    """Refuse a design whose Hessian is singular: a feature constant in the cohort or collinear with others."""
    d = np.sqrt(np.clip(np.diag(hessian), 0, None))
    zero = [names[j] for j in range(len(names)) if d[j] <= 1e-12]
    if zero:
        raise InputError(f"feature(s) {', '.join(zero)} have no variation among the linked complete cases")
    corr = hessian / np.outer(d, d)
    vals, vecs = np.linalg.eigh(corr)
    if vals[0] < 1e-9 * max(vals[-1], 1.0):
        involved = [names[j] for j in np.argsort(-np.abs(vecs[:, 0])) if abs(vecs[j, 0]) > 0.1]
        raise InputError(f"features are collinear in the linked cohort: {', '.join(involved)}; drop one of them")


def feature_summary(moments: list[tuple[float, float]], features: list[dict], n: float, base: int) -> list[dict]:
    """Mean and SD of each feature (not the intercept) over the ``n`` complete cases, rounded.

    ``moments``: lancelot.training.terms.original_moments of the first Hessian's rows: at beta = 0 every
    complete case has weight 1/4, so the intercept row holds the encoded feature sums and the matrix the
    sums of cross-products (internal scale).
    """
    return [summary_row(f, mean, sd, n, base) for j, (f, (mean, sd)) in enumerate(zip(features, moments)) if j > 0]


def summary_row(feature: dict, mean: float, sd: float, n: float, base: int) -> dict:
    """Mean and SD on the original scale, on a grid of step base * SD / n at least
    (lancelot.disclosure.round_mean): the mean of a 0/1 feature times n is a count, and exact means of two
    runs on cohorts one patient apart would show that patient's value. Withheld where one or two values could
    dominate the sum (lancelot.disclosure.may_be_dominated, with |sum| for the sum of |values|, which can only
    withhold more: a column centred near 0 loses its summary, not its coefficient)."""
    if may_be_dominated(abs(mean) * n, n * (sd * sd + mean * mean)):   # |sum g| <= sum |g|: the conservative side
        return {"feature": feature["name"], "station": feature["station"], "mean": None, "sd": None,
                "withheld": DOMINANCE}
    return {"feature": feature["name"], "station": feature["station"], "mean": round_mean(mean, sd, n, base),
            "sd": round_mean(sd, sd, n, base)}


def binary_levels(hessian0: np.ndarray, gradient0: np.ndarray, features: list[dict]) -> list[dict]:
    """Patients and events in and outside the level of every 0/1 feature (a dummy, or a 0/1 column), over
    the complete cases, read off the first Hessian and gradient.

    At beta = 0 every complete case has weight 1/4 and residual y - 1/2: 4 H[0, 0] is the number of
    complete cases, g[0] + n/2 the events, 4 H[0, j] the encoded feature sum and g[j] + 2 H[0, j] the
    encoded feature sum over the events.
    """
    n = 4 * hessian0[0, 0]
    events = gradient0[0] + n / 2
    return [level_cells(f, n, events, 4 * hessian0[0, j], gradient0[j] + 2 * hessian0[0, j])
            for j, f in enumerate(features) if j > 0 and f.get("binary")]


def level_cells(feature: dict, n: float, events: float, sum_enc: float, sum_events_enc: float) -> dict:
    """The 2 x 2 table of a 0/1 feature against the outcome, from its encoded sums over all complete cases
    and over the events (x = centre + 2^exponent x_enc)."""
    scale = 2.0 ** feature["exponent"]
    ones = round(feature["centre"] * n + scale * sum_enc)
    ones_events = round(feature["centre"] * events + scale * sum_events_enc)
    n, events = round(n), round(events)
    return {"feature": feature, "in": ones, "out": n - ones, "events_in": ones_events,
            "events_out": events - ones_events, "non_events_in": ones - ones_events,
            "non_events_out": (n - ones) - (events - ones_events)}


def with_reference_levels(levels: list[dict]) -> list[dict]:
    """Add the reference level of every categorical feature: its cells are the totals minus those of the
    other levels (every complete case has exactly one level). A small reference level would show through
    the standard errors of all the other levels' coefficients."""
    out = list(levels)
    seen: dict[tuple, list[dict]] = {}
    for lv in levels:
        f = lv["feature"]
        if f.get("level") is not None:
            seen.setdefault((f["station"], f["column"]), []).append(lv)
    for (station, column), group in seen.items():
        first = group[0]
        ref = {"feature": {"name": f"{column}={first['feature']['reference']}", "station": station, "column": column,
                           "level": first["feature"]["reference"], "is_reference": True}}
        for side in ("", "events_", "non_events_"):
            total = first[f"{side}in"] + first[f"{side}out"]
            ref[f"{side}in"] = total - sum(lv[f"{side}in"] for lv in group)
            ref[f"{side}out"] = total - ref[f"{side}in"]
        out.append(ref)
    return out


def check_levels(levels: list[dict], k: int, cells: tuple[str, ...]) -> None:
    """Refuse a 0/1 feature whose level (or the rest of the cohort) holds fewer than k patients, events
    or non-events (``cells``), and a categorical feature whose reference level does: its coefficient and
    standard error would reveal that small count. Zero counts are refused too (ACRO treats zeros as
    disclosive)."""
    words = {"in": "patients with {}", "out": "patients without {}", "events_in": "events among patients with {}",
             "events_out": "events among patients without {}", "non_events_in": "non-events among patients with {}",
             "non_events_out": "non-events among patients without {}"}
    problems = []
    for lv in with_reference_levels(levels):
        f = lv["feature"]
        label = f["name"] if f.get("level") is not None else f"{f['name']}=1"
        checked = [c for c in cells if c.endswith("in")] if f.get("is_reference") else cells
        small = [words[c].format(label) for c in checked if lv[c] < k]
        if small:
            what = " (the reference level)" if f.get("is_reference") else ""
            problems.append((f, f"fewer than {k} {' or '.join(small)}{what}"))
    if not problems:
        return
    advice = ("among the linked complete cases; its coefficient and standard error would reveal that count. Drop "
              "the feature or merge the level with another (the feature's \"merge\": {\"level\": \"other level\"}; a "
              "penalty does not hide the count)")
    if len(problems) == 1:
        f, why = problems[0]
        raise PrivacyError(f"feature '{f['name']}': {why} {advice}", station=f["station"], column=f["column"])
    listed = "; ".join(f"'{f['name']}' (station '{f['station']}'): {why}" for f, why in problems)
    raise PrivacyError(f"features refused: {listed}; {advice.replace('its coefficient', 'each coefficient')}")


def ratio_table(beta: np.ndarray, cov: np.ndarray, features: list[dict], summaries: list[dict] | None,
                ratio: str, low: str, high: str, first: int = 0) -> list[dict]:
    """Wald rows (estimate, SE, 95% CI, z, p) with exp(estimate) as ``ratio`` and its CI; per SD where the
    feature's SD is released. ``first`` skips the intercept's summary (it has none)."""
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    rows = []
    for j, f in enumerate(features):
        b, s = float(beta[j]), float(se[j])
        zval = b / s if s > 0 else float("nan")
        lo, hi = b - Z_95 * s, b + Z_95 * s
        rows.append({"feature": f["name"], "station": f["station"], "estimate": b, "std_error": s,
                     "ci_low": lo, "ci_high": hi, "z": zval, "p_value": math.erfc(abs(zval) / math.sqrt(2)),
                     ratio: _exp(b), low: _exp(lo), high: _exp(hi)})
    for row, summary in zip(rows[first:], summaries or []):
        if summary["sd"] is not None:  # the ratio for one standard deviation, to compare features
            row[f"{ratio}_per_sd"] = _exp(row["estimate"] * summary["sd"])
    return rows


def _exp(v: float) -> float:
    return math.exp(v) if abs(v) < 700 else float("inf")


def coefficient_table(beta: np.ndarray, cov: np.ndarray, features: list[dict],
                      summaries: list[dict] | None = None) -> list[dict]:
    return ratio_table(beta, cov, features, summaries, "odds_ratio", "or_ci_low", "or_ci_high", first=1)


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def calibration(prob: np.ndarray, y: np.ndarray, k: int, groups: int = 10) -> list[dict]:
    """Observed against predicted risk in groups of equal size (each at least k records)."""
    g = max(1, min(groups, len(prob) // k))
    order = np.argsort(prob, kind="mergesort")
    out = []
    for part in np.array_split(order, g):
        # no group minimum or maximum: those would be one patient's prediction
        out.append({"n": int(len(part)), "mean_predicted": float(prob[part].mean()),
                    "observed_rate": float(y[part].mean())})
    return out

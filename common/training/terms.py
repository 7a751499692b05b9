"""Model terms beyond main effects: interactions (products of design columns), restricted cubic
splines and what the researcher reads off them (effect modification, Wald tests, effect curves).

Coordinator-side mathematics on released aggregates, plus the spline basis that the station
holding a column computes (and that ``lancelot predict`` recomputes for a typed-in profile).

Encoding. Every design column is an affine function of an original-scale term g:
main effects enc = (g - centre) / 2^exponent (numeric columns, dummies, a spline's linear term); a
spline's nonlinear term enc = (g - sum_l c_l g_l - centre) / 2^exponent, its residual on the column and
the earlier terms (coefficients c_l from the station's whole column, rounded);
an interaction column is the product of two encoded columns, scaled down by 2^s so that it obeys
the same magnitude bound as every other column (|enc| <= 32, which the fixed-point budgets of
logistic and Cox regression rely on):

    enc_ij = enc_i enc_j / 2^s = (g_i - c_i)(g_j - c_j) / 2^(e_i + e_j + s),

with s = max(0, m_i + m_j - 5) from each station's power of two above its column's largest
|encoded value| (m, reported with the column's centre and scale), so products of typical columns
keep all 16 fractional bits (s = 0),

so the original-scale interaction term is the plain product g_i g_j (what a pooled formula
``a * b`` fits), and the main effects' coefficients change with the centres. :func:`original_map`
gives the matrix M with enc = M g + constant per record; coefficients on the original scale are
M' beta, their covariance M' V M.
"""

from __future__ import annotations

import math

import numpy as np

from ..disclosure import round_magnitude, round_mean
from ..runtime.errors import PrivacyError
from ..tails import chi2_sf
from .logistic import Z_95

MAX_BITS = 5               # every encoded column satisfies |value| <= 2^5 (design.MAX_ENCODED)
SPLINE_KNOTS = (3, 7)      # allowed numbers of knots of a restricted cubic spline
# Harrell's default knot quantiles (Regression Modeling Strategies, table 2.3)
HARRELL_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.50, 0.725, 0.95),
                     6: (0.05, 0.23, 0.41, 0.59, 0.77, 0.95), 7: (0.025, 0.1833, 0.3417, 0.50, 0.6583, 0.8167, 0.975)}


# ---------------------------------------------------------------------------------------------
# restricted cubic splines
# ---------------------------------------------------------------------------------------------
def rcs_basis(x: np.ndarray, knots: list[float] | tuple[float, ...]) -> np.ndarray:
    """The k - 2 nonlinear terms of a restricted cubic spline with knots t_1 < ... < t_k (Harrell's
    ``rcspline.eval`` with ``norm=2``: divided by (t_k - t_1)^2, so each term is in the units of x).
    With x itself as the linear term the spline is cubic between knots and linear beyond the outer ones."""
    t = np.asarray(knots, dtype=float)
    k = len(t)
    x = np.asarray(x, dtype=float)
    norm = (t[-1] - t[0]) ** 2
    out = np.empty(x.shape + (k - 2,))
    cube = lambda v: np.where(v > 0, v, 0.0) ** 3   # noqa: E731
    for j in range(k - 2):
        out[..., j] = (cube(x - t[j]) - cube(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
                       + cube(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])) / norm
    return out


def spline_term_name(column: str, term: int) -> str:
    """``age`` for the linear term, ``age'`` and ``age''`` for the nonlinear ones (as R's rms names them)."""
    return column + "'" * term


def round_knot(value: float) -> float:
    """A knot computed from a station's data, rounded to 3 significant digits (a released aggregate)."""
    return float(f"{value:.3g}") if value != 0 else 0.0


# ---------------------------------------------------------------------------------------------
# the original scale
# ---------------------------------------------------------------------------------------------
def residualised_on(features: list[dict], j: int) -> list[tuple[int, float]]:
    """A spline's nonlinear term is encoded as g_j - sum c_l g_l (design._residual_coefficients), over
    the column (term 0) and its earlier terms: the (feature index, c_l) pairs, [] for any other feature."""
    f = features[j]
    if not any(f.get("minus") or []):
        return []
    index = {fl.get("term", 0): i for i, fl in enumerate(features)
             if fl.get("station") == f.get("station") and fl.get("column") == f["column"] and "product" not in fl
             and fl.get("level") is None}
    return [(index[term], c) for term, c in enumerate(f["minus"]) if c]


def original_map(features: list[dict], intercept: bool) -> np.ndarray:
    """M (p x p) with enc = M g + const per record (``intercept``: feature 0 is the constant 1, which
    takes the constants; Cox has none and drops them). Coefficients on the original scale: M' beta."""
    p = len(features)
    m = np.zeros((p, p))
    for j, f in enumerate(features):
        scale = 2.0 ** -f["exponent"]
        if intercept and j == 0:
            m[0, 0] = 1.0
            continue
        if "product" not in f:
            m[j, j] = scale
            if intercept:
                m[j, 0] = -f["centre"] * scale
            for i, c in residualised_on(features, j):
                m[j, i] -= c * scale
            continue
        a, b = f["product"]
        ca, cb = features[a]["centre"], features[b]["centre"]
        m[j, j] = scale
        m[j, a] -= cb * scale
        m[j, b] -= ca * scale
        if intercept:
            m[j, 0] += ca * cb * scale
    return m


def to_original(beta: np.ndarray, cov: np.ndarray, features: list[dict], intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    m = original_map(features, intercept)
    return m.T @ beta, m.T @ cov @ m


def original_sums(enc_sums: np.ndarray, count: float, features: list[dict]) -> np.ndarray:
    """Sums of the original-scale terms over a set of ``count`` records, from the sums of their encoded
    columns: g = c + 2^e enc for main effects, g_ij = 2^E enc_ij + c_j g_i + c_i g_j - c_i c_j for products."""
    out = np.zeros(len(features))
    for j, f in enumerate(features):
        scale = 2.0 ** f["exponent"]
        if "product" not in f:
            out[j] = f["centre"] * count + scale * enc_sums[j] + sum(c * out[i] for i, c in residualised_on(features, j))
            continue
        a, b = f["product"]
        ca, cb = features[a]["centre"], features[b]["centre"]
        out[j] = scale * enc_sums[j] + cb * out[a] + ca * out[b] - ca * cb * count
    return out


# ---------------------------------------------------------------------------------------------
# interactions: layout, small cells, effect modification
# ---------------------------------------------------------------------------------------------
def factor_columns(features: list[dict], station: str, column: str) -> list[int]:
    """The design features of one model column (its dummies, or the column itself; never spline terms)."""
    return [j for j, f in enumerate(features)
            if f.get("station") == station and f.get("column") == column and "product" not in f and not f.get("term")]


def product_shift(fi: dict, fj: dict) -> int:
    """Bits an interaction column is scaled down by: none unless the two factors' bounds multiply past 2^5."""
    return max(0, fi["max_bits"] + fj["max_bits"] - MAX_BITS)


def product_sumsq_bits(fi: dict, fj: dict, sumsq_i: int, sumsq_j: int, shift: int) -> int:
    """A bound (bits) on an interaction column's sum of squares: sum (x_i x_j)^2 <= max x_j^2 sum x_i^2."""
    return min(sumsq_i + 2 * fj["max_bits"], sumsq_j + 2 * fi["max_bits"]) - 2 * shift


def product_features(features: list[dict], interactions, col_of_feature: list[int]) -> tuple[list[dict], list[list[int]],
                                                                                               list[dict]]:
    """The interaction columns appended after the main effects: their feature descriptions, the pairs of design
    columns each multiplies, and per interaction its layout (factor columns, products by factor pair)."""
    new: list[dict] = []
    pairs: list[list[int]] = []
    layout: list[dict] = []
    p = len(features)
    for it in interactions:
        a_cols = factor_columns(features, *it.a)
        b_cols = factor_columns(features, *it.b)
        products = {}
        for i in a_cols:
            for j in b_cols:
                fi, fj = features[i], features[j]
                shift = product_shift(fi, fj)
                products[(i, j)] = p + len(new)
                new.append({"name": f"{fi['name']}:{fj['name']}", "station": f"{fi['station']}:{fj['station']}",
                            "column": None, "level": None, "product": [i, j], "centre": 0.0, "shift": shift,
                            "max_bits": fi["max_bits"] + fj["max_bits"] - shift,
                            "exponent": fi["exponent"] + fj["exponent"] + shift,
                            "binary": bool(fi.get("binary") and fj.get("binary") and fi["centre"] == 0 and fj["centre"] == 0)})
                pairs.append([col_of_feature[i], col_of_feature[j], shift])
        layout.append({"label": f"{it.a[1]}:{it.b[1]}", "a": it.a, "b": it.b, "a_cols": a_cols, "b_cols": b_cols,
                       "products": products, "at": it.at})
    return new, pairs, layout


def _levels(features: list[dict], cols: list[int]) -> list[tuple[str, int | None]] | None:
    """A categorical or 0/1 factor's levels as (label, feature index of its indicator; None for the
    reference); None for a numeric factor."""
    first = features[cols[0]]
    if first.get("level") is not None:
        return [(str(first["reference"]), None)] + [(str(features[j]["level"]), j) for j in cols]
    if first.get("binary"):
        return [("0", None), ("1", cols[0])]
    return None


def cross_cells(inter: dict, features: list[dict], totals: np.ndarray, n: float) -> list[tuple[str, str, float]]:
    """Counts in every cell (level of a, level of b) of two categorical or 0/1 factors, from the sums of the
    original-scale terms (``totals``) over a set of ``n`` records; [] when a factor is numeric."""
    la, lb = _levels(features, inter["a_cols"]), _levels(features, inter["b_cols"])
    if la is None or lb is None:
        return []
    cell = {}
    for a_label, i in la:
        for b_label, j in lb:
            if i is not None and j is not None:
                cell[(a_label, b_label)] = totals[inter["products"][(i, j)]]
    for a_label, i in la:   # reference of b: a's level total minus a's other cells
        if i is not None:
            cell[(a_label, lb[0][0])] = totals[i] - sum(cell[(a_label, bl)] for bl, j in lb if j is not None)
    for b_label, j in lb:
        if j is not None:
            cell[(la[0][0], b_label)] = totals[j] - sum(cell[(al, b_label)] for al, i in la if i is not None)
    cell[(la[0][0], lb[0][0])] = n - sum(v for key, v in cell.items() if key != (la[0][0], lb[0][0]))
    return [(a, b, round(v)) for (a, b), v in cell.items()]


def check_cross_cells(layouts: list[dict], features: list[dict], tables: dict[str, tuple[np.ndarray, float]], k: int) -> None:
    """Refuse an interaction of two categorical (or 0/1) factors with a cell of fewer than k patients (or
    events, non-events: ``tables`` maps each such kind to the original-scale sums and the count over its
    records). Its coefficients and the effect ratios within each level would reveal that count."""
    problems = []
    for inter in layouts:
        a, b = inter["a"][1], inter["b"][1]
        for kind, (totals, n) in tables.items():
            for la, lb, count in cross_cells(inter, features, totals, n):
                if count < k:
                    problems.append(f"fewer than {k} {kind} with {a}={la} and {b}={lb} (interaction '{inter['label']}')")
    if problems:
        raise PrivacyError("; ".join(problems) + " among the linked complete cases: the interaction's coefficients "
                           "would reveal that count. Drop the interaction or merge levels (a feature's \"merge\")")


def wald_test(beta: np.ndarray, cov: np.ndarray, index: list[int]) -> dict:
    """Joint Wald test that the coefficients at ``index`` are all zero."""
    b = beta[index]
    v = cov[np.ix_(index, index)]
    try:
        stat = float(b @ np.linalg.solve(v, b))
    except np.linalg.LinAlgError:
        stat = float("nan")
    return {"chi2": stat, "df": len(index), "p_value": chi2_sf(stat, len(index)) if math.isfinite(stat) else None}


def _contrast(beta: np.ndarray, cov: np.ndarray, c: np.ndarray, ratio: str) -> dict:
    est = float(c @ beta)
    se = math.sqrt(max(float(c @ cov @ c), 0.0))
    z = est / se if se > 0 else float("nan")
    lo, hi = est - Z_95 * se, est + Z_95 * se
    ex = lambda v: math.exp(v) if abs(v) < 700 else float("inf")   # noqa: E731
    return {"log_ratio": est, "std_error": se, ratio: ex(est), "ci_low": ex(lo), "ci_high": ex(hi),
            "p_value": math.erfc(abs(z) / math.sqrt(2)) if math.isfinite(z) else None}


def effect_modification(layouts: list[dict], features: list[dict], beta: np.ndarray, cov: np.ndarray,
                        summaries: dict[str, dict], ratio: str) -> list[dict]:
    """Per interaction: the first factor's odds or hazard ratio within each level of the second (or at chosen
    values of a numeric second factor), with 95% intervals from the covariance, and the joint Wald test of
    the interaction's coefficients. Original scale; exact functions of the released coefficients."""
    out = []
    for inter in layouts:
        a_cols, b_cols, products = inter["a_cols"], inter["b_cols"], inter["products"]
        levels = _levels(features, b_cols)
        if levels is not None:
            at = [(label, {j: 1.0} if j is not None else {}) for label, j in levels]
            basis = "levels"
        else:
            j = b_cols[0]
            values = inter["at"]
            if values is None:
                s = summaries.get(features[j]["name"]) or {}
                mean, sd = s.get("mean"), s.get("sd")
                values = [] if mean is None or sd is None else [round_magnitude(mean - sd, 3), round_magnitude(mean, 3),
                                                                 round_magnitude(mean + sd, 3)]
                basis = "the complete cases' mean and mean +/- 1 SD (released values)"
            else:
                basis = "values chosen in the spec"
            at = [(f"{v:g}", {j: float(v)}) for v in values]
        rows = []
        for i in a_cols:
            for label, weights in at:
                c = np.zeros(len(beta))
                c[i] = 1.0
                for j, w in weights.items():
                    c[products[(i, j)]] += w
                rows.append({"effect_of": features[i]["name"] + ("" if features[i].get("level") is not None
                                                                 or features[i].get("binary") else " (per unit)"),
                             "modifier": inter["b"][1], "at": label, **_contrast(beta, cov, c, ratio)})
        test = wald_test(beta, cov, sorted(products.values()))
        out.append({"interaction": inter["label"], "stations": [inter["a"][0], inter["b"][0]],
                    "terms": [features[m]["name"] for m in sorted(products.values())],
                    "effects": rows, "modifier_values": basis,
                    "wald_test": {**test, "note": "joint Wald test that every coefficient of the interaction is 0"}})
    return out


# ---------------------------------------------------------------------------------------------
# splines: tests and the effect curve
# ---------------------------------------------------------------------------------------------
def spline_summaries(features: list[dict], beta: np.ndarray, cov: np.ndarray, ratio: str, points: int = 41) -> list[dict]:
    """Per spline: the overall test (every term 0: no association), the non-linearity test (the nonlinear
    terms 0) and the effect curve against the middle knot with 95% intervals, on the original scale."""
    groups: dict[tuple[str, str], list[int]] = {}
    for j, f in enumerate(features):
        if f.get("spline") is not None and "product" not in f:
            groups.setdefault((f["station"], f["column"]), []).append(j)
    out = []
    for (station, column), idx in groups.items():
        idx = sorted(idx, key=lambda j: features[j].get("term", 0))
        knots = features[idx[0]]["spline"]["knots"]
        ref = float(knots[len(knots) // 2])
        xs = np.linspace(knots[0], knots[-1], points)
        basis = np.column_stack([xs, rcs_basis(xs, knots)])
        ref_row = np.concatenate([[ref], rcs_basis(np.array([ref]), knots)[0]])
        curve = []
        for x, row in zip(xs, basis):
            c = np.zeros(len(beta))
            c[idx] = row - ref_row
            got = _contrast(beta, cov, c, ratio)
            curve.append({"x": float(x), "log_ratio": got["log_ratio"], ratio: got[ratio], "ci_low": got["ci_low"],
                          "ci_high": got["ci_high"]})
        out.append({"column": column, "station": station, "knots": list(knots), "reference": ref,
                    "terms": [features[j]["name"] for j in idx],
                    "overall_test": wald_test(beta, cov, idx), "nonlinearity_test": wald_test(beta, cov, idx[1:]),
                    "curve": curve,
                    "note": f"{ratio.replace('_', ' ')} against {column} = {ref:g} (the middle knot), 95% intervals "
                            "from the covariance; the spline is linear beyond the outer knots"})
    return out


def with_product_means(summaries: list[dict], features: list[dict], totals: np.ndarray, n: float, first: int,
                       base: int) -> list[dict]:
    """Summary rows (features from index ``first``) with an interaction column's mean taken as the mean of the
    plain product over the complete cases, on the grid of lancelot.disclosure.round_mean (the mean of a
    product of 0/1 columns times n is a count); its SD is not released (the encoded column's spread only
    sets the grid)."""
    out = []
    for row, f, total in zip(summaries, features[first:], totals[first:]):
        if "product" in f:
            spread = row.get("sd") or abs(float(total) / n if n > 0 else 0.0)
            row = {**row, "mean": round_mean(float(total) / n, spread, n, base) if n > 0 else None, "sd": None}
        out.append(row)
    return out


def released_terms(layouts: list[dict], features: list[dict], beta: np.ndarray, cov: np.ndarray, summaries: list[dict],
                   ratio: str) -> dict:
    """The result's ``interactions`` (effect modification, Wald tests) and ``splines`` (tests, effect curve)."""
    out: dict = {}
    if layouts:
        out["interactions"] = effect_modification(layouts, features, beta, cov, {r["feature"]: r for r in summaries},
                                                  ratio)
    splines = spline_summaries(features, beta, cov, ratio)
    if splines:
        out["splines"] = splines
    return out


def reference_profile(features: list[dict]) -> np.ndarray:
    """The original-scale terms where every encoded column is 0: each main effect at its centre, an
    interaction at the product of its factors' centres."""
    out = np.array([f["centre"] for f in features], dtype=float)
    for j, f in enumerate(features):
        if "product" in f:
            a, b = f["product"]
            out[j] = features[a]["centre"] * features[b]["centre"]
        else:
            out[j] += sum(c * out[i] for i, c in residualised_on(features, j))
    return out


def original_moments(mean_enc: np.ndarray, second_enc: np.ndarray, features: list[dict]) -> list[tuple[float, float]]:
    """Mean and SD of each main-effect term on the original scale, from the encoded columns' means and mean
    cross-products over a set of records (g = centre + 2^e enc, plus the earlier terms a spline term was
    residualised on). An interaction column gets its encoded column's spread (lancelot.training.terms
    .with_product_means replaces its row)."""
    p = len(features)
    weights, const = np.zeros((p, p)), np.zeros(p)   # g_j = const_j + weights_j . enc
    cov = second_enc - np.outer(mean_enc, mean_enc)
    out = []
    for j, f in enumerate(features):
        weights[j, j], const[j] = 2.0 ** f["exponent"], f["centre"]
        if "product" not in f:
            for i, c in residualised_on(features, j):
                weights[j] += c * weights[i]
                const[j] += c * const[i]
        w = weights[j]
        out.append((float(const[j] + w @ mean_enc), math.sqrt(max(float(w @ cov @ w), 0.0))))
    return out


def reading_notes(features: list[dict]) -> dict:
    """{"notes": [...]} for columns a station read as categorical although most of their values are numbers
    (no "type" in the spec, and a few words such as a marker for missing values); {} otherwise."""
    seen = {(f["station"], f["column"]) for f in features if f.get("mostly_numbers")}
    notes = [f"'{column}' (station '{station}') was read as categorical: most of its values are numbers but some are "
             "text (a marker for missing values?), so every value is a level of its own; give it \"type\": "
             "\"numeric\" to have the text refused, or \"categorical\" with \"merge\" to join levels"
             for station, column in sorted(seen)]
    return {"notes": notes} if notes else {}

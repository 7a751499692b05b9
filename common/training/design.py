"""The training spec and each station's part of the design matrix.

A station turns its own columns into fixed-point integers: numeric columns are centred on a
rounded mean and scaled by a power of two near their standard deviation (so integer-valued columns
such as age are encoded exactly, and every column has a comparable range, which keeps the
Hessian inside the 64-bit ring); categorical columns become one dummy per non-reference level.
The centre and the power of two are per-station aggregates over all of the station's rows (never
cohort values) and let the coordinator report coefficients on the original scale.
The spec itself is parsed in :mod:`.spec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..disclosure import quantile_allowed
from ..policy import NodePolicy, check_columns
from ..runtime.columns import column_hint, not_numeric_hint, true_false_as_numbers
from ..runtime.errors import InputError
from .spec import INTERCEPT, TrainSpec
from .terms import HARRELL_QUANTILES, rcs_basis, round_knot, spline_term_name

FRAC_BITS_X = 16          # fixed-point bits of an encoded feature
LOW_BITS = 16             # a non-integer column's next bits, in a column of their own (see _low_bits)
MAX_ENCODED = 32.0        # |encoded value| bound: the scale is at least the largest deviation / 32


@dataclass
class Block:
    """One station's encoded columns: model features, then its open columns (completeness, outcome)."""

    features: list[dict]      # name, column, level, centre, exponent
    open: list[str]           # "complete:<station>" and, at the hub, "outcome" (Cox: the event indicator)
    values: np.ndarray        # int64, rows x (len(features) + len(open))
    times: np.ndarray | None = None   # Cox, at the event's station: survival times (NaN where missing)
    strata: np.ndarray | None = None  # Cox, at the strata column's station: level codes (-1 where missing)
    strata_levels: list[str] | None = None
    strata_columns: int = 0   # Cox, strata at a station other than the hub: one 0/1 column per level (see below)

    def meta(self) -> dict:
        out = {"features": [{**f, "max_bits": b} for f, b in zip(self.features, self.max_bits())], "open": self.open,
               "sumsq_bits": self.sumsq_bits()}
        if self.strata_levels is not None:
            out["strata_levels"] = self.strata_levels
        if self.strata_columns:
            out["strata_columns"] = self.strata_columns
        return out

    def open_column(self, name: str) -> np.ndarray:
        return self.values[:, len(self.features) + self.strata_columns + self.open.index(name)]

    def max_bits(self) -> list[int]:
        """Per feature, the power of two above its largest |encoded value| over all rows (at most 2^5, as
        MAX_ENCODED bounds it): the coordinator scales an interaction column by it so that the product obeys
        the same bound as every column, without throwing precision away."""
        k = len(self.features)
        top = np.abs(self.values[:, :k]).max(axis=0).astype(float) / 2 ** FRAC_BITS_X if len(self.values) else np.zeros(k)
        return [int(math.ceil(math.log2(v))) if v > 0 else 0 for v in top]

    def sumsq_bits(self) -> int:
        """Bits of the largest sum of squares of an encoded feature over all rows: with Cauchy-Schwarz
        it bounds every Hessian entry, so the coordinator can pick the weights' precision."""
        k = len(self.features)
        if k == 0:
            return 0
        x = self.values[:, :k].astype(float) / 2 ** FRAC_BITS_X
        return int(math.ceil(math.log2(max(float((x * x).sum(axis=0).max()), 1.0))))


def _numeric(df: pd.DataFrame, station: str, column: str) -> pd.Series:
    s = df[column]
    if s.dtype == bool:
        return s.astype(float)
    if not pd.api.types.is_numeric_dtype(s):
        raise InputError(f"is not numeric{not_numeric_hint(s)}: give it \"type\": \"categorical\" or fix the values",
                         station=station, column=column)
    return s.astype(float)


def _scaling(values: pd.Series, station: str, name: str) -> tuple[float, int]:
    """Centre (rounded mean) and power-of-two exponent (about the standard deviation, raised where a long tail
    would exceed MAX_ENCODED: one patient with 300 GP visits among 10,000 with about 5 lies 70 standard
    deviations out; its bulk then keeps 2^-16 of the larger scale, and the low-bits column the rest), from
    all rows."""
    present = values.dropna()
    if len(present) < 2 or present.nunique() < 2:
        raise InputError("is constant (or almost all missing) at this station: it cannot be a feature",
                         station=station, column=name)
    mean, sd = float(present.mean()), float(present.std(ddof=0))
    centre = float(round(mean)) if abs(mean) >= 1 else 0.0
    exponent = int(math.ceil(math.log2(sd))) if sd > 0 else 0
    reach = float((present - centre).abs().max()) / MAX_ENCODED
    if reach > 2.0 ** exponent:
        exponent = int(math.ceil(math.log2(reach)))
    return centre, exponent


def _encode(values: pd.Series, centre: float, exponent: int, station: str, name: str) -> np.ndarray:
    scaled = (values.to_numpy(dtype=float) - centre) / 2.0 ** exponent
    finite = np.isfinite(scaled)
    if np.any(np.abs(scaled[finite]) > MAX_ENCODED):
        raise InputError(f"has values more than {int(MAX_ENCODED)} times its scale from its centre (the scale was "
                         "fixed on another set of its rows)", station=station, column=name)
    out = np.zeros(len(scaled), dtype=np.int64)
    out[finite] = np.rint(scaled[finite] * 2 ** FRAC_BITS_X).astype(np.int64)
    return out


def _low_bits(values: pd.Series, centre: float, exponent: int, fixed: dict | None) -> np.ndarray | None:
    """A non-integer column's next LOW_BITS bits below its 16-bit encoding, as a column of their own (None when
    the encoding is exact, as for integer and 0/1 columns): x = hi 2^-16 + lo 2^-32, in units of the column's
    scale. The coordinator ties the low column's coefficient to 2^-16 times the column's, so the fit sees every
    value to 2^-32 of its scale (a BMI at one decimal, a spline's cubic terms) while the Hessian's bit budget is
    unchanged (the low column is below 1/2 in size). Rounding only to 2^-16 left coefficients about 1e-5 of a
    standard error from the pooled fit (2e-6 absolute on an intercept whose standard error is 2). Whether a
    column has low bits is decided over all of the station's rows in round 1 and kept for round 2."""
    if fixed is not None and not fixed.get("low_bits"):
        return None
    scaled = (values.to_numpy(dtype=float) - centre) / 2.0 ** exponent
    finite = np.isfinite(scaled)
    out = np.zeros(len(scaled), dtype=np.int64)
    hi = np.rint(scaled[finite] * 2 ** FRAC_BITS_X)
    out[finite] = np.rint(scaled[finite] * 2 ** (FRAC_BITS_X + LOW_BITS) - hi * 2 ** LOW_BITS).astype(np.int64)
    if fixed is None and not out.any():
        return None
    return out


def _labels(raw: pd.Series) -> pd.Series:
    """Category labels as text (1.0 -> "1"), None where missing."""
    return raw.map(lambda v: None if pd.isna(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)))


def _merged(text: pd.Series, merge: tuple[tuple[str, str], ...], station: str, column: str) -> pd.Series:
    """Category labels with the researcher's merged levels joined; a level to merge that the column does not
    have (a typo) is refused rather than ignored."""
    absent = [level for level, _ in merge if not (text == level).any()]
    if absent:
        raise InputError(f"'merge' names level(s) {absent} that the column does not have at this station",
                         station=station, column=column)
    return text.map(lambda v, m=dict(merge): m.get(v, v))


def _knots(series: pd.Series, wanted: tuple[float, ...] | int, policy: NodePolicy, station: str, column: str) -> list[float]:
    """A spline's knots: the researcher's, or Harrell's quantiles of the station's whole column (all its rows,
    never the cohort) rounded to 3 significant digits, each with at least k rows on either side."""
    present = series.dropna()
    count = len(wanted) if isinstance(wanted, tuple) else wanted
    if present.isin([0.0, 1.0]).all():
        raise InputError("is binary (0/1): a spline needs a numeric column with more than two values", station=station,
                         column=column)
    if present.nunique() <= count:
        raise InputError(f"has too few distinct values for a spline with {count} knots", station=station, column=column)
    if isinstance(wanted, tuple):
        return list(wanted)
    k = policy.min_cell_count
    qs = HARRELL_QUANTILES[wanted]
    if not all(quantile_allowed(q, len(present), k) for q in qs):
        raise InputError(f"has too few records for {wanted} knots at quantiles ({k} on either side of each); give the "
                         "knots explicitly", station=station, column=column)
    knots = [round_knot(float(v)) for v in np.quantile(present.to_numpy(), qs)]
    if any(b <= a for a, b in zip(knots, knots[1:])):
        raise InputError(f"its quantiles do not give {wanted} distinct knots; give the knots explicitly or use fewer",
                         station=station, column=column)
    return knots


def _residual_coefficients(term: np.ndarray, earlier: list[np.ndarray]) -> list[float]:
    """A spline's nonlinear term is encoded minus its least-squares fit on the column and the earlier terms
    (over all of the station's rows with a value, coefficients rounded to 3 significant digits: aggregates
    the coordinator maps back exactly, see terms.original_map). The raw cubic terms are nearly collinear
    with the column and each other, so 16-bit rounding of them moved the coefficients by about 1e-4 of
    their standard errors; the residuals are nearly orthogonal and bring that down to the rounding of any
    non-integer column. Where a residual would be an outlier the encoding's bound refuses, the raw term
    is kept (all coefficients 0)."""
    x = np.column_stack(earlier)
    present = np.all(np.isfinite(x), axis=1) & np.isfinite(term)
    zeros = [0.0] * len(earlier)
    if present.sum() <= x.shape[1] + 1:
        return zeros
    design = np.column_stack([np.ones(int(present.sum())), x[present]])
    fitted, *_ = np.linalg.lstsq(design, term[present], rcond=None)
    minus = [round_knot(float(v)) for v in fitted[1:]]
    residual = term[present] - x[present] @ minus
    spread, raw_spread = float(residual.std()), float(term[present].std())
    if spread <= 1e-9 * raw_spread or np.abs(residual - residual.mean()).max() > MAX_ENCODED / 2 * spread:
        return zeros
    return minus


def build_block(spec: TrainSpec, station: str, df: pd.DataFrame, policy: NodePolicy,
                scaling: list[dict] | None = None, strata_levels: list[str] | None = None) -> Block:
    """Encode this station's features (and outcome, at the outcome's station) for the rows of ``df``.

    ``scaling`` (from an earlier call on all rows) fixes centres and exponents, so the shuffled
    rows of a later round are encoded exactly like the first description. Every column must be
    one the node policy allows; a categorical feature has at most its ceiling of categories.
    """
    if len(df) == 0:
        raise InputError("has no records", station=station)
    mine = [f for f in spec.features if f.station == station]
    own = [spec.outcome_column] + ([spec.time_column] if spec.time_column else [])
    used = [f.column for f in mine] + (own if spec.outcome_station == station else [])
    if spec.strata is not None and spec.strata[0] == station:
        used.append(spec.strata[1])
    missing_cols = [c for c in used if c not in df.columns]
    if missing_cols:
        hint = next((h for h in (column_hint(c, df.columns) for c in missing_cols) if h), "")
        raise InputError(f"missing column(s) {', '.join(repr(c) for c in missing_cols)}{hint}", station=station)
    check_columns(policy, station, df, used, spec.linkage)
    features: list[dict] = []
    columns: list[np.ndarray] = []
    low: list[np.ndarray | None] = []   # per feature, its low-bits column (None: its encoding is exact)
    complete = np.ones(len(df), dtype=bool)
    if spec.outcome_station == station and spec.model == "logistic":  # the intercept lives with the outcome
        features.append({"name": INTERCEPT, "column": None, "level": None, "centre": 0.0, "exponent": 0})
        columns.append(np.full(len(df), 1 << FRAC_BITS_X, dtype=np.int64))
        low.append(None)
    if scaling is not None:   # the round-1 descriptions of the model's columns (their low-bits columns follow)
        scaling = [d for d in scaling if "low_bits_of" not in d]
    fixed = {(d["column"], d["level"], d.get("term", 0)): d for d in (scaling or [])}
    for f in mine:
        raw = df[f.column]
        categorical = f.type == "categorical" or (f.type is None and not pd.api.types.is_numeric_dtype(raw)
                                                    and raw.dtype != bool)
        complete &= raw.notna().to_numpy()
        if not categorical:
            series = _numeric(df, station, f.column)
            d = fixed.get((f.column, None, 0))
            centre, exponent = (d["centre"], d["exponent"]) if d else _scaling(series, station, f.column)
            binary = d["binary"] if d else bool(series.dropna().isin([0.0, 1.0]).all())
            features.append({"name": f.column, "column": f.column, "level": None, "centre": centre, "exponent": exponent,
                             "binary": binary})
            columns.append(_encode(series, centre, exponent, station, f.column))
            low.append(_low_bits(series, centre, exponent, d))
            if f.spline is not None:   # the spline's nonlinear terms, computed here from this station's column
                knots = d["spline"]["knots"] if d else _knots(series, f.spline, policy, station, f.column)
                features[-1]["spline"] = {"knots": knots}
                earlier = [series.to_numpy(dtype=float)]   # the column, then each earlier nonlinear term
                for term, term_values in enumerate(rcs_basis(earlier[0], knots).T, start=1):
                    name = spline_term_name(f.column, term)
                    d = fixed.get((f.column, None, term))
                    minus = d["minus"] if d else _residual_coefficients(term_values, earlier)
                    values = pd.Series(term_values - np.column_stack(earlier) @ minus, index=series.index)
                    values = values.where(series.notna())
                    centre, exponent = (d["centre"], d["exponent"]) if d else _scaling(values, station, name)
                    features.append({"name": name, "column": f.column, "level": None, "term": term, "minus": minus,
                                     "spline": {"knots": knots}, "centre": centre, "exponent": exponent, "binary": False})
                    columns.append(_encode(values, centre, exponent, station, name))
                    low.append(_low_bits(values, centre, exponent, d))
                    earlier.append(term_values)
            continue
        text = _labels(raw)
        # without a "type", a column of numbers with a few words (a marker for missing values) became categorical
        mostly_numbers = scaling is None and f.type is None and "most values are numbers" in not_numeric_hint(raw)
        if f.merge:   # the researcher's merged levels (a rare level joins another)
            text = _merged(text, f.merge, station, f.column)
        if scaling is None:
            levels = sorted(text.dropna().unique())
            if len(levels) < 2:
                raise InputError("has fewer than two categories at this station", station=station, column=f.column)
            if len(levels) > policy.max_categories:
                hint = not_numeric_hint(raw) if f.type is None else ""
                raise InputError(f"has more than {policy.max_categories} categories (node policy max_categories){hint}",
                                 station=station, column=f.column)
            ref = f.reference if f.reference is not None else levels[0]
            if ref not in levels:
                merged = " after 'merge' (name the level it joins)" if ref in dict(f.merge) else ""
                raise InputError(f"reference level '{ref}' does not occur{merged}", station=station, column=f.column)
            dummy_levels = [lv for lv in levels if lv != ref]
        else:
            dummy_levels = [d["level"] for d in scaling if d["column"] == f.column and d["level"] is not None]
            ref = next(d["reference"] for d in scaling if d["column"] == f.column and d["level"] is not None)
        for lv in dummy_levels:
            dummy = (text == lv).astype(float).where(text.notna())
            d = fixed.get((f.column, lv, 0))
            centre, exponent = (d["centre"], d["exponent"]) if d else _scaling(dummy, station, f"{f.column}={lv}")
            features.append({"name": f"{f.column}={lv}", "column": f.column, "level": lv, "reference": ref,
                             "centre": centre, "exponent": exponent, "binary": True,
                             **({"mostly_numbers": True} if mostly_numbers else {})})
            columns.append(_encode(dummy, centre, exponent, station, f.column))
            low.append(None)
    for j, bits in enumerate(list(low)):   # after every feature, so that feature indices stay those of the model
        if bits is not None:
            features[j]["low_bits"] = True
            features.append({"name": f"{features[j]['name']} (low bits)", "low_bits_of": j})
            columns.append(bits)
    strata = None
    if spec.strata is not None and spec.strata[0] == station:
        text = _labels(df[spec.strata[1]])
        if spec.strata_merge:
            text = _merged(text, spec.strata_merge, station, spec.strata[1])
        if strata_levels is None:
            strata_levels = sorted(text.dropna().unique())
            if len(strata_levels) > policy.max_categories:
                raise InputError(f"has more than {policy.max_categories} categories (node policy max_categories): too "
                                 "many strata", station=station, column=spec.strata[1])
        codes = {lv: i for i, lv in enumerate(strata_levels)}
        strata = np.array([codes.get(v, -1) if v is not None else -1 for v in text], dtype=np.int64)
        complete &= strata >= 0
    dummies: list[np.ndarray] = []
    if strata is not None and spec.outcome_station != station:
        # not at the hub, which orders the times: the levels go into the shared design as 0/1 integer columns
        # (no fixed point, no coefficient), which select each record's stratum copy on shares (cox_fit)
        dummies = [(strata == s).astype(np.int64) for s in range(len(strata_levels))]
    open_names = [f"complete:{station}"]
    open_cols = []
    times = None
    if spec.outcome_station == station:
        what = "the event indicator" if spec.model == "cox" else "the outcome"
        y = true_false_as_numbers(df[spec.outcome_column])
        if not pd.api.types.is_numeric_dtype(y) and y.dtype != bool:
            raise InputError(f"{what} must be binary 0/1{not_numeric_hint(y)}", station=station,
                             column=spec.outcome_column)
        present = y.dropna().astype(float)
        if not present.isin([0.0, 1.0]).all():
            raise InputError(f"{what} must be binary 0/1: it has other values", station=station,
                             column=spec.outcome_column)
        if spec.model == "cox" and not (present == 1.0).any():
            raise InputError("has no events (no 1s) at this station", station=station, column=spec.outcome_column)
        if spec.model != "cox" and present.nunique() < 2:
            raise InputError("the outcome has only one value at this station", station=station,
                             column=spec.outcome_column)
        complete &= y.notna().to_numpy()
        if spec.model == "cox":
            times = _survival_times(df, station, spec.time_column)
            complete &= np.isfinite(times)
        open_names.append("outcome")
        open_cols.append(np.nan_to_num(y.to_numpy(dtype=float)).astype(np.int64))
    open_cols.insert(0, complete.astype(np.int64))
    values = np.column_stack(columns + dummies + open_cols)
    values[~complete, :len(columns) + len(dummies)] = 0
    return Block(features=features, open=open_names, values=values.astype(np.int64), times=times, strata=strata,
                 strata_levels=strata_levels if strata is not None else None, strata_columns=len(dummies))


def _survival_times(df: pd.DataFrame, station: str, column: str) -> np.ndarray:
    t = df[column]
    if not pd.api.types.is_numeric_dtype(t) or t.dtype == bool:
        raise InputError(f"survival times must be numeric{not_numeric_hint(t)}", station=station, column=column)
    values = t.to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise InputError("has no survival times", station=station, column=column)
    if np.any(values[finite] < 0):   # 0 is a time (a death on the day of diagnosis), as in lifelines and R
        raise InputError("survival times must not be negative (a time below 0 was found)", station=station,
                         column=column)
    return np.where(finite, values, np.nan)

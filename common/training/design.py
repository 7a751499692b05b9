"""The training spec and each station's part of the design matrix.

A station turns its own columns into fixed-point integers: numeric columns are centred on a
rounded mean and scaled by a power of two near their standard deviation (so integer-valued columns
such as age are encoded exactly, and every column has a comparable range, which keeps the
Hessian inside the 64-bit ring); categorical columns become one dummy per non-reference level.
The centre and the power of two are per-station aggregates over all of the station's rows (never
cohort values) and let the coordinator report coefficients on the original scale.

Example spec (docs/spec.md)::

    {"linkage": {...}, "model": "logistic",
     "outcome": {"station": "registry", "column": "death_within_2y"},
     "features": [{"station": "registry", "column": "age_at_diagnosis"},
                  {"station": "registry", "column": "stage", "type": "categorical", "reference": "I"},
                  {"station": "gp_1", "column": "copd"}],
     "penalty": 0.0, "max_iterations": 25, "tolerance": 1e-6}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..disclosure import SURVIVAL_GRID_DAYS, quantile_allowed
from ..policy import NodePolicy, check_columns
from ..runtime.errors import InputError
from .terms import HARRELL_QUANTILES, SPLINE_KNOTS, rcs_basis, round_knot, spline_term_name

MODELS = ("logistic", "cox")
TIES = ("efron", "breslow")
# days: 3 and 6 months, 1, 2, 3 and 5 years; a fixed grid, never a time derived from the data
DEFAULT_SURVIVAL_TIMES = SURVIVAL_GRID_DAYS
DEFAULT_CONCORDANCE_BINS = 32
FRAC_BITS_X = 16          # fixed-point bits of an encoded feature
MAX_ENCODED = 32.0        # |encoded value| bound: about 32-64 standard deviations from the centre
INTERCEPT = "(intercept)"


@dataclass(frozen=True)
class Feature:
    station: str
    column: str
    type: str | None = None        # "numeric", "categorical" or None (decided from the column's type)
    reference: str | None = None   # categorical: the level left out (default: the first, sorted)
    spline: tuple[float, ...] | int | None = None   # restricted cubic spline: its knots, or how many (station quantiles)


@dataclass(frozen=True)
class Interaction:
    """The product of two model columns (each also a feature); ``a`` is the factor whose effect is reported
    within the levels (or at the values ``at``) of ``b``."""

    a: tuple[str, str]
    b: tuple[str, str]
    at: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TrainSpec:
    """``outcome_*`` is the binary outcome (logistic) or the event indicator (Cox, with ``time_column``
    at the same station)."""

    model: str
    outcome_station: str
    outcome_column: str
    features: tuple[Feature, ...]
    linkage: dict | None
    penalty: float = 0.0
    max_iterations: int = 25
    tolerance: float = 1e-6
    time_column: str | None = None
    ties: str = "efron"
    survival_times: tuple[float, ...] = DEFAULT_SURVIVAL_TIMES
    concordance_bins: int = DEFAULT_CONCORDANCE_BINS
    interactions: tuple[Interaction, ...] = ()
    strata: tuple[str, str] | None = None     # Cox: a categorical column with a baseline hazard per level

    def stations_with_features(self) -> list[str]:
        seen: list[str] = []
        for f in self.features:
            if f.station not in seen:
                seen.append(f.station)
        return seen


def _var(raw: Any, where: str) -> tuple[str, str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("station"), str) or not isinstance(raw.get("column"), str):
        raise InputError(f"{where}: expected {{\"station\": NAME, \"column\": COLUMN}}")
    return raw["station"], raw["column"]


def parse_train_spec(raw: Any, stations: list[str]) -> TrainSpec:
    if not isinstance(raw, dict):
        raise InputError("the training spec must be a JSON object")
    model = raw.get("model", "logistic")
    if model not in MODELS:
        raise InputError(f"unknown model '{model}'; available: {', '.join(MODELS)}")
    cox: dict = {}
    if model == "cox":
        if "outcome" in raw:
            raise InputError("a Cox model takes 'time' and 'event' (at the same station), not 'outcome'")
        t_station, t_column = _var(raw.get("time"), "'time'")
        o_station, o_column = _var(raw.get("event"), "'event'")
        if t_station != o_station:
            raise InputError("'time' and 'event' must be columns of the same station")
        if t_column == o_column:
            raise InputError("'time' and 'event' must be different columns")
        cox = _cox_options(raw, t_column)
    else:
        for key in ("time", "event", "ties", "survival_times", "concordance_bins"):
            if key in raw:
                raise InputError(f"'{key}' belongs to a Cox model (\"model\": \"cox\"), not to logistic regression")
        o_station, o_column = _var(raw.get("outcome"), "'outcome'")
    raw_features = raw.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise InputError("'features' must be a non-empty list of {\"station\", \"column\"} objects")
    features, raw_interactions = [], []
    for i, f in enumerate(raw_features):
        if isinstance(f, dict) and "interaction" in f:
            raw_interactions.append((i, f))
            continue
        station, column = _var(f, f"feature {i + 1}")
        unknown = set(f) - {"station", "column", "type", "reference", "spline"}
        if unknown:
            raise InputError(f"feature {i + 1} ('{column}'): unknown key(s) {', '.join(sorted(unknown))}")
        ftype = f.get("type")
        if ftype not in (None, "numeric", "categorical"):
            raise InputError(f"feature {i + 1} ('{column}'): type must be 'numeric' or 'categorical'")
        ref = f.get("reference")
        if ref is not None and ftype != "categorical":
            raise InputError(f"feature {i + 1} ('{column}'): 'reference' needs \"type\": \"categorical\"")
        spline = _spline(f, i, column) if "spline" in f else None
        features.append(Feature(station, column, ftype, None if ref is None else str(ref), spline))
    if not features:
        raise InputError("'features' must list at least one column besides interactions")
    for s, c in [(o_station, o_column)] + [(f.station, f.column) for f in features]:
        if s not in stations:
            raise InputError(f"column '{c}' is at station '{s}', which is not part of this run "
                             f"(stations: {', '.join(stations)})")
    keys = [(f.station, f.column) for f in features]
    if len(set(keys)) != len(keys):
        raise InputError("a feature is listed twice")
    if (o_station, o_column) in keys:
        raise InputError(f"the {'event' if model == 'cox' else 'outcome'} is also listed as a feature")
    if model == "cox" and (o_station, cox["time_column"]) in keys:
        raise InputError("the survival time is also listed as a feature")
    own = {(o_station, o_column): "the event" if model == "cox" else "the outcome"}
    if model == "cox":
        own[(o_station, cox["time_column"])] = "the survival time"
    interactions = _interactions(raw_interactions, features, own)
    strata = None
    if "strata" in raw:
        if model != "cox":
            raise InputError("'strata' belongs to a Cox model (a baseline hazard per level)")
        strata = _var(raw["strata"], "'strata'")
        if strata[0] not in stations:
            raise InputError(f"the strata column is at station '{strata[0]}', which is not part of this run")
        if strata in keys:
            raise InputError(f"the strata column '{strata[1]}' is also listed as a feature: a stratified model has no "
                             "coefficient for it")
        if strata in own:
            raise InputError(f"'strata' cannot be {own[strata]}")
    penalty = raw.get("penalty", 0.0)
    if not isinstance(penalty, (int, float)) or isinstance(penalty, bool) or penalty < 0:
        raise InputError("'penalty' must be a number >= 0")
    max_it = raw.get("max_iterations", 25)
    if not isinstance(max_it, int) or isinstance(max_it, bool) or not 1 <= max_it <= 100:
        raise InputError("'max_iterations' must be an integer from 1 to 100")
    tol = raw.get("tolerance", 1e-6)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 1e-12 <= tol < 1:
        # a tinier tolerance adds openings of the linear predictors at nearly equal coefficients,
        # across which the coordinator could pair records (docs/leakage/training.md)
        raise InputError("'tolerance' must be a number from 1e-12 to 1")
    linkage = raw.get("linkage")
    if linkage is not None and not isinstance(linkage, dict):
        raise InputError("'linkage' must be a linkage spec object")
    return TrainSpec(model, o_station, o_column, tuple(features), linkage, float(penalty), max_it, float(tol), **cox,
                     interactions=interactions, strata=strata)


def _spline(f: dict, i: int, column: str) -> tuple[float, ...] | int:
    raw = f["spline"]
    where = f"feature {i + 1} ('{column}')"
    if f.get("type") == "categorical":
        raise InputError(f"{where}: a spline needs a numeric column, not a categorical one")
    knots = raw.get("knots") if isinstance(raw, dict) and set(raw) <= {"knots"} else None
    lo, hi = SPLINE_KNOTS
    if isinstance(knots, int) and not isinstance(knots, bool):
        if not lo <= knots <= hi:
            raise InputError(f"{where}: a spline takes {lo} to {hi} knots")
        return knots
    if (isinstance(knots, list) and lo <= len(knots) <= hi
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in knots)):
        if any(b <= a for a, b in zip(knots, knots[1:])):
            raise InputError(f"{where}: spline knots must be strictly increasing")
        return tuple(float(t) for t in knots)
    raise InputError(f"{where}: 'spline' must be {{\"knots\": N}} ({lo}-{hi}: placed at quantiles of the station's "
                     f"column) or {{\"knots\": [t1, t2, ...]}} ({lo}-{hi} increasing values)")


def _interactions(raw: list[tuple[int, dict]], features: list[Feature], own: dict) -> tuple[Interaction, ...]:
    """``{"interaction": [A, B], "at": [values]}``: both factors must be features (an interaction needs its
    main effects), different columns, neither a spline nor the outcome."""
    listed = {(f.station, f.column): f for f in features}
    out: list[Interaction] = []
    for i, f in raw:
        pair = f.get("interaction")
        unknown = set(f) - {"interaction", "at"}
        if unknown:
            raise InputError(f"feature {i + 1}: unknown key(s) {', '.join(sorted(unknown))} in an interaction")
        if not isinstance(pair, list) or len(pair) != 2:
            raise InputError(f"feature {i + 1}: 'interaction' must list exactly two {{\"station\", \"column\"}} objects")
        a, b = (_var(v, f"feature {i + 1} (interaction)") for v in pair)
        label = f"{a[1]}:{b[1]}"
        for v in (a, b):
            if v in own:
                raise InputError(f"interaction '{label}': {v[1]} is {own[v]}, which cannot be part of an interaction")
        if a == b:
            raise InputError(f"interaction '{label}': a column times itself is not an interaction (for a curve, give "
                             "the feature a spline)")
        for v in (a, b):
            if v not in listed:
                raise InputError(f"interaction '{label}': '{v[1]}' (station '{v[0]}') is not among the features; an "
                                 "interaction needs both main effects in the model")
            if listed[v].spline is not None:
                raise InputError(f"interaction '{label}': '{v[1]}' has a spline; interactions with spline terms are "
                                 "not supported (interact with the column without a spline)")
        if any({a, b} == {o.a, o.b} for o in out):
            raise InputError(f"interaction '{label}' is listed twice")
        at = f.get("at")
        if at is not None:
            if (not isinstance(at, list) or not 1 <= len(at) <= 20
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in at)):
                raise InputError(f"interaction '{label}': 'at' must be a list of 1 to 20 numbers (values of '{b[1]}')")
            if listed[b].type == "categorical":
                raise InputError(f"interaction '{label}': 'at' is for a numeric second factor; '{b[1]}' is categorical "
                                 "(its effect is shown in every level)")
            at = tuple(float(x) for x in at)
        out.append(Interaction(a, b, at))
    return tuple(out)


def _cox_options(raw: dict, time_column: str) -> dict:
    ties = raw.get("ties", "efron")
    if ties not in TIES:
        raise InputError(f"'ties' must be one of {', '.join(TIES)}")
    times = raw.get("survival_times", list(DEFAULT_SURVIVAL_TIMES))
    if (not isinstance(times, list) or not times or len(times) > 100
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in times)):
        raise InputError("'survival_times' must be a list of 1 to 100 positive numbers (in the time column's unit)")
    bins = raw.get("concordance_bins", DEFAULT_CONCORDANCE_BINS)
    if not isinstance(bins, int) or isinstance(bins, bool) or not 4 <= bins <= 256:
        raise InputError("'concordance_bins' must be an integer from 4 to 256")
    return {"time_column": time_column, "ties": ties, "survival_times": tuple(sorted(float(t) for t in set(times))),
            "concordance_bins": bins}


@dataclass
class Block:
    """One station's encoded columns: model features, then its open columns (completeness, outcome)."""

    features: list[dict]      # name, column, level, centre, exponent
    open: list[str]           # "complete:<station>" and, at the hub, "outcome" (Cox: the event indicator)
    values: np.ndarray        # int64, rows x (len(features) + len(open))
    times: np.ndarray | None = None   # Cox, at the event's station: survival times (NaN where missing)
    strata: np.ndarray | None = None  # Cox, at the strata column's station: level codes (-1 where missing)
    strata_levels: list[str] | None = None

    def meta(self) -> dict:
        out = {"features": [{**f, "max_bits": b} for f, b in zip(self.features, self.max_bits())], "open": self.open,
               "sumsq_bits": self.sumsq_bits()}
        if self.strata_levels is not None:
            out["strata_levels"] = self.strata_levels
        return out

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
        raise InputError("is not numeric: give it \"type\": \"categorical\" or fix the values",
                         station=station, column=column)
    return s.astype(float)


def _scaling(values: pd.Series, station: str, name: str) -> tuple[float, int]:
    """Centre (rounded mean) and power-of-two exponent (about the standard deviation), from all rows."""
    present = values.dropna()
    if len(present) < 2 or present.nunique() < 2:
        raise InputError("is constant (or almost all missing) at this station: it cannot be a feature",
                         station=station, column=name)
    mean, sd = float(present.mean()), float(present.std(ddof=0))
    centre = float(round(mean)) if abs(mean) >= 1 else 0.0
    exponent = int(math.ceil(math.log2(sd))) if sd > 0 else 0
    return centre, exponent


def _encode(values: pd.Series, centre: float, exponent: int, station: str, name: str) -> np.ndarray:
    scaled = (values.to_numpy(dtype=float) - centre) / 2.0 ** exponent
    finite = np.isfinite(scaled)
    if np.any(np.abs(scaled[finite]) > MAX_ENCODED):
        raise InputError(f"has values more than {int(MAX_ENCODED)} standard deviations from its mean: "
                         "check units or outliers, or transform the column", station=station, column=name)
    out = np.zeros(len(scaled), dtype=np.int64)
    out[finite] = np.rint(scaled[finite] * 2 ** FRAC_BITS_X).astype(np.int64)
    return out


def _labels(raw: pd.Series) -> pd.Series:
    """Category labels as text (1.0 -> "1"), None where missing."""
    return raw.map(lambda v: None if pd.isna(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)))


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
        raise InputError(f"missing column(s) {', '.join(repr(c) for c in missing_cols)}", station=station)
    check_columns(policy, station, df, used, spec.linkage)
    features: list[dict] = []
    columns: list[np.ndarray] = []
    complete = np.ones(len(df), dtype=bool)
    if spec.outcome_station == station and spec.model == "logistic":  # the intercept lives with the outcome
        features.append({"name": INTERCEPT, "column": None, "level": None, "centre": 0.0, "exponent": 0})
        columns.append(np.full(len(df), 1 << FRAC_BITS_X, dtype=np.int64))
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
            if f.spline is not None:   # the spline's nonlinear terms, computed here from this station's column
                knots = d["spline"]["knots"] if d else _knots(series, f.spline, policy, station, f.column)
                features[-1]["spline"] = {"knots": knots}
                basis = rcs_basis(series.to_numpy(dtype=float), knots)
                for term in range(1, len(knots) - 1):
                    name = spline_term_name(f.column, term)
                    values = pd.Series(basis[:, term - 1], index=series.index).where(series.notna())
                    d = fixed.get((f.column, None, term))
                    centre, exponent = (d["centre"], d["exponent"]) if d else _scaling(values, station, name)
                    features.append({"name": name, "column": f.column, "level": None, "term": term,
                                     "spline": {"knots": knots}, "centre": centre, "exponent": exponent, "binary": False})
                    columns.append(_encode(values, centre, exponent, station, name))
            continue
        text = _labels(raw)
        if scaling is None:
            levels = sorted(text.dropna().unique())
            if len(levels) < 2:
                raise InputError("has fewer than two categories at this station", station=station, column=f.column)
            if len(levels) > policy.max_categories:
                raise InputError(f"has more than {policy.max_categories} categories (node policy max_categories)",
                                 station=station, column=f.column)
            ref = f.reference if f.reference is not None else levels[0]
            if ref not in levels:
                raise InputError(f"reference level '{ref}' does not occur", station=station, column=f.column)
            dummy_levels = [lv for lv in levels if lv != ref]
        else:
            dummy_levels = [d["level"] for d in scaling if d["column"] == f.column and d["level"] is not None]
            ref = next(d["reference"] for d in scaling if d["column"] == f.column and d["level"] is not None)
        for lv in dummy_levels:
            dummy = (text == lv).astype(float).where(text.notna())
            d = fixed.get((f.column, lv, 0))
            centre, exponent = (d["centre"], d["exponent"]) if d else _scaling(dummy, station, f"{f.column}={lv}")
            features.append({"name": f"{f.column}={lv}", "column": f.column, "level": lv, "reference": ref,
                             "centre": centre, "exponent": exponent, "binary": True})
            columns.append(_encode(dummy, centre, exponent, station, f.column))
    strata = None
    if spec.strata is not None and spec.strata[0] == station:
        text = _labels(df[spec.strata[1]])
        if strata_levels is None:
            strata_levels = sorted(text.dropna().unique())
            if len(strata_levels) > policy.max_categories:
                raise InputError(f"has more than {policy.max_categories} categories (node policy max_categories): too "
                                 "many strata", station=station, column=spec.strata[1])
        codes = {lv: i for i, lv in enumerate(strata_levels)}
        strata = np.array([codes.get(v, -1) if v is not None else -1 for v in text], dtype=np.int64)
        complete &= strata >= 0
    open_names = [f"complete:{station}"]
    open_cols = []
    times = None
    if spec.outcome_station == station:
        what = "the event indicator" if spec.model == "cox" else "the outcome"
        y = df[spec.outcome_column]
        if not pd.api.types.is_numeric_dtype(y) and y.dtype != bool:
            raise InputError(f"{what} must be binary 0/1", station=station, column=spec.outcome_column)
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
    values = np.column_stack(columns + open_cols) if columns else np.column_stack(open_cols)
    for j in range(len(columns)):
        values[~complete, j] = 0
    return Block(features=features, open=open_names, values=values.astype(np.int64), times=times, strata=strata,
                 strata_levels=strata_levels if strata is not None else None)


def _survival_times(df: pd.DataFrame, station: str, column: str) -> np.ndarray:
    t = df[column]
    if not pd.api.types.is_numeric_dtype(t) or t.dtype == bool:
        raise InputError("survival times must be numeric", station=station, column=column)
    values = t.to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise InputError("has no survival times", station=station, column=column)
    if np.any(values[finite] <= 0):
        raise InputError("survival times must be positive (a time of 0 or less was found)", station=station,
                         column=column)
    return np.where(finite, values, np.nan)

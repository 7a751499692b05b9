"""The training spec: what the researcher asks for, checked before anything runs.

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

from ..disclosure import SURVIVAL_GRID_DAYS
from ..runtime.errors import InputError
from .terms import SPLINE_KNOTS

MODELS = ("logistic", "cox")
TIES = ("efron", "breslow")
# days: 3 and 6 months, 1, 2, 3 and 5 years; a fixed grid, never a time derived from the data
DEFAULT_SURVIVAL_TIMES = SURVIVAL_GRID_DAYS
DEFAULT_CONCORDANCE_BINS = 32
INTERCEPT = "(intercept)"
DEFAULT_REPETITIONS = 100    # internal validation: bootstrap resamples (lancelot.training.validation)
MAX_REPETITIONS = 1000
DEFAULT_BINS = 64            # and the bins of the resample models' scores
BIN_CHOICES = (32, 64, 128)  # powers of two: K 2^m divides 2^64, so the masked scores hide perfectly
DEFAULT_FOLDS = 5            # Cox internal validation: k-fold cross-validation (lancelot.training.cox_validation)
FOLD_CHOICES = range(2, 11)


@dataclass(frozen=True)
class Feature:
    station: str
    column: str
    type: str | None = None        # "numeric", "categorical" or None (decided from the column's type)
    reference: str | None = None   # categorical: the level left out (default: the first, sorted)
    spline: tuple[float, ...] | int | None = None   # restricted cubic spline: its knots, or how many (station quantiles)
    merge: tuple[tuple[str, str], ...] = ()   # categorical: (level, the level it joins), applied at the station


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
    strata_merge: tuple[tuple[str, str], ...] = ()   # its merged levels (as a feature's "merge")
    validation: dict | None = None            # logistic: {"repetitions": B, "bins": K} (bootstrap optimism)

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
        unknown = set(f) - {"station", "column", "type", "reference", "spline", "merge"}
        if unknown:
            raise InputError(f"feature {i + 1} ('{column}'): unknown key(s) {', '.join(sorted(unknown))}")
        ftype = f.get("type")
        if ftype not in (None, "numeric", "categorical"):
            raise InputError(f"feature {i + 1} ('{column}'): type must be 'numeric' or 'categorical'")
        ref = f.get("reference")
        if ref is not None and ftype != "categorical":
            raise InputError(f"feature {i + 1} ('{column}'): 'reference' needs \"type\": \"categorical\"")
        spline = _spline(f, i, column) if "spline" in f else None
        features.append(Feature(station, column, ftype, None if ref is None else str(ref), spline,
                                _merge(f, i, column, ftype)))
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
    strata, strata_merge = None, ()
    if "strata" in raw:
        if model != "cox":
            raise InputError("'strata' belongs to a Cox model (a baseline hazard per level)")
        strata = _var(raw["strata"], "'strata'")
        strata_merge = _merge(raw["strata"], -1, strata[1], "categorical")
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
                     interactions=interactions, strata=strata, strata_merge=strata_merge,
                     validation=_validation(raw, model))


def _validation(raw: dict, model: str) -> dict | None:
    """Logistic: ``{"method": "bootstrap", "repetitions": B, "bins": K}`` (optimism correction, defaults 100 and 64);
    Cox: ``{"method": "cross-validation", "folds": F, "bins": K}`` (defaults 5 and 64)."""
    if "validation" not in raw:
        return None
    v = raw["validation"]
    cox = model == "cox"
    method = "cross-validation" if cox else "bootstrap"
    keys = {"method", "folds", "bins"} if cox else {"method", "repetitions", "bins"}
    shape = ('{"method": "cross-validation", "folds": F, "bins": K}' if cox
             else '{"method": "bootstrap", "repetitions": B, "bins": K}')
    if not isinstance(v, dict) or set(v) - keys:
        raise InputError(f"'validation' must be {shape}")
    if v.get("method", method) != method:
        raise InputError(f"'validation': the method built for a {'Cox' if cox else 'logistic'} model is \"{method}\""
                         + (" (the bootstrap's refits would need every resample's risk-set sums)" if cox else ""))
    bins = check_bins(v.get("bins", DEFAULT_BINS))
    if cox:
        return {"folds": check_folds(v.get("folds", DEFAULT_FOLDS)), "bins": bins}
    reps = v.get("repetitions", DEFAULT_REPETITIONS)
    if not isinstance(reps, int) or isinstance(reps, bool) or not 10 <= reps <= MAX_REPETITIONS:
        raise InputError(f"'validation': 'repetitions' must be an integer from 10 to {MAX_REPETITIONS}")
    return {"repetitions": reps, "bins": bins}


def check_folds(folds, station: str | None = None) -> int:
    """The number of folds, checked for the researcher's spec and again by each station on its payload."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds not in FOLD_CHOICES:
        raise InputError("'validation': 'folds' must be an integer from 2 to 10", station=station)
    return folds


def check_bins(bins, station: str | None = None) -> int:
    """The validation's bins, checked for the researcher's spec and again by each station on its payload."""
    if not isinstance(bins, int) or isinstance(bins, bool) or bins not in BIN_CHOICES:
        raise InputError(f"'validation': 'bins' must be one of {', '.join(map(str, BIN_CHOICES))}", station=station)
    return bins


def _merge(f: dict, i: int, column: str, ftype: str | None) -> tuple[tuple[str, str], ...]:
    """A categorical feature's merged levels: {"occult": "IV"} counts the few 'occult' patients as stage IV, so
    that a rare level need not cost the whole feature (its cells would be refused as fewer than k)."""
    raw = f.get("merge")
    if raw is None:
        return ()
    where = f"feature {i + 1} ('{column}')" if i >= 0 else f"'strata' ('{column}')"
    if ftype != "categorical":
        raise InputError(f"{where}: 'merge' needs \"type\": \"categorical\"")
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                       for v in raw.values()):
        raise InputError(f"{where}: 'merge' maps levels to the level they join, e.g. {{\"occult\": \"IV\"}}")
    pairs = tuple((str(k), str(v)) for k, v in raw.items())
    chained = [k for k, v in pairs if v in raw and v != k]
    if chained:
        raise InputError(f"{where}: 'merge' moves level(s) {chained} into a level that is itself merged: name the "
                         "final level")
    return pairs


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

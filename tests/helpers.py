"""Shared test helpers: synthetic studies on disk and a direct (in-memory) transport that records traffic."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lancelot.policy import NodePolicy
from lancelot.runtime.coordinator import Coordinator
from lancelot.runtime.state import JobState
from lancelot.runtime.station import StationContext, run_step
from lancelot.synth import generate


def make_study(folder: Path, patients: int = 800, gp_stations: int = 1, seed: int = 3,
               error_level: str = "default") -> dict[str, Path]:
    return generate(n_patients=patients, gp_stations=gp_stations, seed=seed, error_level=error_level).write(folder)


def station_paths(paths: dict[str, Path]) -> dict[str, Path]:
    return {name: path for name, path in paths.items() if name == "registry" or name.startswith("gp_")}


class RecordingTransport:
    """Runs steps in this process (fresh state folder per station) and keeps every message as JSON text.

    A test double for the protocols: it skips the station guard, which tests/test_station_guard.py
    exercises on the in-process network. ``policies`` maps station -> NodePolicy keyword arguments.
    """

    def __init__(self, steps: dict, data: dict[str, pd.DataFrame], policies: dict | None = None):
        self.steps = steps
        self.data = data
        self.folders = {s: tempfile.mkdtemp(prefix=f"state-{s}-") for s in data}
        self.policies = {s: NodePolicy(**(policies or {}).get(s, {})) for s in data}
        self.sent: list[tuple[str, str]] = []       # (station, payload JSON)
        self.received: list[tuple[str, str]] = []   # (station, result JSON)

    def run_round(self, calls, wait=True):
        out = {}
        for station, call in calls.items():
            self.sent.append((station, json.dumps(call.payload)))
            ctx = StationContext(station, self.data[station], JobState(self.folders[station]), self.policies[station])
            result = run_step(self.steps, ctx, call.step, json.loads(json.dumps(call.payload)))
            self.received.append((station, json.dumps(result)))
            out[station] = json.loads(json.dumps(result))
        return out


def recording_coordinator(steps: dict, paths: dict[str, Path], policies: dict | None = None):
    data = {name: pd.read_csv(path) for name, path in station_paths(paths).items()}
    transport = RecordingTransport(steps, data, policies)
    return Coordinator(transport, list(data), progress=False), transport


def link_quality(links: list[dict], truth: pd.DataFrame, hub: str = "registry") -> dict[str, tuple[float, float, float]]:
    out = {}
    for station in sorted(truth["station"].unique()):
        true = set(map(tuple, truth[truth.station == station][["registry_id", "station_id"]].astype(str).values))
        got = {(str(lk[hub]), str(lk[station])) for lk in links if station in lk}
        tp = len(true & got)
        p, r = tp / max(len(got), 1), tp / len(true)
        out[station] = (p, r, 2 * p * r / (p + r) if tp else 0.0)
    return out


def walk_strings(obj):
    """Every string in a JSON document, keys included (to search relayed payloads for identifiers)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from walk_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_strings(v)
    elif isinstance(obj, str):
        yield obj


REG, GP = "registry", "gp_1"


def source(feature: dict) -> str:
    """The joined frame's name of a feature: a later GP station's clashing columns carry a suffix."""
    return feature["column"] if feature["station"] in (REG, GP) else f"{feature['column']}_{feature['station']}"


def joined(study, links: list[dict], stations: list[str]) -> pd.DataFrame:
    """The linked records of an evaluation run, joined in plain text (the pooled reference's data)."""
    frame = pd.DataFrame(links)
    out = None
    for s in stations[1:]:
        part = frame[[REG, s]].dropna()
        out = part if out is None else out.merge(part, on=REG)
    out = out.merge(pd.read_csv(study[REG]), left_on=REG, right_on="record_id")
    for s in stations[1:]:
        gp = pd.read_csv(study[s])
        if s != GP:
            gp = gp.add_suffix(f"_{s}")
        out = out.merge(gp, left_on=s, right_on="patient_nr" if s == GP else f"patient_nr_{s}")
    return out


def pooled_design(linked: pd.DataFrame, features: list[dict], keep: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Complete cases and the design matrix named like lancelot's (dummies per non-reference level)."""
    cols = [source(f) for f in features]
    data = linked[cols + keep].dropna()
    parts = {}
    for f in features:
        col = data[source(f)]
        if f.get("type") != "categorical":
            parts[f["column"]] = col.astype(float)
            continue
        levels = sorted(col.astype(str).unique())
        for lv in levels:
            if lv != f.get("reference", levels[0]):
                parts[f"{f['column']}={lv}"] = (col.astype(str) == lv).astype(float)
    return pd.DataFrame(parts, index=data.index), data


def pooled_with_products(study, paths, result, features, keep, stations):
    """The linked complete cases in plain text with the products a formula ``a * b`` adds, named like lancelot's."""
    linked = joined({**study, **paths}, result["links"], stations)
    mains = [f for f in features if "interaction" not in f]
    x, data = pooled_design(linked, mains, keep)
    for f in features:
        if "interaction" not in f:
            continue
        a, b = f["interaction"]
        cols_a = [c for c in x.columns if c == a["column"] or c.startswith(a["column"] + "=")]
        cols_b = [c for c in x.columns if c == b["column"] or c.startswith(b["column"] + "=")]
        for ca in cols_a:
            for cb in cols_b:
                x[f"{ca}:{cb}"] = x[ca] * x[cb]
    return x, data



NODE_ROUNDING_BASE = 5   # the node policy's default rounding base (lancelot.policy.NodePolicy)


def rounded(count: int, base: int = NODE_ROUNDING_BASE) -> int:
    """The reference rounding of a released count, written out here: the nearest multiple of ``base``, halves up."""
    return int(base * math.floor(count / base + 0.5))


def significant(value: float, digits: int = 4) -> float:
    """The reference rounding of a released magnitude: ``digits`` significant digits."""
    return float(f"{value:.{digits}g}")


def is_significant(value: float, digits: int = 4) -> bool:
    """A released magnitude carries at most ``digits`` significant digits."""
    return value == float(f"{value:.{digits}g}")


def spaced_reference(time: pd.Series, event: pd.Series, requested: list[float], k: int) -> tuple[list, list]:
    """The survival-time rule on the pooled records, written out here: a requested time is released when at
    least k records are at risk and at least k events happened since the previous released time."""
    kept, withheld, previous = [], [], 0
    for t in sorted(requested):
        events = int(((time <= t) & (event == 1)).sum())
        if int((time >= t).sum()) < k:
            withheld.append({"time": t, "reason": f"fewer than {k} at risk"})
        elif events - previous < k:
            withheld.append({"time": t, "reason": f"fewer than {k} events since the previous released time"})
        else:
            kept.append(t)
            previous = events
    return kept, withheld


def mean_step(value: float, sd: float, n: int, base: int) -> float:
    """The grid a released mean or SD lies on (docs/leakage/disclosure.md): base x SD / n rounded up to 1, 2
    or 5 times a power of ten, or one unit of the 4th significant digit of ``value`` if that is coarser."""
    import math

    grid = base * sd / n
    step = min(m * 10.0 ** e for e in range(-15, 8) for m in (1, 2, 5) if m * 10.0 ** e >= grid * (1 - 1e-12))
    return max(step, 10.0 ** (math.floor(math.log10(abs(value))) - 3)) if value else step


def check_moments(got: dict, values, base: int) -> None:
    """Released mean and SD lie within half a step of the pooled ones, the step being the documented grid:
    base x SD / n rounded up to 1, 2 or 5 times a power of ten (docs/leakage/disclosure.md), or 4
    significant digits if that is coarser; the variance is the square of the released SD."""
    x = values.dropna()
    n, mean, sd = len(x), x.mean(), x.std(ddof=1)
    assert abs(got["mean"] - mean) <= mean_step(mean, sd, n, base) / 2 + 1e-9
    assert abs(got["sd"] - sd) <= mean_step(sd, sd, n, base) / 2 + 1e-9
    assert got["variance"] == pytest.approx(got["sd"] ** 2, rel=5e-4)  # 4 significant digits


def harrell(x: np.ndarray, knots) -> np.ndarray:
    """Harrell's restricted cubic spline terms (rcspline.eval, norm=2), written out independently."""
    t = np.asarray(knots, float)
    k = len(t)
    plus = lambda u: np.clip(u, 0, None) ** 3   # noqa: E731
    cols = [(plus(x - t[j]) - plus(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
             + plus(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])) / (t[k - 1] - t[0]) ** 2
            for j in range(k - 2)]
    return np.column_stack(cols)


def assert_close_in_se(table, params, bse, absolute=1e-6, estimate_se=2e-6, se_rel=5e-6):
    """Non-integer columns (a BMI at one decimal, a spline's cubic terms) are not exact in fixed point: the
    stations send each to 2^-32 of its scale in two 16-bit columns (design._low_bits). Estimates and standard
    errors within 1e-6 absolutely of the pooled fit (the issue's bound), and estimates within 2e-6 standard
    errors, standard errors within 5e-6 relatively. With one 16-bit column the spline fits were off by up to
    2.1e-6 absolutely (1e-5 standard errors); before the nonlinear terms were residualised on the column,
    collinear cubic terms amplified the rounding to about 1e-4 standard errors."""
    se = bse[table.index]
    est_diff, se_diff = (table["estimate"] - params[table.index]).abs(), (table["std_error"] - se).abs()
    assert est_diff.max() < absolute and se_diff.max() < absolute, (est_diff.max(), se_diff.max())
    assert (est_diff / se).max() < estimate_se
    assert (se_diff / se).max() < se_rel


def with_columns(study, folder, station, **columns):
    """The study with extra columns at one station (``columns``: name -> function of the table)."""
    df = pd.read_csv(study[station])
    for name, make in columns.items():
        df[name] = make(df)
    path = folder / f"{station}.csv"
    df.to_csv(path, index=False)
    return {**station_paths(study), station: path}


def local_study(stations: dict[str, Path], **kwargs):
    """``Study.local`` on these stations, the spec unchecked on the researcher's side: the tests see what the
    stations themselves refuse (``Study.local`` checks a spec first by default, as ``Study.login`` does)."""
    from lancelot import Study

    return Study.local(stations, check_spec=False, **kwargs)


def binned_auc(score: np.ndarray, y: np.ndarray, weight: np.ndarray, grid: tuple[float, float],
               up: np.ndarray | None = None) -> float:
    """The AUC on the protocol's bins (lo, width), ties counted half: a score u bins above lo lands in bin
    floor(u) + 1 where ``up`` says so, in bin floor(u) otherwise. Without ``up``, its expectation under the
    protocol's stochastic rounding (up with probability frac(u)): the records round independently and the
    AUC's denominator does not depend on the rounding, so the expectation is the AUC on fractional counts."""
    u = (score - grid[0]) / grid[1]
    low = np.floor(u).astype(int)
    above = u - low if up is None else up.astype(float)
    bins = low.max() + 2

    def counts(mass):
        return np.bincount(low, mass * (1 - above), bins) + np.bincount(low + 1, mass * above, bins)

    events, nonevents = counts(weight * y), counts(weight * (1 - y))
    return float(events @ (2 * (np.cumsum(nonevents) - nonevents) + nonevents) / (2 * events.sum() * nonevents.sum()))


def clear_bootstrap(x: np.ndarray, y: np.ndarray, repetitions: int, seed: int, k: int,
                    weights: np.ndarray | None = None, grid: tuple[float, float] | None = None,
                    roundings: int = 0, slope_roundings: int = 0) -> dict:
    """The same procedure in the clear: one Newton step per Poisson(1) resample from the pooled fit, the
    AUC (scikit-learn) and the calibration slope (a full statsmodels recalibration fit) of each resample
    model on its resample (frequency weights) and on the original records. ``weights`` (B, n): given
    resamples, otherwise the reference's own; ``grid`` (lo, width): also the optimisms on those bins (a
    score u bins above lo scores lo + (floor(u) + up) width, up with probability frac(u), a record's draw
    shared by its two cohorts, as in the protocol): the AUC's expectation under the rounding and its
    spread over ``roundings`` draws, the slope's mean and spread over ``slope_roundings`` draws. The
    recalibration clips scores to the fit's k-th smallest and largest linear predictor, as lancelot's does."""
    import statsmodels.api as sm
    from sklearn.metrics import roc_auc_score

    from lancelot.training.validation import WEIGHT_CAP

    fit = sm.Logit(y, x).fit(disp=0, tol=1e-12)
    prob = fit.predict(x)
    ordered = np.sort(x @ fit.params)
    clip = (ordered[k - 1], ordered[-k])
    rng = np.random.default_rng(seed)   # the reference's own resamples and roundings

    def slope_optimism(score, m):   # on the resample minus on the original records
        return np.subtract(*[sm.GLM(y, sm.add_constant(np.clip(score, *clip)), family=sm.families.Binomial(),
                                    freq_weights=wt).fit().params[1] for wt in (m, np.ones(len(y)))])

    auc, slope, binned = [], [], []
    drawn, drawn_slope = np.zeros((roundings, repetitions)), np.zeros((slope_roundings, repetitions))
    for b in range(repetitions):
        m = np.minimum(rng.poisson(1.0, len(y)), WEIGHT_CAP) if weights is None else weights[b]
        hess = x.T @ (x * (m * prob * (1 - prob))[:, None])
        score = x @ (fit.params + np.linalg.solve(hess, x.T @ (m * (y - prob))))
        auc.append(roc_auc_score(y, score, sample_weight=m) - roc_auc_score(y, score))
        slope.append(slope_optimism(score, m))
        if grid:
            binned.append(binned_auc(score, y, m, grid) - binned_auc(score, y, np.ones(len(y)), grid))
            u = (score - grid[0]) / grid[1]
            for d in range(max(roundings, slope_roundings)):
                up = rng.random(len(y)) < u % 1
                if d < roundings:
                    drawn[d, b] = binned_auc(score, y, m, grid, up) - binned_auc(score, y, np.ones(len(y)), grid, up)
                if d < slope_roundings:
                    drawn_slope[d, b] = slope_optimism(grid[0] + (np.floor(u) + up) * grid[1], m)
    return {"auc": (np.mean(auc), np.std(auc) / np.sqrt(repetitions)),
            "slope": (np.mean(slope), np.std(slope) / np.sqrt(repetitions)),
            "binned_auc": (np.mean(binned), np.std(drawn.mean(axis=1)) if roundings else 0.0) if grid else None,
            "binned_slope": (drawn_slope.mean(), np.std(drawn_slope.mean(axis=1))) if slope_roundings else None,
            "apparent": roc_auc_score(y, x @ fit.params)}


def harrell_c(score: np.ndarray, time: np.ndarray, event: np.ndarray, strata: np.ndarray) -> float:
    """Harrell's C: a death against every record of its stratum with a later time (or the same time, censored),
    concordant when the death's score is higher, ties count half (lifelines' definition)."""
    agree = pairs = 0.0
    for i in np.flatnonzero(event == 1):
        later = (strata == strata[i]) & ((time > time[i]) | ((time == time[i]) & (event == 0)))
        pairs += later.sum()
        agree += np.sum(score[i] > score[later]) + 0.5 * np.sum(score[i] == score[later])
    return agree / pairs


def breslow_slope(score: np.ndarray, time: np.ndarray, event: np.ndarray, strata: np.ndarray) -> float:
    """The calibration slope: a Cox regression (Breslow ties, statsmodels) of the outcome on the score."""
    import statsmodels.api as sm

    return float(sm.PHReg(time, score[:, None], status=event, ties="breslow", strata=strata).fit().params[0])


def clear_cross_validation(x: pd.DataFrame, time: np.ndarray, event: np.ndarray, strata: np.ndarray, folds: int,
                           seed: int = 0) -> tuple[float, float]:
    """k-fold cross-validation in the clear with true refits (lifelines): every record scored by the model fitted
    without its fold, centred at the cohort's mean (a cross-validated prognostic index), then Harrell's C and the
    calibration slope over the cohort."""
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(len(x)) % folds)
    values = x.to_numpy(float)
    score = np.zeros(len(x))
    for f in range(folds):
        train, test = labels != f, labels == f
        fit = CoxPHFitter().fit(x[train].assign(T=time[train], E=event[train], S=strata[train]), "T", "E", strata=["S"])
        score[test] = (values[test] - values.mean(axis=0)) @ fit.params_[x.columns].to_numpy()
    return harrell_c(score, time, event, strata), breslow_slope(score, time, event, strata)

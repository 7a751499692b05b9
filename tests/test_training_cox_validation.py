"""Cox internal validation: k-fold cross-validated concordance and calibration slope on shares, against the same
procedure run in the clear on the linked records with the same folds (read back through the test's view of the
hub), and against true fold refits (lifelines)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import breslow_slope, make_study, pooled_with_products, recording_coordinator, station_paths
from helpers import harrell_c as harrell
from lifelines import CoxPHFitter

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.coordinator import StepCall
from lancelot.runtime.errors import LancelotError
from lancelot.training import cox_fit, cox_validation, cox_validation_steps, terms, validation
from lancelot.training import shares as sh
from lancelot.training.labels import Pair, at
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train

REG, GP, G2 = "registry", "gp_1", "gp_2"
TIME, EVENT = "survival_days", "vital_status"


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


FEATURES = [v(REG, "age_at_diagnosis"), v(REG, "stage", type="categorical", reference="I"), v(REG, "who_ps"),
            v(GP, "copd"), v(GP, "bmi"), v(GP, "smoking", type="categorical", reference="never")]


# ---------------------------------------------------------------------------------------------
# the procedure in the clear
# ---------------------------------------------------------------------------------------------
def breslow_residuals(x: np.ndarray, time: np.ndarray, event: np.ndarray, strata: np.ndarray, beta: np.ndarray):
    """Per record, the score residual of the Breslow partial likelihood at beta (risk sets within strata)."""
    out = np.zeros_like(x)
    r = np.exp(x @ beta - (x @ beta).max())
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        xs, ts, es, rs = x[rows], time[rows], event[rows], r[rows]
        times = np.unique(ts[es == 1])
        at_risk = ts[None, :] >= times[:, None]                       # (event times, records)
        size = at_risk @ rs
        means = (at_risk * rs) @ xs / size[:, None]
        increments = np.array([np.sum((ts == u) & (es == 1)) for u in times]) / size
        for i in range(len(rows)):
            upto = times <= ts[i]
            out[rows[i]] = -rs[i] * (increments[upto, None] * (xs[i] - means[upto])).sum(axis=0)
            if es[i] == 1:
                out[rows[i]] += xs[i] - means[np.searchsorted(times, ts[i])]
    return out


def clear_refits(x, time, event, strata, beta, information, folds, k):
    """The protocol's fold models: one Newton step on the data without the fold, from the fit."""
    u = breslow_residuals(x, time, event, strata, beta)
    total, n = u.sum(axis=0), len(x)
    out = []
    for f in range(k):
        share = np.sum(folds == f) / n
        out.append(beta + np.linalg.solve(information * (1 - share), -u[folds == f].sum(axis=0) + total * share))
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# the protocol, with what the test reads back
# ---------------------------------------------------------------------------------------------
def validated_run(study, features, stations=(REG, GP), **extra):
    """The fit with cross-validation; keeps the linkage, the fold labels (frame order), the pair key and iteration,
    and the coordinator's fold models."""
    seen = {}
    start, assign, refits, seeds = cox_fit.start_training, cox_validation.assign_folds, \
        cox_validation.CrossValidation.refits, cox_validation_steps.stream_seeds
    rotate, weights = validation.rotate_one_hot, cox_validation.CrossValidation.slope_weights

    def keep_rotation(table, q, bins):   # the hub's call comes first: the opened bin offsets
        seen.setdefault("q", q)
        return rotate(table, q, bins)

    def keep_grid(self):
        out = weights(self)
        seen["cv"] = self
        return out

    def keep_start(*args, **kwargs):
        seen["start"] = start(*args, **kwargs)
        return seen["start"]

    def keep_folds(complete, folds):
        seen["labels"] = assign(complete, folds)
        return seen["labels"]

    def keep_refits(self, opened):
        seen["betas"], seen["t"] = refits(self, opened), self.last["t"]
        return seen["betas"]

    def keep_seeds(ctx):
        got = seeds(ctx)
        if got[2]["role"] == "hub":
            seen["pair"] = got[1]
        return got

    spec = {"linkage": json.loads(study["link_spec"].read_text()), "model": "cox", "time": v(REG, TIME),
            "event": v(REG, EVENT), "features": features, **extra}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cox_fit, "start_training", keep_start)
        patch.setattr(cox_validation, "assign_folds", keep_folds)
        patch.setattr(cox_validation.CrossValidation, "refits", keep_refits)
        patch.setattr(cox_validation_steps, "stream_seeds", keep_seeds)
        patch.setattr(validation, "rotate_one_hot", keep_rotation)
        patch.setattr(cox_validation.CrossValidation, "slope_weights", keep_grid)
        coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study),
                                         {s: {"allow_evaluate": True} for s in stations})
        coord.max_input_mb = 4096.0
        result = train(coord, spec, evaluate=True)
    return {**result, "cost": coord.cost.as_dict()}, seen


def by_record(seen: dict, values: np.ndarray) -> dict[str, int]:
    """Per linked hub record, its value in the last iteration's frame: frame row j is row pi_t[j] of the hub's
    rows (of their copies, one per stratum, when the strata are at another station: the record's complete copy)."""
    linkage, hub = seen["start"].linkage, seen["start"].hub
    perm = sh.permutation(seen["pair"], at(Pair.PERMUTATION, seen["t"]), len(values))
    ids = np.asarray(linkage.record_ids[hub], dtype=str)
    complete = seen["cv"].last["complete"]
    return {ids[perm[j] % len(ids)]: int(values[j]) for j in range(len(values)) if complete[j]}


def bins_by_record(seen: dict) -> dict[str, int]:
    """Each record's bin as the protocol drew it: floor(y / 2^m) - floor(r / 2^m), with r C's mask."""
    cvo = seen["cv"]
    start = (cvo.r >> np.uint64(validation.BIN_BITS)).astype(np.int64)
    return by_record(seen, (np.asarray(seen["q"], dtype=np.int64) - start) % cvo.bins)


def clear_reference(study, result, seen, features, stations=(REG, GP), strata_column=None):
    keep = [TIME, EVENT, "record_id"] + ([strata_column] if strata_column else [])
    x, data = pooled_with_products(study, {}, result, features, keep, list(stations))
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    x = x[list(table.index)]
    time, event = data[TIME].to_numpy(float), data[EVENT].to_numpy(float)
    strata = data[strata_column].astype(str).to_numpy() if strata_column else np.zeros(len(x))
    fitter = CoxPHFitter().fit(x.assign(T=time, E=event, **({"S": strata} if strata_column else {})), "T", "E",
                               strata=["S"] if strata_column else None, fit_options={"precision": 1e-10})
    beta = fitter.params_[x.columns].to_numpy()
    information = np.linalg.inv(fitter.variance_matrix_.loc[x.columns, x.columns].to_numpy())
    fold_of, bin_of = by_record(seen, seen["labels"]), bins_by_record(seen)
    folds = np.array([fold_of[str(r)] for r in data["record_id"]])
    bins = np.array([bin_of[str(r)] for r in data["record_id"]])
    k = int(folds.max()) + 1
    xs = x.to_numpy(float)
    betas = clear_refits(xs, time, event, strata, beta, information, folds, k)
    oof = np.einsum("ij,ij->i", xs - xs.mean(axis=0), betas[folds])   # centred at the cohort's mean
    return {"x": xs, "time": time, "event": event, "strata": strata, "folds": folds, "betas": betas, "oof": oof,
            "bin": bins, "bin_score": seen["cv"].centre[bins],
            "fitter": fitter, "columns": list(x.columns)}


def cross_validated(oof, ref, slope_scores=None) -> tuple[float, float]:
    """Harrell's C and the Breslow calibration slope of the pooled out-of-fold scores (a cross-validated
    prognostic index: each fold model's scores centred at the cohort's mean, so that they compare)."""
    rest = (ref["time"], ref["event"], ref["strata"])
    return harrell(oof, *rest), breslow_slope(oof if slope_scores is None else slope_scores, *rest)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("coxcv"), patients=900, gp_stations=1, seed=5)


@pytest.fixture(scope="module")
def run(study):
    return validated_run(study, FEATURES, validation={"folds": 5})


def test_fold_models_equal_the_one_step_refits_in_the_clear_with_the_same_folds(study, run):
    result, seen = run
    ref = clear_reference(study, result, seen, FEATURES)
    every_row = np.bincount(seen["labels"])   # balanced over all the frame's rows, whoever is in the cohort
    assert every_row.max() - every_row.min() <= 1 and np.bincount(ref["folds"]).min() >= 50
    features = seen["start"].features
    betas = np.array([terms.to_original(b, np.eye(len(b)), features, intercept=False)[0] for b in seen["betas"]])
    np.testing.assert_allclose(betas, ref["betas"], atol=2e-5)


def test_cross_validated_concordance_and_slope_equal_the_clear_procedure_on_the_same_bins(study, run):
    """The records' bins as the protocol drew them (read back: the hub's opened offsets and C's mask), in the
    clear: Harrell's C on the bins (same bin: half) and the Breslow recalibration slope on the bins' (clipped)
    scores; then what the bins cost against exact out-of-fold scores."""
    result, seen = run
    ref = clear_reference(study, result, seen, FEATURES)
    got = result["validation"]
    assert got["folds"] == 5 and got["bins"] == 64
    assert got["concordance"]["apparent"] == pytest.approx(result["quality"]["concordance"]["estimate"])
    by_bin = cross_validated(ref["bin"].astype(float), ref, slope_scores=ref["bin_score"])
    assert got["concordance"]["cross_validated"] == pytest.approx(by_bin[0], abs=1e-4)   # 4 significant digits
    assert got["calibration_slope"]["cross_validated"] == pytest.approx(by_bin[1], abs=2e-4)
    exact = cross_validated(ref["oof"], ref)
    assert by_bin[0] == pytest.approx(exact[0], abs=3e-3) and by_bin[1] == pytest.approx(exact[1], abs=0.03)
    assert result["cost"]["rounds_per_phase"]["training: internal validation"] == 5


def test_one_step_refits_are_close_to_true_fold_refits(study, run):
    """The statistical approximation: true refits without each fold (lifelines) give nearly the same
    cross-validated concordance and slope."""
    result, seen = run
    ref = clear_reference(study, result, seen, FEATURES)
    oof = np.zeros(len(ref["x"]))
    for f in range(5):
        train_rows = ref["folds"] != f
        frame = pd.DataFrame(ref["x"][train_rows], columns=ref["columns"]).assign(T=ref["time"][train_rows],
                                                                                   E=ref["event"][train_rows])
        beta = CoxPHFitter().fit(frame, "T", "E").params_[ref["columns"]].to_numpy()
        oof[~train_rows] = (ref["x"][~train_rows] - ref["x"].mean(axis=0)) @ beta
    one_step, true = cross_validated(ref["oof"], ref), cross_validated(oof, ref)
    assert one_step[0] == pytest.approx(true[0], abs=2e-3)
    assert one_step[1] == pytest.approx(true[1], abs=0.02)


def test_validation_refusals_name_the_problem(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "model": "cox", "time": v(REG, TIME),
            "event": v(REG, EVENT), "features": FEATURES}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    for options, message in (({"method": "bootstrap"}, "cross-validation"), ({"folds": 1}, "from 2 to 10"),
                             ({"folds": 5, "repetitions": 100}, "must be"), ({"bins": 50}, "bins")):
        with pytest.raises(LancelotError, match=message):
            train(coord, {**spec, "validation": options})


@pytest.fixture(scope="module")
def study3(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("coxcv3"), patients=1000, gp_stations=2, seed=7)


TREATMENT = [v(REG, "age_at_diagnosis"), v(REG, "who_ps"), v(REG, "immunotherapy"), v(GP, "copd"), v(G2, "bmi"),
             {"interaction": [v(REG, "immunotherapy"), v(GP, "copd")]}]


@pytest.mark.parametrize("case", ["three stations, a cross-station interaction, strata at the hub",
                                  "strata at another station"])
def test_strata_interactions_and_three_stations_equal_the_clear_procedure(study, study3, case):
    """Fold refits and the per-fold measures against the clear procedure with the same folds and bins: with a
    product of two stations' columns and a third station, and with strata away from the hub (the fit then runs
    on one copy of the hub's rows per stratum; concordance and risk sets stay within a stratum)."""
    if case.startswith("three"):
        data, features, stations, strata = study3, TREATMENT, (REG, GP, G2), (REG, "stage")
    else:
        data, features, stations, strata = study, FEATURES[:3] + [v(GP, "copd"), v(GP, "bmi")], (REG, GP), (GP, "smoking")
    result, seen = validated_run(data, features, stations, validation={"folds": 4, "bins": 128},
                                 strata=v(*strata))
    ref = clear_reference(data, result, seen, features, stations, strata_column=strata[1])
    betas = np.array([terms.to_original(b, np.eye(len(b)), seen["start"].features, intercept=False)[0]
                      for b in seen["betas"]])
    np.testing.assert_allclose(betas, ref["betas"], atol=2e-5)
    by_bin = cross_validated(ref["bin"].astype(float), ref, slope_scores=ref["bin_score"])
    got = result["validation"]
    assert got["folds"] == 4 and got["bins"] == 128
    assert got["concordance"]["cross_validated"] == pytest.approx(by_bin[0], abs=1e-4)
    assert got["calibration_slope"]["cross_validated"] == pytest.approx(by_bin[1], abs=2e-4)


@pytest.mark.parametrize("step, change, why", [
    ("cox_vcount", {}, "out of order"),
    ("cox_vsums", {"t": -1}, "not at the fit's last iteration"),
    ("cox_vsums", {"folds": 11}, "'folds' must be an integer from 2 to 10"),
    ("cox_vsums", {"bins": 48}, "'bins' must be one of"),
    ("cox_vsums", {"fold_labels": "one"}, "fold labels are unbalanced"),
    ("cox_vsums", {"fold_labels": "short"}, "do not match this station's rows")])
def test_stations_refuse_a_crafted_validation_step(study, monkeypatch, step, change, why):
    """A coordinator (or a researcher's direct task) that skips a step, runs it at an earlier iteration, asks
    for folds or bins outside the choices, or sends fold labels that put almost every row in one fold (the
    other folds' score sums would be a few records') is refused by the station itself."""
    def crafted(self, options):
        n = len(self.last["z"])
        labels = {"one": [0] * (n - 1) + [1], "short": [0, 1] * 3}.get(change.get("fold_labels"))
        payload = {"t": self.last["t"] + change.get("t", 0), "folds": change.get("folds", 2), "bins": change.get("bins", 64),
                   "fold_labels": labels if labels is not None else (np.arange(n) % 2).tolist()}
        self.c.round({self.hub: StepCall(step, payload)}, label="crafted")

    monkeypatch.setattr(cox_fit._CoxFit, "validate", crafted)
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "model": "cox", "time": v(REG, TIME),
            "event": v(REG, EVENT), "features": FEATURES, "validation": {"folds": 2}}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    with pytest.raises(LancelotError, match=f"station 'registry'.*{why}"):
        train(coord, spec)


def test_too_few_records_per_fold_is_refused_at_the_first_iteration(tmp_path):
    """Before any coefficient exists, on the cohort's totals (the folds are checked again when drawn)."""
    small = make_study(tmp_path, patients=450, gp_stations=1, seed=5)
    spec = {"linkage": json.loads(small["link_spec"].read_text()), "model": "cox", "time": v(REG, TIME),
            "event": v(REG, EVENT), "features": FEATURES[:3], "validation": {"folds": 10}}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(small))
    with pytest.raises(LancelotError, match=r"needs at least 500 complete cases \(50 per fold\); use fewer folds"):
        train(coord, spec)
    assert coord.cost.as_dict()["rounds_per_phase"]["training: Newton iterations"] == 1   # the first opening only


def test_the_summary_and_report_show_the_cross_validated_values(run, tmp_path):
    from lancelot.results import Model

    result, _ = run
    model = Model.from_json(result)
    got = result["validation"]
    line = next(line for line in model.summary_lines() if "internal validation" in line)
    assert "5-fold cross-validation" in line and " in 5 rounds" in line
    assert f"concordance {got['concordance']['cross_validated']:.3f}" in line
    assert f"calibration slope {got['calibration_slope']['cross_validated']:.3f}" in line
    page = model.write_report(tmp_path / "report").read_text()
    assert "Internal validation" in page and "cross-validated" in page

"""Training's disclosure control on constructed cases: ACRO's residual degrees of freedom, small levels of
0/1 and categorical features refused before any coefficient exists, counts rounded (the reference
rounding is computed here from the joined records), survival times at least k events apart."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from helpers import (
    joined,
    make_study,
    pooled_design,
    recording_coordinator,
    rounded,
    spaced_reference,
    station_paths,
    with_columns,
)
from lifelines import CoxPHFitter

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.errors import InputError, PrivacyError
from lancelot.training.predict import predict
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train
from lancelot.training.release import check_residual_dof

REG, GP = "registry", "gp_1"
STEPS = {**LINK_STEPS, **TRAIN_STEPS}
K = 10


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("disclosure"), patients=500, gp_stations=1, seed=4)


def logistic(study, features, **extra):
    return {"linkage": json.loads(study["link_spec"].read_text()), "model": "logistic",
            "outcome": v(REG, "death_within_2y"), "features": features, **extra}


def cox(study, features, **extra):
    return {"linkage": json.loads(study["link_spec"].read_text()), "model": "cox", "time": v(REG, "survival_days"),
            "event": v(REG, "vital_status"), "features": features, **extra}


def refused(paths, spec, message, error=PrivacyError):
    """The fit is refused with ``message``, and no coefficient other than the start (all zero) ever left C."""
    coord, transport = recording_coordinator(STEPS, paths)
    with pytest.raises(error, match=message) as err:
        train(coord, spec)
    betas = [json.loads(text)["beta"] for _, text in transport.sent if '"beta"' in text]
    assert all(b == 0 for beta in betas for b in beta)
    return str(err.value)


def first_rows(df, n, where=None):
    """A 0/1 column that is 1 on the first ``n`` rows (of those where ``where`` holds)."""
    mask = np.ones(len(df), bool) if where is None else where.to_numpy()
    ones = np.flatnonzero(mask)[:n]
    out = np.zeros(len(df))
    out[ones] = 1.0
    return out


# ---------------------------------------------------------------------------------------------
# small levels
# ---------------------------------------------------------------------------------------------
def test_a_binary_feature_with_six_ones_is_refused(study, tmp_path):
    paths = with_columns(study, tmp_path, REG, rare=lambda d: first_rows(d, 6))
    for spec in (logistic(study, [v(REG, "age_at_diagnosis"), v(REG, "rare")]),
                 cox(study, [v(REG, "age_at_diagnosis"), v(REG, "rare")])):
        text = refused(paths, spec, f"fewer than {K} patients with rare=1")
        assert "station 'registry'" in text and "column 'rare'" in text and "Drop the feature" in text


def test_a_level_with_few_events_or_non_events_is_refused(study, tmp_path):
    """Plenty of patients in the level, but among them few events: the coefficient and its standard error
    would show that count (logistic and Cox), or few non-events (logistic)."""
    reg = pd.read_csv(study[REG])
    paths = with_columns(   # 64 patients in each level: 4 of them with the outcome (or without it)
        study, tmp_path, REG,
        few_events=lambda d: np.maximum(first_rows(d, 60, (d["death_within_2y"] == 0) & (d["vital_status"] == 0)),
                                        first_rows(d, 4, d["death_within_2y"] == 1)),
        few_non_events=lambda d: np.maximum(first_rows(d, 60, d["death_within_2y"] == 1),
                                            first_rows(d, 4, d["death_within_2y"] == 0)))
    assert ((reg["death_within_2y"] == 0) & (reg["vital_status"] == 0)).sum() >= 60
    refused(paths, logistic(study, [v(REG, "age_at_diagnosis"), v(REG, "few_events")]),
            f"fewer than {K} events among patients with few_events=1")
    refused(paths, logistic(study, [v(REG, "age_at_diagnosis"), v(REG, "few_non_events")]),
            f"fewer than {K} non-events among patients with few_non_events=1")
    refused(paths, cox(study, [v(REG, "age_at_diagnosis"), v(REG, "few_events")]),
            f"fewer than {K} events among patients with few_events=1")


def test_a_small_category_level_or_reference_level_is_refused(study, tmp_path):
    def pipe(d):
        out = d["smoking"].astype(object).copy()
        out[first_rows(d, 5) == 1] = "pipe"
        return out

    paths = with_columns(study, tmp_path, GP, smoking2=pipe)
    text = refused(paths, logistic(study, [v(REG, "age_at_diagnosis"), v(GP, "smoking2", type="categorical")]),
                   f"fewer than {K} patients with smoking2=pipe")
    assert "station 'gp_1'" in text
    # the small level as the reference: every other level's standard error would show its count
    refused(paths, cox(study, [v(REG, "age_at_diagnosis"),
                               v(GP, "smoking2", type="categorical", reference="pipe")]),
            r"smoking2=pipe \(the reference level\)")


def test_several_small_features_are_named_together(study, tmp_path):
    paths = with_columns(study, tmp_path, REG, rare=lambda d: first_rows(d, 6), common=lambda d: 1 - first_rows(d, 3))
    text = refused(paths, logistic(study, [v(REG, "age_at_diagnosis"), v(REG, "rare"), v(REG, "common")]),
                   "features refused")
    assert "'rare' (station 'registry')" in text and "patients without common=1" in text


# ---------------------------------------------------------------------------------------------
# residual degrees of freedom
# ---------------------------------------------------------------------------------------------
def test_residual_degrees_of_freedom_rule():
    check_residual_dof(11, 1, "events")
    with pytest.raises(PrivacyError, match="fewer than 10 residual degrees of freedom"):
        check_residual_dof(10, 1, "events")   # the events-per-coefficient rule (10) would let this pass


def test_a_tiny_complete_cohort_hits_the_degrees_of_freedom_rule(study, tmp_path):
    """30 complete cases (15 with each outcome, all truly linked) and 24 coefficients: k complete cases,
    events and non-events, but fewer than 10 residual degrees of freedom."""
    truth = pd.read_csv(study["truth_links"], dtype=str)
    linked = set(truth["registry_id"])

    def subset(d):
        true_link = d["record_id"].astype(str).isin(linked)
        keep = np.maximum(first_rows(d, 15, true_link & (d["death_within_2y"] == 1) & (d["vital_status"] == 1)),
                          first_rows(d, 15, true_link & (d["death_within_2y"] == 0) & (d["vital_status"] == 0)))
        return d["age_at_diagnosis"].where(keep == 1)

    rng = np.random.default_rng(7)
    noise = {f"noise{i}": (lambda d: rng.normal(size=len(d))) for i in range(22)}
    paths = with_columns(study, tmp_path, REG, subset=subset)
    gp_paths = with_columns(study, tmp_path, GP, **noise)
    paths[GP] = gp_paths[GP]
    features = [v(REG, "subset")] + [v(GP, name) for name in noise]
    refused(paths, logistic(study, features), "too few complete cases for 24 coefficients: fewer than 10 residual")
    refused(paths, cox(study, features), "too few events for 23 coefficients: fewer than 10 residual")


# ---------------------------------------------------------------------------------------------
# rounding, survival times and predictions (honest fits: still the pooled fit)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cox_fit(study):
    """Efron with survival times 1 day apart, a time near the end and one after it, and a researcher's
    rounding base of 10 (above the nodes' 5)."""
    features = [v(REG, "age_at_diagnosis"), v(REG, "surgery"), v(GP, "copd"), v(GP, "bmi")]
    coord, _ = recording_coordinator(STEPS, station_paths(study), {s: {"allow_evaluate": True} for s in (REG, GP)})
    times = [182, 183, 184, 365, 366, 730, 3000, 9000]
    # a tight tolerance: standard errors come from the last opened iterate, within about one Newton step
    result = train(coord, cox(study, features, survival_times=times, tolerance=1e-10), evaluate=True, rounding_base=10)
    x, data = pooled_design(joined(study, result["links"], [REG, GP]), features, ["survival_days", "vital_status"])
    return result, x, data["survival_days"].astype(float), data["vital_status"].astype(float), times


def test_cox_counts_are_the_pooled_counts_rounded_to_the_researchers_base(cox_fit):
    result, x, time, event, _ = cox_fit
    assert result["protections"]["rounding_base"] == result["disclosure_control"]["rounding_base"] == 10
    assert result["n_used"] == result["cohort"]["complete_cases"] == rounded(len(x), 10)
    assert result["events"] == rounded(int(event.sum()), 10)
    assert result["cohort"]["linked"] == result["linkage"]["linked_to_all_stations"] == rounded(len(result["links"]), 10)
    assert result["quality"]["concordance"]["comparable_pairs"] % 10 == 0
    # coefficients stay exact: the pooled Efron fit
    cph = CoxPHFitter().fit(x.assign(T=time, E=event), "T", "E", fit_options={"precision": 1e-10})
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    np.testing.assert_allclose(table["estimate"], cph.params_[x.columns], atol=1e-5, rtol=0)
    np.testing.assert_allclose(table["std_error"], cph.standard_errors_[x.columns], atol=1e-5, rtol=1e-5)


def test_survival_times_closer_than_k_events_are_withheld(cox_fit):
    result, x, time, event, times = cox_fit
    base = result["baseline"]
    kept, withheld = spaced_reference(time, event, [float(t) for t in times], K)
    assert [r["time"] for r in base["times"]] == kept and base["withheld"] == withheld
    reasons = {w["time"]: w["reason"] for w in base["withheld"]}
    assert "events since the previous" in reasons[183.0] and "events since the previous" in reasons[366.0]
    assert "at risk" in reasons[9000.0]
    assert {182.0, 365.0, 730.0} <= set(kept)
    for row in base["times"]:
        assert row["at_risk"] == rounded(int((time >= row["time"]).sum()), 10)


def test_predictions_use_only_the_released_times(cox_fit):
    result, *_ = cox_fit
    got = predict(result, {"age_at_diagnosis": 70, "surgery": 1, "copd": 0, "bmi": 25})
    assert [p["time"] for p in got["survival"]] == [r["time"] for r in result["baseline"]["times"]]
    assert got["withheld"] == result["baseline"]["withheld"] and got["withheld"]
    # a crafted model with terms at a withheld time does not make predict use it
    crafted = json.loads(json.dumps(result))
    crafted["baseline"]["times"].append({"time": 183.0, "survival_at_mean": None})
    assert len(predict(crafted, got["profile"])["survival"]) == len(result["baseline"]["times"])


def test_logistic_counts_rounded_and_coefficients_exact(study):
    features = [v(REG, "age_at_diagnosis"), v(REG, "surgery"), v(GP, "copd"), v(GP, "bmi")]
    coord, _ = recording_coordinator(STEPS, station_paths(study), {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, logistic(study, features), evaluate=True, rounding_base=10)
    x, data = pooled_design(joined(study, result["links"], [REG, GP]), features, ["death_within_2y"])
    y = data["death_within_2y"].astype(float)
    assert result["n_used"] == rounded(len(y), 10) and result["events"] == rounded(int(y.sum()), 10)
    assert result["cohort"]["linked"] == rounded(len(result["links"]), 10)
    assert all(g["n"] % 10 == 0 for g in result["quality"]["calibration"])
    assert result["linkage"]["rounding_base"] == 10
    fit = sm.Logit(y, x.assign(**{"(intercept)": 1.0})[["(intercept)", *x.columns]]).fit(disp=0, tol=1e-12)
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    np.testing.assert_allclose(table["estimate"], fit.params[table.index], atol=1e-4, rtol=0)
    np.testing.assert_allclose(table["std_error"], fit.bse[table.index], atol=1e-4, rtol=1e-4)
    rules = " ".join(result["disclosure_control"]["rules"])
    assert "multiple of 10" in rules and "residual degrees of freedom" in rules


@pytest.mark.parametrize("bad", [3, True, 2.5])
def test_a_bad_rounding_base_is_refused_before_any_round(study, bad):
    coord, transport = recording_coordinator(STEPS, station_paths(study))
    with pytest.raises(InputError, match="rounding_base"):
        train(coord, cox(study, [v(REG, "age_at_diagnosis")]), rounding_base=bad)
    assert transport.sent == []

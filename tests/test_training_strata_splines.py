"""Stratified Cox (a baseline hazard per level of a registry or a GP column) against lifelines ``strata`` and
statsmodels ``PHReg(strata=)``; restricted cubic splines computed at the station holding the column against
the same basis on the pooled records (and patsy's natural cubic splines with the same knots); refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
from helpers import (
    assert_close_in_se,
    harrell,
    joined,
    local_study,
    make_study,
    pooled_design,
    recording_coordinator,
    rounded,
    spaced_reference,
    station_paths,
)
from lifelines import CoxPHFitter

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.errors import InputError, LancelotError, PrivacyError
from lancelot.tails import chi2_sf
from lancelot.training.design import _residual_coefficients
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train
from lancelot.training.spec import parse_train_spec
from lancelot.training.terms import (
    original_map,
    original_moments,
    original_sums,
    rcs_basis,
    reference_profile,
)

REG, GP = "registry", "gp_1"
STEPS = {**LINK_STEPS, **TRAIN_STEPS}
TIME, EVENT, OUTCOME = "survival_days", "vital_status", "death_within_2y"


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


def cox(study, features, **extra):
    return {"linkage": json.loads(study["link_spec"].read_text()), "model": "cox", "time": v(REG, TIME),
            "event": v(REG, EVENT), "features": features, "tolerance": 1e-10, **extra}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("strata"), patients=900, gp_stations=1, seed=5)


def run(study, spec, paths=None):
    coord, _ = recording_coordinator(STEPS, paths or station_paths(study), {s: {"allow_evaluate": True} for s in (REG, GP)})
    return train(coord, spec, evaluate=True), coord


# ---------------------------------------------------------------------------------------------
# stratified Cox
# ---------------------------------------------------------------------------------------------
STRATIFIED = [v(REG, "age_at_diagnosis"), v(REG, "immunotherapy"), v(GP, "copd"), v(GP, "gp_visits"),
              {"interaction": [v(REG, "immunotherapy"), v(GP, "copd")]}]


def pooled(study, result, keep=(TIME, EVENT, "stage")):
    x, data = pooled_design(joined(study, result["links"], [REG, GP]), STRATIFIED[:4], list(keep))
    x["immunotherapy:copd"] = x["immunotherapy"] * x["copd"]
    return x, data


# strata at the hub (which orders its rows by stratum) and at the GP station (copies of the hub's rows, one per
# stratum, selected on shares): the same fit, baseline, concordance and prediction must come out of both
AT = {"hub": (REG, "stage", ["I", "II", "III", "IV"]), "gp": (GP, "smoking", ["current", "former", "never"])}


@pytest.fixture(scope="module", params=sorted(AT))
def stratified(study, request):
    station, column, levels = AT[request.param]
    result, coord = run(study, cox(study, STRATIFIED, strata=v(station, column)))
    x, data = pooled(study, result, keep=(TIME, EVENT, column))
    return result, coord, x, data.rename(columns={column: "S"}), levels


def test_stratified_efron_matches_lifelines_strata(stratified):
    result, coord, x, data, levels = stratified
    cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float), S=data["S"]), "T", "E",
                            strata=["S"], fit_options={"precision": 1e-14})
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    assert list(table.index) == list(x.columns)      # no coefficient for the strata column
    np.testing.assert_allclose(table["estimate"], cph.params_[x.columns], atol=1e-6)
    np.testing.assert_allclose(table["std_error"], cph.standard_errors_[x.columns], atol=1e-6)
    assert result["convergence"]["history"][-1]["log_partial_likelihood"] == pytest.approx(cph.log_likelihood_, abs=1e-4)
    # strata add no round: 3 + 5 per Efron iteration, as unstratified
    assert coord.cost.rounds == 3 + 5 * result["convergence"]["iterations"] + \
        coord.cost.as_dict()["rounds_per_phase"].get("training: concordance", 0)
    got = {lv["level"]: lv for lv in result["strata"]["levels"]}
    counts = data.groupby("S").size()
    events = data.groupby("S")[EVENT].sum()
    assert list(got) == levels
    assert all(got[s]["n"] == rounded(int(counts[s])) and got[s]["events"] == rounded(int(events[s])) for s in levels)


@pytest.mark.parametrize("station, column", [(REG, "stage"), (GP, "smoking")])
def test_stratified_breslow_matches_phreg_strata(study, station, column):
    result, _ = run(study, cox(study, STRATIFIED, strata=v(station, column), ties="breslow"))
    x, data = pooled(study, result, keep=(TIME, EVENT, column))
    fit = sm.PHReg(data[TIME].astype(float), x, status=data[EVENT].astype(float), strata=data[column],
                   ties="breslow").fit()
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    np.testing.assert_allclose(table["estimate"], fit.params, atol=1e-6)
    np.testing.assert_allclose(table["std_error"], fit.bse, atol=1e-6)
    assert result["convergence"]["history"][-1]["log_partial_likelihood"] == pytest.approx(fit.llf, abs=1e-4)


def test_baseline_per_stratum_matches_the_pooled_breslow_estimator(stratified):
    result, _, x, data, levels = stratified
    base = result["baseline"]
    names = list(x.columns)
    beta = np.array(base["coefficients_of_last_iterate"])
    ref = np.array([base["reference_profile"][n] for n in names])
    assert base["stratified_by"] == result["strata"]["column"] and [s["stratum"] for s in base["strata"]] == levels
    for block in base["strata"]:
        rows = (data["S"] == block["stratum"]).to_numpy()
        time, event = data[TIME].astype(float)[rows], data[EVENT].astype(float)[rows]
        risk = np.exp((x.to_numpy()[rows] - ref) @ beta)
        event_times = np.unique(time[event == 1])
        at_risk = np.array([risk[time >= s].sum() for s in event_times])
        deaths = np.array([((time == s) & (event == 1)).sum() for s in event_times])
        kept, withheld = spaced_reference(time, event, [91.0, 182.0, 365.0, 730.0, 1095.0, 1826.0],
                                          result["min_cell_count"])
        assert [r["time"] for r in block["times"]] == kept and block["withheld"] == withheld
        for row in block["times"]:
            upto = event_times <= row["time"]
            assert row["at_risk"] == rounded(int((time >= row["time"]).sum()))
            assert row["cumulative_hazard_at_reference"] == pytest.approx((deaths / at_risk)[upto].sum(), rel=1e-6)


def test_concordance_compares_patients_within_a_stratum(stratified):
    """Harrell's C over the pairs within each stratum, on the pooled records at the last opened iterate."""
    result, _, x, data, _ = stratified
    lp = x.to_numpy() @ np.array(result["baseline"]["coefficients_of_last_iterate"])
    time, event, stratum = data[TIME].to_numpy(float), data[EVENT].to_numpy(), data["S"].to_numpy()
    concordant = ties = pairs = 0.0
    for i in np.flatnonzero(event == 1):
        later = (stratum == stratum[i]) & ((time > time[i]) | ((time == time[i]) & (event == 0)))
        pairs += later.sum()
        concordant += (lp[later] < lp[i]).sum()
        ties += (lp[later] == lp[i]).sum()
    exact = (concordant + ties / 2) / pairs
    c = result["quality"]["concordance"]
    assert c["lower"] <= exact <= c["upper"] and c["comparable_pairs"] == rounded(int(pairs))


def test_strata_refusals(study, tmp_path):
    df = pd.read_csv(study[REG])
    df["grp"] = np.where(np.arange(len(df)) < 6, "rare", "common")
    df.to_csv(tmp_path / "reg.csv", index=False)
    paths = {**station_paths(study), REG: tmp_path / "reg.csv"}
    coord, _ = recording_coordinator(STEPS, paths)
    with pytest.raises(PrivacyError, match="strata 'rare' of 'grp' have fewer than 10"):
        train(coord, cox(study, STRATIFIED[:3], strata=v(REG, "grp")))
    gp = pd.read_csv(study[GP])     # the same at a GP station, whose strata only the shares select
    gp["grp"] = np.where(np.arange(len(gp)) < 6, "rare", "common")
    gp.to_csv(tmp_path / "gp.csv", index=False)
    coord, _ = recording_coordinator(STEPS, {**station_paths(study), GP: tmp_path / "gp.csv"})
    with pytest.raises(PrivacyError, match="strata 'rare' of 'grp' have fewer than 10"):
        train(coord, cox(study, STRATIFIED[:3], strata=v(GP, "grp")))


def test_a_rare_stratum_merged_into_another_gives_lifelines_on_the_recoded_column(study, tmp_path):
    df = pd.read_csv(study[REG])
    df["stage_o"] = df["stage"].astype(object)
    df.loc[df.index[:3], "stage_o"] = "occult"
    df.to_csv(tmp_path / "reg.csv", index=False)
    paths = {**station_paths(study), REG: tmp_path / "reg.csv"}
    coord, _ = recording_coordinator(STEPS, paths)
    with pytest.raises(PrivacyError, match="strata 'occult' of 'stage_o' have fewer than 10.*\"merge\""):
        train(coord, cox(study, STRATIFIED, strata=v(REG, "stage_o")))
    result, _ = run(study, cox(study, STRATIFIED, strata=v(REG, "stage_o", merge={"occult": "IV"})), paths)
    x, data = pooled({**study, **paths}, result, keep=(TIME, EVENT, "stage_o"))
    assert (data["stage_o"] == "occult").any()
    cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float),
                                     S=data["stage_o"].replace({"occult": "IV"})), "T", "E", strata=["S"],
                            fit_options={"precision": 1e-14})
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    np.testing.assert_allclose(table["estimate"], cph.params_[x.columns], atol=1e-6)
    np.testing.assert_allclose(table["std_error"], cph.standard_errors_[x.columns], atol=1e-6)
    assert [lv["level"] for lv in result["strata"]["levels"]] == ["I", "II", "III", "IV"]


@pytest.mark.parametrize("change, message", [
    ({"strata": v(REG, "age_at_diagnosis")}, "also listed as a feature"),
    ({"strata": v(REG, TIME)}, "cannot be the survival time"),
    ({"strata": v("elsewhere", "x")}, "not part of this run"),
])
def test_bad_strata_spec(change, message):
    raw = {"model": "cox", "time": v(REG, TIME), "event": v(REG, EVENT), "features": STRATIFIED[:3], **change}
    with pytest.raises(InputError, match=message):
        parse_train_spec(raw, [REG, GP])
    with pytest.raises(InputError, match="belongs to a Cox model"):
        parse_train_spec({"model": "logistic", "outcome": v(REG, OUTCOME), "features": STRATIFIED[:3],
                          "strata": v(REG, "stage")}, [REG, GP])


# ---------------------------------------------------------------------------------------------
# restricted cubic splines
# ---------------------------------------------------------------------------------------------
SPLINES = [v(REG, "age_at_diagnosis", spline={"knots": 4}), v(REG, "immunotherapy"), v(GP, "copd"),
           v(GP, "bmi", spline={"knots": [20, 25, 30]})]


def spline_design(study, result, keep):
    x, data = pooled_design(joined(study, result["links"], [REG, GP]), [{**f, "spline": None} for f in SPLINES], keep)
    knots = {s["column"]: s["knots"] for s in result["splines"]}
    for column in ("age_at_diagnosis", "bmi"):
        basis = harrell(x[column].to_numpy(), knots[column])
        for j in range(basis.shape[1]):
            x[column + "'" * (j + 1)] = basis[:, j]
    return x[[r["feature"] for r in result["coefficients"] if r["feature"] != "(intercept)"]], data, knots


@pytest.fixture(scope="module")
def spline_cox(study):
    return run(study, cox(study, SPLINES))[0]


def test_cox_spline_matches_lifelines_with_the_same_basis(study, spline_cox):
    result = spline_cox
    x, data, knots = spline_design(study, result, [TIME, EVENT])
    cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float)), "T", "E",
                            fit_options={"precision": 1e-10})
    assert_close_in_se(pd.DataFrame(result["coefficients"]).set_index("feature"), cph.params_, cph.standard_errors_)
    # knots: Harrell's quantiles (5/35/65/95%) of the registry's whole column, rounded; the explicit ones as given
    reg = pd.read_csv(study[REG])["age_at_diagnosis"]
    assert knots["age_at_diagnosis"] == [float(f"{q:.3g}") for q in np.quantile(reg, [0.05, 0.35, 0.65, 0.95])]
    assert knots["bmi"] == [20, 25, 30]
    # the same function space as patsy's natural cubic regression spline with those knots: the same fit
    age, bmi = knots["age_at_diagnosis"], knots["bmi"]
    frame = data.assign(age=x["age_at_diagnosis"], bmi_=x["bmi"])
    nat = patsy.dmatrix(f"cr(age, knots={age[1:-1]}, lower_bound={age[0]}, upper_bound={age[-1]}, constraints='center')"
                        f" + cr(bmi_, knots={bmi[1:-1]}, lower_bound={bmi[0]}, upper_bound={bmi[-1]}, "
                        "constraints='center') - 1", frame, return_type="dataframe")
    nat = nat.assign(immunotherapy=x["immunotherapy"], copd=x["copd"])
    other = CoxPHFitter().fit(nat.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float)), "T", "E",
                              fit_options={"precision": 1e-10})
    assert other.log_likelihood_ == pytest.approx(cph.log_likelihood_, abs=1e-6)
    assert result["convergence"]["history"][-1]["log_partial_likelihood"] == pytest.approx(cph.log_likelihood_, abs=1e-3)
    # overall and non-linearity tests: the pooled Wald statistics
    for s in result["splines"]:
        idx = s["terms"]
        b, cov = cph.params_[idx].to_numpy(), cph.variance_matrix_.loc[idx, idx].to_numpy()
        chi2 = float(b @ np.linalg.solve(cov, b))
        assert s["overall_test"]["chi2"] == pytest.approx(chi2, rel=1e-3) and s["overall_test"]["df"] == len(idx)
        nl = idx[1:]
        chi2_nl = float(cph.params_[nl] @ np.linalg.solve(cph.variance_matrix_.loc[nl, nl], cph.params_[nl]))
        assert s["nonlinearity_test"]["chi2"] == pytest.approx(chi2_nl, rel=1e-3)
        assert s["nonlinearity_test"]["p_value"] == pytest.approx(chi2_sf(chi2_nl, len(nl)), abs=1e-4)
        # the effect curve: hazard ratio against the middle knot, from the pooled coefficients
        ref = s["reference"]
        for point in s["curve"][::10]:
            row = np.concatenate([[point["x"]], rcs_basis(np.array([point["x"]]), s["knots"])[0]])
            ref_row = np.concatenate([[ref], rcs_basis(np.array([ref]), s["knots"])[0]])
            assert point["hazard_ratio"] == pytest.approx(np.exp((row - ref_row) @ cph.params_[idx]), rel=1e-4)


def test_logistic_spline_matches_statsmodels(study):
    spec = {**cox(study, SPLINES), "model": "logistic", "outcome": v(REG, OUTCOME)}
    del spec["time"], spec["event"]
    result, _ = run(study, spec)
    x, data, _ = spline_design(study, result, [OUTCOME])
    x.insert(0, "(intercept)", 1.0)
    fit = sm.Logit(data[OUTCOME].astype(float), x).fit(disp=0, tol=1e-12, maxiter=100)
    assert_close_in_se(pd.DataFrame(result["coefficients"]).set_index("feature"), fit.params, fit.bse)
    assert result["splines"][0]["curve"][0]["odds_ratio"] > 0


def test_residualised_spline_terms_map_back_exactly():
    """The stations encode a spline's nonlinear terms as residuals on the column and the earlier terms; the
    coordinator's map, sums, moments and reference profile must undo that exactly (numpy on the raw terms)."""
    rng = np.random.default_rng(3)
    age = np.round(rng.normal(66, 9, 500))
    knots = [50.0, 62.0, 70.0, 82.0]
    raw = np.column_stack([age, rcs_basis(age, knots)])
    features = [{"name": "age", "station": REG, "column": "age", "level": None, "centre": 66.0, "exponent": 4}]
    enc = [(age - 66.0) / 16]
    for term in (1, 2):
        minus = _residual_coefficients(raw[:, term], [raw[:, j] for j in range(term)])
        assert any(minus) and all(float(f"{c:.3g}") == c for c in minus)   # rounded aggregates
        residual = raw[:, term] - raw[:, :term] @ minus
        centre, exponent = float(round(residual.mean())), int(np.ceil(np.log2(residual.std())))
        features.append({"name": "age" + "'" * term, "station": REG, "column": "age", "level": None, "term": term,
                         "minus": minus, "centre": centre, "exponent": exponent})
        enc.append((residual - centre) / 2.0 ** exponent)
    enc = np.column_stack(enc)
    assert np.abs(np.corrcoef(enc.T)[np.triu_indices(3, 1)]).max() < 0.05    # nearly orthogonal, unlike raw
    assert np.abs(np.corrcoef(raw.T)[np.triu_indices(3, 1)]).max() > 0.8
    m = original_map(features, intercept=False)
    np.testing.assert_allclose(enc, (raw - reference_profile(features)) @ m.T, atol=1e-9)
    np.testing.assert_allclose(original_sums(enc.sum(axis=0), len(age), features), raw.sum(axis=0), rtol=1e-12)
    moments = original_moments(enc.mean(axis=0), enc.T @ enc / len(age), features)
    np.testing.assert_allclose([mu for mu, _ in moments], raw.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose([sd for _, sd in moments], raw.std(axis=0), rtol=1e-9)
    # a term that is linear in the column over all rows (every value below the second knot) stays raw
    young = np.linspace(20, 40, 50)
    assert _residual_coefficients(rcs_basis(young, knots)[:, 0], [young]) == [0.0]


def test_spline_refusals(study, tmp_path):
    coord, _ = recording_coordinator(STEPS, station_paths(study))
    with pytest.raises(LancelotError, match="binary.*spline"):
        train(coord, cox(study, [v(REG, "immunotherapy", spline={"knots": 3}), v(GP, "copd")]))
    coord, _ = recording_coordinator(STEPS, station_paths(study))
    with pytest.raises(LancelotError, match="too few distinct values for a spline with 5 knots"):
        train(coord, cox(study, [v(REG, "who_ps", spline={"knots": 5}), v(GP, "copd")]))


@pytest.mark.parametrize("spline, message", [
    ({"knots": 2}, "3 to 7 knots"),
    ({"knots": [30, 20, 25]}, "strictly increasing"),
    ({"knots": "many"}, "'spline' must be"),
    ({"df": 3}, "'spline' must be"),
])
def test_bad_spline_spec(spline, message):
    raw = {"model": "cox", "time": v(REG, TIME), "event": v(REG, EVENT),
           "features": [v(REG, "age_at_diagnosis", spline=spline)]}
    with pytest.raises(InputError, match=message):
        parse_train_spec(raw, [REG, GP])
    raw["features"] = [v(REG, "stage", type="categorical", spline={"knots": 3})]
    with pytest.raises(InputError, match="numeric column"):
        parse_train_spec(raw, [REG, GP])


def test_predicted_survival_uses_the_profiles_stratum(stratified):
    from lancelot.training.predict import predict

    result, _, x, data, levels = stratified
    column = result["strata"]["column"]
    cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float), S=data["S"]), "T", "E",
                            strata=["S"], fit_options={"precision": 1e-10})
    profile = {"age_at_diagnosis": 70, "immunotherapy": 1, "copd": 1, "gp_visits": 5}
    for stratum in (levels[0], levels[-1]):
        got = predict(result, {**profile, column: stratum})
        assert got["stratum"] == {column: stratum}
        row = pd.DataFrame([{**profile, "immunotherapy:copd": 1, "S": stratum}])
        curve = cph.predict_survival_function(row).iloc[:, 0]
        for point in got["survival"]:
            assert point["survival"] == pytest.approx(curve[curve.index <= point["time"]].iloc[-1], abs=3e-3)
            assert point["ci_low"] < point["survival"] < point["ci_high"]
    with pytest.raises(LancelotError, match=f"lacks {column}"):
        predict(result, profile)
    with pytest.raises(LancelotError, match=f"'{column}' must be one of"):
        predict(result, {**profile, column: "V"})


def test_spline_prediction_uses_the_released_knots(study, spline_cox):
    from lancelot.training.predict import design_row

    row = design_row(spline_cox, {"age_at_diagnosis": 80, "immunotherapy": 0, "copd": 1, "bmi": 31})
    knots = {s["column"]: s["knots"] for s in spline_cox["splines"]}
    expected = np.concatenate([[80], harrell(np.array([80.0]), knots["age_at_diagnosis"])[0], [0, 1, 31],
                               harrell(np.array([31.0]), knots["bmi"])[0]])
    np.testing.assert_allclose(row, expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the NSCLC example: immunotherapy x COPD across stations, an age spline, strata by stage
# ---------------------------------------------------------------------------------------------
def test_the_treatment_effects_example_through_the_real_entry_points(tmp_path):
    """docs/examples/nsclc_treatment_effects.json through vantage6's wrap_algorithm (fresh processes, station guard),
    against lifelines with the same strata, products and spline basis; the report shows the hazard ratio of
    immunotherapy by COPD status and the two predicted survival curves of a profile."""
    from pathlib import Path

    from lancelot.report import write_train_report

    study = make_study(tmp_path, patients=1200, gp_stations=1, seed=8)
    example = json.loads((Path(__file__).resolve().parents[1] / "docs/examples/nsclc_treatment_effects.json").read_text())
    spec = {**example, "linkage": json.loads(study["link_spec"].read_text()), "tolerance": 1e-10}
    result = local_study(station_paths(study)).train(spec, evaluate=True).to_json()
    mains = [f for f in example["features"] if "interaction" not in f]
    x, data = pooled_design(joined(study, result["links"], [REG, GP]), [{**f, "spline": None} for f in mains],
                            [TIME, EVENT, "stage"])
    knots = result["splines"][0]["knots"]
    basis = harrell(x["age_at_diagnosis"].to_numpy(), knots)
    x["age_at_diagnosis'"], x["age_at_diagnosis''"] = basis[:, 0], basis[:, 1]
    x["immunotherapy:copd"] = x["immunotherapy"] * x["copd"]
    x["immunotherapy:bmi"] = x["immunotherapy"] * x["bmi"]
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    x = x[list(table.index)]
    cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float), S=data["stage"]), "T", "E",
                            strata=["S"], fit_options={"precision": 1e-10})
    assert_close_in_se(table, cph.params_, cph.standard_errors_)
    copd = {r["at"]: r for r in result["interactions"][0]["effects"]}
    c = cph.params_
    assert copd["1"]["hazard_ratio"] == pytest.approx(np.exp(c["immunotherapy"] + c["immunotherapy:copd"]), rel=1e-4)
    assert [r["at"] for r in result["interactions"][1]["effects"]] == ["20", "25", "30"]
    phases = result["cost"]["rounds_per_phase"]
    assert result["strata"]["column"] == "stage" and result["cost"]["rounds"] == 3 + 5 * result["convergence"][
        "iterations"] + phases.get("training: concordance", 0) + 5
    assert phases["training: internal validation"] == 5 and result["validation"]["folds"] == 5   # cross-validation
    assert 0.5 < result["validation"]["concordance"]["cross_validated"] <= result["quality"]["concordance"]["upper"]
    profile = {"age_at_diagnosis": 68, "who_ps": 1, "surgery": 0, "copd": 1, "cardiovascular": 0, "bmi": 24,
               "stage": "IV"}
    page = write_train_report(result, tmp_path / "report",
                              decision={"profile": profile, "treatment": "immunotherapy"}).read_text()
    assert "Effect modification: immunotherapy:copd" in page and "copd = 1" in page
    assert "immunotherapy = 0" in page and "immunotherapy = 1" in page and (tmp_path / "report/decision.png").exists()


def test_the_demo_fits_the_example_spec():
    from pathlib import Path

    from lancelot.cli import _demo_specs

    example = json.loads((Path(__file__).resolve().parents[1] / "docs/examples/nsclc_treatment_effects.json").read_text())
    demo = _demo_specs({})["effects"]
    assert demo["features"] == example["features"] and demo["strata"] == example["strata"]
    assert demo["validation"] == example["validation"]

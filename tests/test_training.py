"""Training: logistic regression on the linked cohort equals a pooled statsmodels fit on the same records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from cryptography.exceptions import InvalidTag
from helpers import (
    is_significant,
    joined,
    local_study,
    make_study,
    mean_step,
    pooled_design,
    recording_coordinator,
    rounded,
    significant,
    station_paths,
)
from sklearn.metrics import roc_auc_score

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.errors import InputError, LancelotError, PrivacyError
from lancelot.training import shares as sh
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train

REG, GP, G2 = "registry", "gp_1", "gp_2"
OUTCOME = {"station": REG, "column": "death_within_2y"}


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


FEATURES = [v(REG, "age_at_diagnosis"), v(REG, "stage", type="categorical"), v(REG, "who_ps"),
            v(GP, "copd"), v(GP, "bmi"), v(GP, "smoking", type="categorical", reference="never")]


def pooled_fit(linked: pd.DataFrame, features: list[dict], outcome: str = "death_within_2y"):
    """The reference: statsmodels Logit on the linked complete cases, same dummies and references."""
    x, data = pooled_design(linked, features, [outcome])
    x.insert(0, "(intercept)", 1.0)
    return sm.Logit(data[outcome].astype(float), x.astype(float)).fit(disp=0, tol=1e-12, maxiter=100), x, data[outcome]


def spec_for(study, features, **extra):
    return {"linkage": json.loads(study["link_spec"].read_text()), "model": "logistic", "outcome": OUTCOME,
            "features": features, **extra}


def assert_matches(result, fit, x, y):
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    assert list(table.index) == list(x.columns)
    np.testing.assert_allclose(table["estimate"], fit.params[x.columns], atol=1e-4, rtol=0)
    np.testing.assert_allclose(table["std_error"], fit.bse[x.columns], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(table["p_value"], fit.pvalues[x.columns], atol=1e-4)
    ci = fit.conf_int()
    np.testing.assert_allclose(table["ci_low"], ci.loc[x.columns, 0], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(table["odds_ratio"], np.exp(fit.params[x.columns]), rtol=1e-4)
    # counts are released rounded to the nodes' base (5), the AUC to 4 significant digits
    assert result["protections"]["rounding_base"] == result["disclosure_control"]["rounding_base"] == 5
    assert result["n_used"] == result["cohort"]["complete_cases"] == rounded(len(y)) and result["events"] == rounded(int(y.sum()))
    auc = result["quality"]["auc"]
    assert is_significant(auc) and auc == pytest.approx(significant(roc_auc_score(y, fit.predict(x))), abs=1e-4)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("train"), patients=900, gp_stations=1, seed=5)


@pytest.fixture(scope="module")
def result(study):
    """Through the real vantage6 entry points (wrap_algorithm in fresh processes), in-process network."""
    return local_study(station_paths(study)).train(spec_for(study, FEATURES), evaluate=True).to_json()


def test_logistic_matches_statsmodels_on_the_linked_records(study, result):
    fit, x, y = pooled_fit(joined(study, result["links"], [REG, GP]), FEATURES)
    assert_matches(result, fit, x, y)
    stations = {row["feature"]: row["station"] for row in result["coefficients"]}
    assert stations["copd"] == GP and stations["stage=IV"] == REG and stations["(intercept)"] == REG


def test_feature_means_and_sds_over_the_complete_cases(study, result):
    fit, x, y = pooled_fit(joined(study, result["links"], [REG, GP]), FEATURES)
    summary = {row["feature"]: row for row in result["features"]}
    base = result["protections"]["rounding_base"]
    for name in x.columns[1:]:   # released on the grid of docs/leakage/disclosure.md (fixed point: 2^-16 of a scale)
        col = x[name]
        sd, n = col.std(ddof=0), len(col)
        for got, ref in ((summary[name]["mean"], col.mean()), (summary[name]["sd"], sd)):
            assert is_significant(got) and abs(got - ref) <= mean_step(ref, sd, n, base) / 2 + 1e-6
    row = next(r for r in result["coefficients"] if r["feature"] == "age_at_diagnosis")
    # per released SD: an odds ratio per exact SD would give the exact SD back (log OR / coefficient)
    assert row["odds_ratio_per_sd"] == pytest.approx(np.exp(fit.params["age_at_diagnosis"] * summary["age_at_diagnosis"]["sd"]),
                                                     rel=1e-4)


def test_few_rounds_and_convergence_reported(result):
    conv = result["convergence"]
    assert conv["converged"] and 3 <= conv["iterations"] <= 12
    lls = [h["log_likelihood"] for h in conv["history"]]
    assert lls[0] is None   # at beta = 0 it is -n log 2: the exact number of complete cases
    assert all(b >= a - 1e-6 for a, b in zip(lls[1:], lls[2:]))  # Newton on a concave likelihood climbs
    assert result["cost"]["rounds"] == 3 + 2 * conv["iterations"] < 40


def test_calibration_groups_respect_the_minimum_cell_count(study, result):
    fit, x, y = pooled_fit(joined(study, result["links"], [REG, GP]), FEATURES)
    groups = result["quality"]["calibration"]
    sizes = [len(part) for part in np.array_split(np.arange(len(y)), len(groups))]   # equal groups, in risk order
    assert min(sizes) >= result["min_cell_count"] and [g["n"] for g in groups] == [rounded(n) for n in sizes]
    prob, outcome = fit.predict(x).to_numpy(), y.to_numpy()
    order = np.argsort(prob, kind="mergesort")
    # quality is measured at the last opened iterate, within one (small) Newton step of the fit
    assert groups[0]["mean_predicted"] == pytest.approx(prob[order[:sizes[0]]].mean(), abs=2e-4)
    start = 0
    for g, size in zip(groups, sizes):
        assert is_significant(g["mean_predicted"])
        events = int(outcome[order[start:start + size]].sum())
        start += size
        if min(events, size - events) < result["min_cell_count"]:
            assert g["observed_rate"] is None   # a group (almost) all with or without the outcome
        elif g["observed_rate"] is not None:    # from rounded counts; a boundary record may differ at the iterate
            assert g["observed_rate"] == pytest.approx(rounded(events) / rounded(size), abs=0.03)


def test_registry_with_two_gp_stations(tmp_path):
    study = make_study(tmp_path, patients=700, gp_stations=2, seed=11)
    features = [v(REG, "age_at_diagnosis"), v(REG, "surgery"), v(GP, "copd"), v(G2, "diabetes"), v(G2, "gp_visits")]
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study),
                                     {s: {"allow_evaluate": True} for s in (REG, GP, G2)})
    result = train(coord, spec_for(study, features), evaluate=True)
    fit, x, y = pooled_fit(joined(study, result["links"], [REG, GP, G2]), features)
    assert_matches(result, fit, x, y)
    assert {row["station"] for row in result["coefficients"]} == {REG, GP, G2}


def test_no_station_sees_positions_of_its_own_rows(study):
    """Membership stays hidden: cohort positions of a station's rows only ever go to another station."""
    coord, transport = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    train(coord, spec_for(study, FEATURES[:4]))
    share_rounds = [(s, json.loads(p)) for s, p in transport.sent if '"parts"' in p]
    assert {s for s, _ in share_rounds} == {REG, GP}
    for station, payload in share_rounds:
        assert station not in payload["parts"]
    for station, text in transport.received:  # stations send shares, sealed blobs and sums only
        assert "death_within_2y" not in text or station == REG


def test_penalty_shrinks_coefficients(study):
    spec = spec_for(study, FEATURES[:4], penalty=50.0)
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    penalised = pd.DataFrame(train(coord, spec)["coefficients"]).set_index("feature")["estimate"]
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    plain = pd.DataFrame(train(coord, spec_for(study, FEATURES[:4]))["coefficients"]).set_index("feature")["estimate"]
    assert (penalised.abs()["stage=IV"] < plain.abs()["stage=IV"])


def _with_column(study, tmp_path, station, name, values_from):
    df = pd.read_csv(study[station])
    df[name] = values_from(df)
    path = tmp_path / f"{station}.csv"
    df.to_csv(path, index=False)
    return {**station_paths(study), station: path}


@pytest.mark.parametrize("change, features, message", [
    (None, [v(REG, "histology_x")], "missing column"),
    (None, [v(REG, "stage", type="numeric")], "not numeric"),
    ((REG, "constant", lambda d: 1.0), [v(REG, "constant")], "constant"),
    ((REG, "age_months", lambda d: d["age_at_diagnosis"] * 12 + 3), [v(REG, "age_at_diagnosis"), v(REG, "age_months")],
     "collinear"),
    ((REG, "leak", lambda d: d["death_within_2y"]), [v(REG, "leak"), v(GP, "copd")],
     "fewer than 10 non-events among patients with leak=1"),   # a 0/1 feature: refused before any fit
    ((REG, "leak", lambda d: 2 * d["death_within_2y"] + (np.arange(len(d)) % 3) / 10), [v(REG, "leak"), v(GP, "copd")],
     "separated"),
    ((GP, "outlier", lambda d: np.where(np.arange(len(d)) == 0, 1e6, 1.0 + (np.arange(len(d)) % 3))),
     [v(GP, "outlier")], "separated"),  # one extreme value separates quasi-completely
    ((GP, "code", lambda d: [f"c{i % 40}" for i in range(len(d))]), [v(GP, "code", type="categorical")],
     "more than 20 categories"),
    ((GP, "bmi_text", lambda d: d["bmi"].map(lambda x: str(x).replace(".", ","))), [v(GP, "bmi_text")],
     "more than 20 categories.*decimal commas"),   # untyped text: categorical, with the reason it is text
    ((GP, "bmi_text", lambda d: np.where(np.arange(len(d)) % 9 == 0, "?", d["bmi"].astype(str))),
     [v(GP, "bmi_text", type="numeric")], "not numeric.*a marker for missing values"),
    (None, [v(GP, "BMI")], "did you mean 'bmi'"),
])
def test_bad_features_are_refused_clearly(study, tmp_path, change, features, message):
    paths = station_paths(study) if change is None else _with_column(study, tmp_path, *change)
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
    with pytest.raises(LancelotError, match=message):
        train(coord, spec_for(study, features))


@pytest.mark.parametrize("outcome_values, message", [
    (lambda d: d["survival_days"], "binary"),
    (lambda d: np.zeros(len(d)), "only one value"),
])
def test_bad_outcome_is_refused(study, tmp_path, outcome_values, message):
    paths = _with_column(study, tmp_path, REG, "y", outcome_values)
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
    spec = {**spec_for(study, FEATURES[:2]), "outcome": {"station": REG, "column": "y"}}
    with pytest.raises(LancelotError, match=message):
        train(coord, spec)


def test_an_outcome_of_true_false_with_missing_cells_is_the_0_1_outcome(study, tmp_path):
    """pandas reads True/False with empty cells as text; the station reads it as 1/0 with missing, as exploration does."""
    df = pd.read_csv(study[REG])
    missing = np.arange(len(df)) % 11 == 0
    df["y_num"] = df["death_within_2y"].where(~missing)
    df["y_bool"] = df["death_within_2y"].astype(bool).astype(object).where(~missing, None)
    df.to_csv(tmp_path / "registry.csv", index=False)
    paths = {**station_paths(study), REG: tmp_path / "registry.csv"}
    fits = {}
    for column in ("y_bool", "y_num"):
        coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
        fits[column] = train(coord, {**spec_for(study, FEATURES[:3]), "outcome": {"station": REG, "column": column}})
    assert pd.read_csv(paths[REG])["y_bool"].dtype == object
    assert fits["y_bool"]["coefficients"] == fits["y_num"]["coefficients"]
    assert fits["y_bool"]["n_used"] == fits["y_num"]["n_used"]


def test_a_rare_level_merged_into_another_gives_the_pooled_fit_with_that_level_recoded(study, tmp_path):
    """Three 'occult' stages cost the whole stage feature (a level of fewer than k patients); merged into IV they
    are stage IV patients, as a pooled fit on the recoded column says."""
    df = pd.read_csv(study[REG])
    df["stage_o"] = df["stage"].astype(object)
    df.loc[df.index[:3], "stage_o"] = "occult"
    df.to_csv(tmp_path / "registry.csv", index=False)
    paths = {**station_paths(study), REG: tmp_path / "registry.csv"}
    stage = v(REG, "stage_o", type="categorical", reference="I")
    features = [v(REG, "age_at_diagnosis"), stage, v(GP, "copd")]
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
    with pytest.raises(PrivacyError, match=r"stage_o=occult.*\"merge\""):
        train(coord, spec_for(study, features))
    features[1] = {**stage, "merge": {"occult": "IV"}}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths, {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, spec_for(study, features), evaluate=True)
    linked = joined({**study, **paths}, result["links"], [REG, GP])
    assert (linked["stage_o"] == "occult").any()
    linked["stage_o"] = linked["stage_o"].replace({"occult": "IV"})
    fit, x, y = pooled_fit(linked, [features[0], stage, features[2]])
    assert "stage_o=IV" in x.columns and not any("occult" in c for c in x.columns)
    assert_matches(result, fit, x, y)


def test_a_0_1_column_with_a_word_read_as_categorical_says_so(study, tmp_path):
    """copd with 'unknown' for some patients and no "type": its levels 1 and unknown get coefficients, and the
    result says why, where a clean column says nothing."""
    gp = pd.read_csv(study[GP])
    gp["copd_u"] = gp["copd"].astype(object).where(np.arange(len(gp)) % 6 > 0, "unknown")
    gp.to_csv(tmp_path / "gp.csv", index=False)
    paths = {**station_paths(study), GP: tmp_path / "gp.csv"}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
    result = train(coord, spec_for(study, [v(REG, "age_at_diagnosis"), v(GP, "copd_u")]))
    assert {r["feature"] for r in result["coefficients"]} >= {"copd_u=1", "copd_u=unknown"}
    (note,) = result["notes"]
    assert note.startswith("'copd_u' (station 'gp_1') was read as categorical: most of its values are numbers")
    from lancelot.results import LogisticModel

    assert f"    note: {note}" in LogisticModel(result).summary_lines()
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    assert "notes" not in train(coord, spec_for(study, [v(REG, "age_at_diagnosis"), v(GP, "copd")]))


@pytest.mark.parametrize("merge, extra, message", [
    ({"IIII": "IV"}, {}, r"'merge' names level\(s\) \['IIII'\] that the column does not have"),   # a typo
    ({"I": "I-II", "II": "I-II"}, {"reference": "I"}, "reference level 'I' does not occur after 'merge'"),
    ({"occult": "IV", "IV": "III"}, {}, "itself merged"),
    ({"occult": True}, {}, "maps levels"),
    ([["occult", "IV"]], {}, "maps levels"),
])
def test_a_bad_merge_is_refused(study, merge, extra, message):
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    with pytest.raises(LancelotError, match=message):
        train(coord, spec_for(study, [v(REG, "stage", type="categorical", merge=merge, **extra), v(GP, "copd")]))
    with pytest.raises(LancelotError, match="'merge' needs"):
        train(coord, spec_for(study, [v(REG, "who_ps", merge={"3": "2"}), v(GP, "copd")]))


@pytest.mark.parametrize("change, message", [
    ({"model": "cox"}, "takes 'time' and 'event'"),   # a logistic spec with the model switched
    ({"model": "probit"}, "unknown model"),
    ({"features": []}, "non-empty list"),
    ({"outcome": {"station": GP, "column": "diabetes"}}, "outcome must be at the linkage hub"),
    ({"penalty": -1}, "penalty"),
    ({"features": [v(REG, "age_at_diagnosis"), v(REG, "age_at_diagnosis")]}, "twice"),
    ({"features": [v("elsewhere", "x")]}, "not part of this run"),
])
def test_bad_spec_is_refused(study, change, message):
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    with pytest.raises(LancelotError, match=message):
        train(coord, {**spec_for(study, FEATURES), **change})


def test_too_few_records_per_coefficient(tmp_path):
    small = make_study(tmp_path, patients=60, gp_stations=1, seed=2)
    features = [v(REG, "age_at_diagnosis"), v(REG, "stage", type="categorical"), v(REG, "histology"), v(GP, "bmi"),
                v(GP, "smoking"), v(GP, "copd"), v(GP, "gp_visits")]
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(small))
    with pytest.raises(LancelotError, match="too few"):
        train(coord, spec_for(small, features))


# ---------------------------------------------------------------------------------------------
# the share arithmetic itself
# ---------------------------------------------------------------------------------------------
def test_a_long_tailed_column_is_scaled_to_its_tail_and_fits_exactly(tmp_path):
    """One linked patient with over 1,000 GP visits among about 1,800 with a handful lies about 40 standard deviations
    out (a single value reaches at most sqrt(n) of them, so only a station of more than 1,024 rows can show
    this): the station widens the column's scale instead of refusing it, and the fit still equals the pooled
    one within 1e-6 (the bulk keeps 2^-16 of the wider scale in its main column and the rest in its low bits)."""
    study = make_study(tmp_path / "tail", patients=1500, gp_stations=1, seed=11)
    gp = pd.read_csv(study[GP])
    truth = pd.read_csv(study["truth_links"])
    linked = truth.loc[truth.station == GP, "station_id"].iloc[0]

    def reach(value):   # the largest |value - centre| in units of the power of two at or above the SD
        column = np.where(gp["patient_nr"] == linked, value, gp["gp_visits"])
        return np.abs(column - round(column.mean())).max() / 2.0 ** np.ceil(np.log2(column.std()))

    tail = next(value for value in range(1000, 3000, 10) if reach(value) > 32)   # refused before
    gp["visits_tail"] = np.where(gp["patient_nr"] == linked, tail, gp["gp_visits"])
    gp.to_csv(tmp_path / "gp_1.csv", index=False)
    paths = {**station_paths(study), GP: tmp_path / "gp_1.csv"}
    features = [v(REG, "age_at_diagnosis"), v(GP, "copd"), v(GP, "visits_tail"), v(GP, "bmi")]
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths, {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, spec_for(study, features, tolerance=1e-10), evaluate=True)
    linked_rows = joined({**study, GP: paths[GP]}, result["links"], [REG, GP])
    assert linked_rows["visits_tail"].max() == tail
    fit, x, _ = pooled_fit(linked_rows, features)
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    np.testing.assert_allclose(table["estimate"], fit.params[x.columns], atol=1e-6, rtol=0)
    np.testing.assert_allclose(table["std_error"], fit.bse[x.columns], atol=1e-6, rtol=0)
    # one patient holds about a sixth of the column's sum here: its mean is released (no dominance)
    summaries = {row["feature"]: row for row in result["features"]}
    assert summaries["visits_tail"]["mean"] == pytest.approx(linked_rows["visits_tail"].mean(), rel=0.02)


def test_a_feature_mean_one_patient_could_dominate_is_withheld():
    """The complete cases' mean of a feature is about one patient's value / n when that value dominates the
    sum: withheld by the dominance bound (lancelot.disclosure.may_be_dominated), as in exploration."""
    from lancelot.training.logistic import summary_row

    feature = {"name": "visits", "station": GP}
    values = np.concatenate([np.full(999, 5.0), [250000.0]])
    held = summary_row(feature, values.mean(), values.std(), len(values), 5)
    assert held["mean"] is None and held["sd"] is None and "dominance" in held["withheld"]
    bmi = np.random.default_rng(3).normal(26, 4, 1000)
    shown = summary_row(feature, bmi.mean(), bmi.std(), len(bmi), 5)
    assert shown["mean"] == pytest.approx(bmi.mean(), abs=0.05) and "withheld" not in shown


def test_shares_open_to_the_value_and_each_alone_is_uniform_looking():
    seed = sh.new_seed()
    x = np.array([-3.25, 0.0, 1.5, 1000.125])
    mask = sh.prg(seed, "m", 4)
    a, b = sh.encode(x, 16) + mask, (np.uint64(0) - mask)
    np.testing.assert_array_equal(sh.decode(a + b, 16), x)
    assert np.array_equal(sh.prg(seed, "m", 4), mask) and not np.array_equal(sh.prg(seed, "n", 4), mask)
    perm = sh.permutation(seed, "p", 1000)
    assert sorted(perm.tolist()) == list(range(1000)) and not np.array_equal(perm, np.arange(1000))
    # a share is far from the value: the high bits of encoded small numbers are random
    assert np.mean(a >> np.uint64(48) == 0) < 0.5


def test_sealed_blobs_only_open_with_the_pair_key():
    a_priv, a_pub = sh.new_exchange_key()
    b_priv, b_pub = sh.new_exchange_key()
    c_priv, _ = sh.new_exchange_key()
    k_ab = sh.shared_key(a_priv, b_pub, ("a", "b"))
    assert k_ab == sh.shared_key(b_priv, a_pub, ("b", "a"))
    box = sh.seal(k_ab, {"rows": np.arange(6, dtype=np.uint64).reshape(2, 3)}, "rows:a")
    np.testing.assert_array_equal(sh.unseal(k_ab, box, "rows:a")["rows"], np.arange(6).reshape(2, 3))
    with pytest.raises(InvalidTag):
        sh.unseal(sh.shared_key(c_priv, b_pub, ("c", "b")), box, "rows:a")
    with pytest.raises(InvalidTag):
        sh.unseal(k_ab, box, "rows:b")  # bound to its label: cannot be replayed as another message


def test_input_error_names_station_and_column():
    err = InputError("is constant", station=REG, column="x")
    assert "registry" in str(err) and "'x'" in str(err)


def test_prediction_for_a_profile_matches_statsmodels(study, result):
    from lancelot.training.predict import predict

    fit, x, y = pooled_fit(joined(study, result["links"], [REG, GP]), FEATURES)
    glm = sm.GLM(y.astype(float), x, family=sm.families.Binomial()).fit(tol=1e-12)
    profile = {"age_at_diagnosis": 72, "stage": "IV", "who_ps": 1, "copd": 1, "bmi": 23.5, "smoking": "former"}
    row = pd.DataFrame([{c: 0.0 for c in x.columns}])
    row[["(intercept)", "age_at_diagnosis", "stage=IV", "who_ps", "copd", "bmi", "smoking=former"]] = [1, 72, 1, 1, 1, 23.5, 1]
    ref = glm.get_prediction(row).summary_frame(alpha=0.05).iloc[0]
    got = predict(result, profile)
    assert got["predicted_risk"] == pytest.approx(ref["mean"], abs=1e-4)
    assert got["ci_low"] == pytest.approx(ref["mean_ci_lower"], abs=1e-4)
    assert got["ci_high"] == pytest.approx(ref["mean_ci_upper"], abs=1e-4)
    assert "research use" in got["label"]
    with pytest.raises(LancelotError, match="stage"):
        predict(result, {**profile, "stage": "V"})
    with pytest.raises(LancelotError, match="lacks bmi"):
        predict(result, {k: v for k, v in profile.items() if k != "bmi"})
    # the reference level of a categorical feature is accepted (all its dummies are zero)
    assert predict(result, {**profile, "smoking": "never"})["predicted_risk"] < 1


def test_report_renders_the_released_numbers_and_plots(result, tmp_path):
    from PIL import Image

    from lancelot.report import write_train_report

    page = write_train_report(result, tmp_path).read_text()
    for row in result["coefficients"]:
        assert row["feature"] in page
    assert "research use only" in page
    for png in ("forest.png", "calibration.png"):
        with Image.open(tmp_path / png) as im:  # a real, non-blank image
            assert im.size[0] > 300 and len(np.unique(np.asarray(im.convert("L")))) > 10

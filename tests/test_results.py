"""The researcher API: Study.local's result objects against the JSON they wrap and against pooled references.

One small study (500 patients) runs link, explore, logistic and Cox through ``Study.local`` (the in-process
network, every step in a fresh process); the objects' tables must be the JSON's numbers, their JSON the
JSON unchanged, and the fits the pooled statsmodels / lifelines fits on the linked records.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from helpers import joined, make_study, pooled_design, station_paths
from lifelines import CoxPHFitter
from scipy import stats

from lancelot import Study
from lancelot.results import CoxModel, Exploration, LinkageResult, LogisticModel, Model, result_from_json
from lancelot.runtime.errors import InputError, LancelotError
from lancelot.training.predict import predict_risk, predict_survival

REG, GP = "registry", "gp_1"


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


FEATURES = [v(REG, "age_at_diagnosis"), v(REG, "stage", type="categorical", reference="I"), v(GP, "copd"), v(GP, "bmi")]
PROFILE = {"age_at_diagnosis": 70, "stage": "III", "copd": 1, "bmi": 24}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("results"), patients=500, gp_stations=1, seed=4)


@pytest.fixture(scope="module")
def results(study):
    link = json.loads(study["link_spec"].read_text())
    local = Study.local(station_paths(study))
    explore = {"linkage": link, "analyses": [
        {"type": "crosstab", "variables": [v(REG, "stage"), v(GP, "copd")]},
        {"type": "summary", "variable": v(GP, "bmi"), "by": v(REG, "surgery")},
        {"type": "kaplan_meier", "time": v(REG, "survival_days"), "event": v(REG, "vital_status"),
         "times": [182, 365, 730]},
        {"type": "table_one", "name": "table_1", "by": v(REG, "surgery"), "variables": [v(REG, "age_at_diagnosis"),
                                                                                        v(GP, "copd")]}]}
    logistic = {"linkage": link, "model": "logistic", "outcome": v(REG, "death_within_2y"), "features": FEATURES}
    cox = {"linkage": link, "model": "cox", "time": v(REG, "survival_days"), "event": v(REG, "vital_status"),
           "features": FEATURES}
    return {"link": local.link(link), "explore": local.explore(explore),
            "logistic": local.train(logistic, evaluate=True), "cox": local.train(cox, evaluate=True)}


def test_each_algorithm_gives_its_class_and_the_json_round_trips(results, tmp_path):
    kinds = {"link": LinkageResult, "explore": Exploration, "logistic": LogisticModel, "cox": CoxModel}
    for name, result in results.items():
        assert type(result) is kinds[name] and result.task_id is None and result.seconds > 0
        raw = result.to_json()
        assert type(result).from_json(raw).to_json() == raw
        assert type(result_from_json(json.loads(json.dumps(raw)))) is kinds[name]
        path = result.save(tmp_path / f"{name}.json")
        assert json.loads(path.read_text()) == raw and result_from_json(path).to_json() == raw
        assert result.rounds == raw["cost"]["rounds"] > 0
    assert type(Model.from_json(results["cox"].to_json())) is CoxModel
    assert type(Model.from_json(tmp_path / "logistic.json")) is LogisticModel   # a file: the class its JSON names
    with pytest.raises(InputError, match="not a logistic or Cox"):
        Model.from_json(results["explore"].to_json())


def test_linkage_summary_is_the_released_pairs(results):
    link = results["link"]
    table = link.summary()
    for pair, info in link.raw["summary"]["pairs"].items():
        assert table.loc[pair, "linked"] == info["linked"]
        assert table.loc[pair, "em_expected_precision"] == info["em_expected_precision"]
    assert "links" not in link.raw   # not an evaluation run: no record ids


def test_model_summaries_are_the_released_coefficients_in_lifelines_layout(results):
    for name, ratio, low in (("logistic", "odds_ratio", "or_ci_low"), ("cox", "hazard_ratio", "hr_ci_low")):
        model = results[name]
        table = model.summary()
        assert list(table.columns) == ["station", "coef", "exp(coef)", "se(coef)", "exp(coef) lower 95%",
                                       "exp(coef) upper 95%", "z", "p"]
        for row in model.raw["coefficients"]:
            got = table.loc[row["feature"]]
            assert (got["coef"], got["se(coef)"], got["p"], got["exp(coef)"], got["exp(coef) lower 95%"]) == \
                (row["estimate"], row["std_error"], row["p_value"], row[ratio], row[low])
            # and they are what a Wald table says they are
            assert got["exp(coef)"] == pytest.approx(math.exp(got["coef"]))
            assert got["p"] == pytest.approx(2 * stats.norm.sf(abs(got["coef"] / got["se(coef)"])), abs=1e-12)


def test_study_local_fits_match_the_pooled_fits_on_the_linked_records(study, results):
    logistic, cox = results["logistic"], results["cox"]
    x, data = pooled_design(joined(study, logistic.raw["links"], [REG, GP]), FEATURES, ["death_within_2y"])
    x.insert(0, "(intercept)", 1.0)
    fit = sm.Logit(data["death_within_2y"].astype(float), x.astype(float)).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(logistic.summary()["coef"], fit.params[x.columns], atol=1e-4)
    np.testing.assert_allclose(logistic.summary()["se(coef)"], fit.bse[x.columns], atol=1e-4, rtol=1e-4)

    x, data = pooled_design(joined(study, cox.raw["links"], [REG, GP]), FEATURES, ["survival_days", "vital_status"])
    frame = pd.concat([x, data[["survival_days", "vital_status"]]], axis=1).astype(float)
    ref = CoxPHFitter().fit(frame, "survival_days", "vital_status")
    np.testing.assert_allclose(cox.summary()["coef"], ref.params_[x.columns], atol=1e-4)
    np.testing.assert_allclose(cox.summary()["se(coef)"], ref.standard_errors_[x.columns], atol=1e-4, rtol=1e-4)


def test_predictions_and_the_decision_view_come_from_the_model_class(results):
    logistic, cox = results["logistic"], results["cox"]
    assert logistic.predict(PROFILE) == predict_risk(logistic.raw, PROFILE)
    assert cox.predict(PROFILE) == predict_survival(cox.raw, PROFILE)
    view = cox.predict(PROFILE, treatment="copd")
    assert [a["treatment"]["copd"] for a in view["arms"]] == [0, 1] and "hazard_ratio" in view["ratios"][0]
    text = "\n".join(cox.treatment_lines(view))
    assert "copd=0 | copd=1" in text and "hazard ratio for this profile, copd=1 vs 0" in text
    risk = logistic.predict(PROFILE)
    assert logistic.prediction_lines(risk) == [f"predicted risk of death_within_2y: {risk['predicted_risk']:.3f} "
                                               f"(95% CI {risk['ci_low']:.3f}-{risk['ci_high']:.3f})"]


def test_exploration_tables_summary_and_printout(results, capsys):
    exploration = results["explore"]
    analyses = exploration.raw["analyses"]
    summary = exploration.summary()
    assert list(summary.index) == [a["name"] for a in analyses]
    assert list(summary["type"]) == [a["type"] for a in analyses]
    tables = exploration.tables()
    crosstab = next(a for a in analyses if a["type"] == "crosstab")
    assert tables[crosstab["name"]].to_dict("records") == crosstab["table"]
    assert summary.loc[crosstab["name"], "rows"] == len(crosstab["table"])
    km = next(a for a in analyses if a["type"] == "kaplan_meier")
    assert tables[km["name"]]["survival"].tolist() == [p["survival"] for g in km["groups"] for p in g["curve"]]
    one = exploration.table_one("table_1")
    assert one.loc[("n", ""), "overall"] == str(exploration["table_1"].raw["overall"]["n"])
    exploration.print_summary()
    printed = capsys.readouterr().out
    assert "stage \\ copd" in printed and "disclosure control: minimum cell count" in printed


def test_study_local_checks_the_spec_before_anything_runs(study):
    link = json.loads(study["link_spec"].read_text())
    bad = {"linkage": link, "model": "logistic", "outcome": v(REG, "death_within_2y"), "features": []}
    with pytest.raises(LancelotError, match="the spec is not valid"):
        Study.local(station_paths(study)).train(bad)


def test_reports_dispatch_by_class(results, tmp_path):
    for name, result in results.items():
        page = result.report(tmp_path / name).read_text()
        assert page.startswith("<html>")
    assert "Cox proportional hazards" in (tmp_path / "cox" / "report.html").read_text()
    assert "logistic regression" in (tmp_path / "logistic" / "report.html").read_text()

"""The researcher's API (lancelot.client) runs the example study (scripts/example_study.py) on the real
network: link, explore, logistic and Cox regression, predictions and reports. The models are compared
with pooled fits on the linked records (statsmodels, lifelines)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CONNECTION_FILE
from helpers import assert_close_in_se, clear_bootstrap, clear_cross_validation, harrell

from lancelot.client import Study
from lancelot.runtime.errors import LancelotError

pytestmark = pytest.mark.network
REG, GP1, GP2 = "registry", "gp_1", "gp_2"
ROOT = Path(__file__).resolve().parents[2]


def example_study():
    spec = importlib.util.spec_from_file_location("example_study", ROOT / "scripts" / "example_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def linked_records(devnet, links: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(links)
    cohort = frame[[REG, GP1]].dropna().merge(frame[[REG, GP2]].dropna(), on=REG)
    return (cohort.merge(devnet.read_csv(REG), left_on=REG, right_on="record_id")
            .merge(devnet.read_csv(GP1).add_suffix("_1"), left_on=GP1, right_on="patient_nr_1")
            .merge(devnet.read_csv(GP2).add_suffix("_2"), left_on=GP2, right_on="patient_nr_2"))


def design(data: pd.DataFrame, keep: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = data[["age_at_diagnosis", "stage", "copd_1", "bmi_2"] + keep].dropna()
    x = pd.DataFrame({"age_at_diagnosis": data["age_at_diagnosis"].astype(float)})
    for level in sorted(data["stage"].astype(str).unique())[1:]:
        x[f"stage={level}"] = (data["stage"].astype(str) == level).astype(float)
    x["copd"], x["bmi"] = data["copd_1"].astype(float), data["bmi_2"].astype(float)
    return x, data[keep].astype(float)


# The example study (scripts/example_study.py run_study) in its three independent parts, one test each, so
# that they run side by side: link and explore; logistic and Cox with predictions; the treatment effects.
def _study_and_spec(devnet):
    return Study.from_connection_file(CONNECTION_FILE, progress=False), \
        json.loads((devnet.data_dir / "link_spec.json").read_text())


def test_the_example_study_links_and_explores_through_the_client(devnet, tmp_path):
    study, spec = _study_and_spec(devnet)
    got = example_study().link_and_explore(study, spec, tmp_path)
    assert got["link"].rounds == 2 and (got["link"].pairs()["linked"] > 0).all()
    table = next(t for t in got["exploration"].tables().values() if "count" in t)
    counts = table["count"].dropna()
    assert len(counts) > 0 and ((counts == 0) | (counts >= 10)).all() and np.allclose(counts, counts.round())
    for folder in ("link", "explore"):
        assert (tmp_path / folder / "report.html").exists()

    with pytest.raises(LancelotError, match="refused"):  # a station's refusal reaches the researcher
        study.train({"linkage": spec, "outcome": {"station": "registry", "column": "death_within_2y"},
                     "features": [{"station": "gp_1", "column": "no_such_column"}]})


def test_the_example_study_fits_its_models_through_the_client(devnet, tmp_path):
    import statsmodels.api as sm
    from lifelines import CoxPHFitter

    study, spec = _study_and_spec(devnet)
    got = example_study().fit_models(study, spec, tmp_path, evaluate=True)
    logistic = got["logistic"]
    x, y = design(linked_records(devnet, logistic.raw["links"]), ["death_within_2y"])
    fit = sm.Logit(y["death_within_2y"], sm.add_constant(x).rename(columns={"const": "(intercept)"})).fit(disp=0)
    coef = logistic.coefficients()
    np.testing.assert_allclose(coef["estimate"], fit.params[coef.index], atol=1e-4)
    assert coef.loc["copd", "station"] == GP1 and coef.loc["bmi", "station"] == GP2
    assert logistic.rounds == 3 + 2 * logistic.raw["convergence"]["iterations"]

    cox = got["cox"]
    x, y = design(linked_records(devnet, cox.raw["links"]), ["survival_days", "vital_status"])
    cph = CoxPHFitter().fit(x.assign(T=y["survival_days"], E=y["vital_status"]), "T", "E",
                            fit_options={"precision": 1e-10})
    coef = cox.coefficients()
    np.testing.assert_allclose(coef["estimate"], cph.params_[coef.index], atol=1e-4)
    np.testing.assert_allclose(coef["std_error"], cph.standard_errors_[coef.index], atol=1e-4)
    c = cox.raw["quality"]["concordance"]
    assert c["lower"] <= cph.concordance_index_ <= c["upper"]
    extra = cox.cost["rounds_per_phase"].get("training: concordance", 0)   # 0: it came with the last iteration
    assert cox.rounds == 3 + 5 * cox.raw["convergence"]["iterations"] + extra < 40

    assert 0 < got["risk"]["predicted_risk"] < 1
    survival = [p["survival"] for p in got["survival"]["survival"] if p["survival"] is not None]
    assert survival and all(a >= b for a, b in zip(survival, survival[1:]))   # survival falls over time
    for folder in ("train", "cox"):
        assert (tmp_path / folder / "report.html").exists()


def test_the_example_study_fits_the_treatment_effects_through_the_client(devnet, tmp_path):
    """immunotherapy x COPD across stations, an age spline, a baseline per stage
    (docs/examples/nsclc_treatment_effects.json), against lifelines on the same basis, products and strata."""
    from lifelines import CoxPHFitter

    study, spec = _study_and_spec(devnet)
    got = example_study().treatment_effects(study, spec, tmp_path, evaluate=True)
    effects = got["effects"].raw
    example = example_study().treatment_effects_spec(spec)
    data = linked_records(devnet, effects["links"])
    mains = [f for f in example["features"] if "interaction" not in f]
    columns = {f["column"]: data[f["column"] + ("_1" if f["station"] == GP1 else "")] for f in mains}
    data = pd.DataFrame(columns).assign(T=data["survival_days"], E=data["vital_status"], S=data["stage"]).dropna()
    x = data.drop(columns=["T", "E", "S"]).astype(float)
    basis = harrell(x["age_at_diagnosis"].to_numpy(), effects["splines"][0]["knots"])
    x["age_at_diagnosis'"], x["age_at_diagnosis''"] = basis[:, 0], basis[:, 1]
    x["immunotherapy:copd"], x["immunotherapy:bmi"] = x["immunotherapy"] * x["copd"], x["immunotherapy"] * x["bmi"]
    table = pd.DataFrame(effects["coefficients"]).set_index("feature")
    cph = CoxPHFitter().fit(x[list(table.index)].assign(T=data["T"].astype(float), E=data["E"].astype(float),
                                                        S=data["S"]), "T", "E", strata=["S"],
                            fit_options={"precision": 1e-10})
    # the example's default tolerance stops when the next step is predicted below 1e-6 (encoded scale)
    assert_close_in_se(table, cph.params_, cph.standard_errors_, estimate_se=1e-3, se_rel=1e-4)
    by_copd = {r["at"]: r["hazard_ratio"] for r in effects["interactions"][0]["effects"]}
    c = cph.params_
    assert by_copd["1"] == pytest.approx(np.exp(c["immunotherapy"] + c["immunotherapy:copd"]), rel=1e-3)
    arms = got["decision"]["arms"]
    assert [float(arm["treatment"]["immunotherapy"]) for arm in arms] == [0, 1] and all(a["survival"] for a in arms)
    page = (tmp_path / "treatment_effects" / "report.html").read_text()
    assert "Effect modification: immunotherapy:copd" in page and "immunotherapy = 1" in page
    # the example's 5-fold cross-validation (five rounds in the containers) against true refits in the clear on
    # other folds: the folds' draw moves the estimates by about 0.005 (concordance) and 0.05 (slope)
    cv = effects["validation"]
    assert effects["cost"]["rounds_per_phase"]["training: internal validation"] == 5 and cv["folds"] == 5
    clear_c, clear_slope = clear_cross_validation(x[list(table.index)], data["T"].to_numpy(float),
                                                  data["E"].to_numpy(float), data["S"].astype(str).to_numpy(), 5)
    assert cv["concordance"]["cross_validated"] == pytest.approx(clear_c, abs=0.02)
    assert cv["calibration_slope"]["cross_validated"] == pytest.approx(clear_slope, abs=0.15)
    assert "Internal validation" in page


def test_internal_validation_in_the_algorithm_containers(devnet):
    """The bootstrap validation's four station steps on the real network, in the containers: the apparent AUC is
    the pooled fit's, the optimism agrees with the same procedure in the clear on its own resamples (the
    stations' resamples never leave them), and the validation costs its four rounds for all resamples."""
    study = Study.from_connection_file(CONNECTION_FILE, progress=False)
    spec = json.loads((devnet.data_dir / "link_spec.json").read_text())
    logistic = example_study().specs(spec)["logistic"]
    model = study.train({**logistic, "validation": {"repetitions": 20, "bins": 32}}, evaluate=True)
    x, y = design(linked_records(devnet, model.raw["links"]), ["death_within_2y"])
    x.insert(0, "(intercept)", 1.0)
    ref = clear_bootstrap(x.to_numpy(float), y["death_within_2y"].to_numpy(float), 400, seed=3,
                          k=model.raw["min_cell_count"])
    got = model.raw["validation"]
    assert got["bins"] == 32 and got["resamples_used"] >= 19
    assert got["auc"]["apparent"] == pytest.approx(ref["apparent"], abs=1e-4)
    for key, name, allowance in (("auc", "auc", 0.002), ("calibration_slope", "slope", 0.01)):
        mean, se = ref[name]
        assert got[key]["optimism"] == pytest.approx(mean, abs=4 * np.hypot(got[key]["optimism_se"], se) + allowance)
    assert model.cost["rounds_per_phase"]["training: internal validation"] == 4

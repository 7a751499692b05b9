"""Interaction terms across stations: the product of two columns held at different stations, computed on
shares, equals a pooled fit with formula interactions on the linked records (statsmodels Logit, lifelines
Efron, statsmodels PHReg Breslow) on two and three stations; effect modification and the Wald test against
the pooled covariance; refusals that name the terms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from helpers import (
    make_study,
    mean_step,
    pooled_with_products,
    recording_coordinator,
    station_paths,
    with_columns,
)
from lifelines import CoxPHFitter

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.errors import InputError, LancelotError, PrivacyError
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train
from lancelot.training.spec import parse_train_spec

REG, GP, G2 = "registry", "gp_1", "gp_2"
STEPS = {**LINK_STEPS, **TRAIN_STEPS}
TIME, EVENT, OUTCOME = "survival_days", "vital_status", "death_within_2y"
EXACT = 1e-6      # coefficients and standard errors, on integer, 0/1 and categorical columns (exact in fixed point)


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


def inter(a, b, **extra):
    return {"interaction": [a, b], **extra}


def age_group(d):
    return pd.cut(d["age_at_diagnosis"], [0, 64, 74, 200], labels=["<65", "65-74", "75+"]).astype(str)


def spec(study, model, features, **extra):
    out = {"linkage": json.loads(study["link_spec"].read_text()), "model": model, "features": features,
           "tolerance": 1e-10, **extra}
    if model == "cox":
        return {**out, "time": v(REG, TIME), "event": v(REG, EVENT)}
    return {**out, "outcome": v(REG, OUTCOME)}


def assert_exact(result, params, bse, x, atol=EXACT):
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    assert list(table.index) == list(x.columns)
    # within 1e-6 absolutely or relatively (the raw-scale intercept of a model with centred products is large)
    np.testing.assert_allclose(table["estimate"], params[x.columns], atol=atol, rtol=atol)
    np.testing.assert_allclose(table["std_error"], bse[x.columns], atol=atol, rtol=atol)
    return table


def assert_effects(result, params, cov, ratio):
    """Every per-level (or per-value) effect is the pooled c'beta with SE sqrt(c'Vc); the Wald test is the
    pooled chi-square of the interaction's coefficients."""
    names = list(params.index)
    for block in result["interactions"]:
        for row in block["effects"]:
            effect = row["effect_of"].replace(" (per unit)", "")
            c = pd.Series(0.0, index=names)
            c[effect] = 1.0
            term = next(t for t in block["terms"] if t.startswith(effect + ":"))
            modifier_cols = [t.split(":", 1)[1] for t in block["terms"] if t.startswith(effect + ":")]
            if "=" in modifier_cols[0]:    # a categorical modifier: its level's dummy
                level = f"{row['modifier']}={row['at']}"
                if level in modifier_cols:
                    c[f"{effect}:{level}"] = 1.0
            else:
                c[term] = float(row["at"])
            est = float(c @ params)
            se = float(np.sqrt(c @ cov.loc[names, names] @ c))
            assert row["log_ratio"] == pytest.approx(est, abs=EXACT, rel=EXACT)
            assert row["std_error"] == pytest.approx(se, abs=EXACT, rel=EXACT)
            assert row[ratio] == pytest.approx(np.exp(est), rel=1e-5)
            assert row["ci_low"] == pytest.approx(np.exp(est - 1.959963984540054 * se), rel=1e-5)
        idx = block["terms"]
        b = params[idx].to_numpy()
        chi2 = float(b @ np.linalg.solve(cov.loc[idx, idx].to_numpy(), b))
        assert block["wald_test"]["chi2"] == pytest.approx(chi2, rel=1e-5) and block["wald_test"]["df"] == len(idx)


# ---------------------------------------------------------------------------------------------
# two stations
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study2(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("inter2"), patients=1200, gp_stations=1, seed=7)


@pytest.fixture(scope="module")
def paths2(study2, tmp_path_factory):
    return with_columns(study2, tmp_path_factory.mktemp("inter2data"), REG, age_group=age_group)


LOGISTIC = [v(REG, "age_at_diagnosis"), v(REG, "chemotherapy"), v(REG, "who_ps"),
            v(REG, "age_group", type="categorical", reference="<65"), v(GP, "copd"), v(GP, "gp_visits"),
            inter(v(REG, "chemotherapy"), v(GP, "copd")),                 # 0/1 x 0/1
            inter(v(GP, "copd"), v(REG, "who_ps"), at=[0, 2]),            # 0/1 x numeric, at chosen values
            inter(v(REG, "age_at_diagnosis"), v(GP, "gp_visits")),        # numeric x numeric
            inter(v(REG, "age_group"), v(GP, "copd"))]                    # categorical x 0/1


@pytest.fixture(scope="module")
def logistic2(study2, paths2):
    coord, _ = recording_coordinator(STEPS, paths2, {s: {"allow_evaluate": True} for s in (REG, GP)})
    return train(coord, spec(study2, "logistic", LOGISTIC), evaluate=True), coord


def test_logistic_interactions_match_statsmodels_on_two_stations(study2, paths2, logistic2):
    result, coord = logistic2
    x, data = pooled_with_products(study2, paths2, result, LOGISTIC, [OUTCOME], [REG, GP])
    x.insert(0, "(intercept)", 1.0)
    fit = sm.Logit(data[OUTCOME].astype(float), x).fit(disp=0, tol=1e-12, maxiter=100)
    assert_exact(result, fit.params, fit.bse, x)
    assert_effects(result, fit.params, fit.cov_params(), "odds_ratio")
    # the interactions rode on rounds that run anyway: 3 + 2 per Newton iteration, as without them
    assert coord.cost.rounds == 3 + 2 * result["convergence"]["iterations"]
    rows = {r["feature"]: r for r in result["coefficients"]}
    assert rows["chemotherapy:copd"]["station"] == f"{REG}:{GP}"
    copd_at = [r["at"] for r in result["interactions"][1]["effects"]]
    assert copd_at == ["0", "2"] and result["interactions"][1]["modifier_values"] == "values chosen in the spec"
    # the numeric modifier without 'at': the released mean and mean +/- 1 SD
    gp_visits = next(s for s in result["features"] if s["feature"] == "gp_visits")
    assert [float(r["at"]) for r in result["interactions"][2]["effects"]] == pytest.approx(
        [gp_visits["mean"] - gp_visits["sd"], gp_visits["mean"], gp_visits["mean"] + gp_visits["sd"]], rel=1e-2)
    # an interaction column's mean is the plain product's on the documented grid (base x SD / n, the SD of
    # the encoded product column, here the plain 0/1 product's), its SD is not released
    summary = {s["feature"]: s for s in result["features"]}
    product = x["chemotherapy:copd"]
    step = mean_step(product.mean(), product.std(), len(product), result["disclosure_control"]["rounding_base"])
    assert abs(summary["chemotherapy:copd"]["mean"] - product.mean()) <= step / 2 + 1e-12
    assert summary["chemotherapy:copd"]["sd"] is None


def test_no_plaintext_and_sealed_products(study2, paths2):
    """The products travel between the two computing stations only sealed; what the coordinator deals the
    partner looks uniform; no station gets positions of its own rows (as without interactions)."""
    coord, transport = recording_coordinator(STEPS, paths2)
    features = [v(REG, "chemotherapy"), v(GP, "copd"), inter(v(REG, "chemotherapy"), v(GP, "copd"))]
    train(coord, {**spec(study2, "logistic", features), "tolerance": 1e-6})
    shares = [payload for s, p in transport.sent if s == GP and "gamma" in (payload := json.loads(p)).get("products", {})]
    assert len(shares) == 1
    from lancelot.training.ring import R128
    gamma = R128.unpack(shares[0]["products"]["gamma"])
    high = np.array([int(g) >> 120 for g in gamma.ravel()])
    assert len(np.unique(high)) > 200          # the top byte of 128-bit shares spread over its 256 values
    received = [r for _, text in transport.received if "products" in (r := json.loads(text))]
    assert len(received) == 4                  # share round and first opening, each station
    for r in received:
        assert isinstance(r["products"], str) and len(r["products"]) > 100   # an AEAD blob, nothing else


# ---------------------------------------------------------------------------------------------
# Cox, two stations
# ---------------------------------------------------------------------------------------------
COX = [v(REG, "age_at_diagnosis"), v(REG, "immunotherapy"), v(REG, "stage", type="categorical", reference="I"),
       v(REG, "age_group", type="categorical", reference="<65"), v(GP, "copd"), v(GP, "gp_visits"),
       v(GP, "smoking", type="categorical", reference="never"),
       inter(v(REG, "immunotherapy"), v(GP, "copd")),                     # the study's question
       inter(v(GP, "gp_visits"), v(REG, "age_at_diagnosis")),
       inter(v(REG, "age_group"), v(GP, "smoking"))]                      # categorical x categorical


@pytest.fixture(scope="module")
def cox2(study2, paths2):
    coord, _ = recording_coordinator(STEPS, paths2, {s: {"allow_evaluate": True} for s in (REG, GP)})
    return train(coord, spec(study2, "cox", COX), evaluate=True), coord


def test_cox_interactions_match_lifelines_on_two_stations(study2, paths2, cox2):
    result, coord = cox2
    x, data = pooled_with_products(study2, paths2, result, COX, [TIME, EVENT], [REG, GP])
    cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float)), "T", "E",
                            fit_options={"precision": 1e-10})
    assert_exact(result, cph.params_, cph.standard_errors_, x)
    assert_effects(result, cph.params_, cph.variance_matrix_, "hazard_ratio")
    assert len(result["interactions"][2]["terms"]) == 4         # (3 - 1) x (3 - 1) products
    assert coord.cost.rounds == 3 + 5 * result["convergence"]["iterations"] + \
        coord.cost.as_dict()["rounds_per_phase"].get("training: concordance", 0)
    # the baseline belongs to the reference profile: interaction terms at the product of the centres
    ref = result["baseline"]["reference_profile"]
    assert ref["immunotherapy:copd"] == ref["immunotherapy"] * ref["copd"]


def test_cox_breslow_interactions_match_phreg(study2, paths2):
    features = COX[:2] + COX[4:6] + [COX[7], COX[8]]
    coord, _ = recording_coordinator(STEPS, paths2, {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, spec(study2, "cox", features, ties="breslow"), evaluate=True)
    x, data = pooled_with_products(study2, paths2, result, features, [TIME, EVENT], [REG, GP])
    fit = sm.PHReg(data[TIME].astype(float), x, status=data[EVENT].astype(float), ties="breslow").fit()
    assert_exact(result, pd.Series(fit.params, x.columns), pd.Series(fit.bse, x.columns), x)


# ---------------------------------------------------------------------------------------------
# three stations: products of two non-hub columns and of a hub column with the third station's
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study3(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("inter3"), patients=1000, gp_stations=2, seed=11)


THREE = [v(REG, "age_at_diagnosis"), v(REG, "chemotherapy"), v(GP, "copd"), v(G2, "diabetes"), v(G2, "gp_visits"),
         inter(v(GP, "copd"), v(G2, "diabetes")), inter(v(REG, "chemotherapy"), v(G2, "gp_visits"))]


@pytest.mark.parametrize("model", ["logistic", "cox"])
def test_interactions_on_three_stations(study3, model):
    coord, _ = recording_coordinator(STEPS, station_paths(study3), {s: {"allow_evaluate": True} for s in (REG, GP, G2)})
    result = train(coord, spec(study3, model, THREE), evaluate=True)
    keep = [OUTCOME] if model == "logistic" else [TIME, EVENT]
    x, data = pooled_with_products(study3, {}, result, THREE, keep, [REG, GP, G2])
    x = x.rename(columns=lambda c: c.replace("_gp_2", ""))
    if model == "logistic":
        x.insert(0, "(intercept)", 1.0)
        fit = sm.Logit(data[OUTCOME].astype(float), x).fit(disp=0, tol=1e-12, maxiter=100)
        params, bse, cov, ratio = fit.params, fit.bse, fit.cov_params(), "odds_ratio"
    else:
        cph = CoxPHFitter().fit(x.assign(T=data[TIME].astype(float), E=data[EVENT].astype(float)), "T", "E",
                                fit_options={"precision": 1e-10})
        params, bse, cov, ratio = cph.params_, cph.standard_errors_, cph.variance_matrix_, "hazard_ratio"
    assert_exact(result, params, bse, x)
    assert_effects(result, params, cov, ratio)
    assert {r["station"] for r in result["coefficients"]} >= {f"{GP}:{G2}", f"{REG}:{G2}"}


def test_cox_stratified_at_the_third_station_with_cross_station_products(study3):
    """Strata at a station that is neither the hub nor its partner (its rows reach both through the hub):
    the interactions of the three-station design in a Cox model with a baseline hazard per smoking status."""
    coord, _ = recording_coordinator(STEPS, station_paths(study3), {s: {"allow_evaluate": True} for s in (REG, GP, G2)})
    result = train(coord, {**spec(study3, "cox", THREE), "strata": v(G2, "smoking")}, evaluate=True)
    x, data = pooled_with_products(study3, {}, result, THREE, [TIME, EVENT, "smoking_gp_2"], [REG, GP, G2])
    x = x.rename(columns=lambda c: c.replace("_gp_2", ""))
    fit = sm.PHReg(data[TIME].astype(float), x, status=data[EVENT].astype(float), strata=data["smoking_gp_2"],
                   ties="efron").fit()
    assert_exact(result, pd.Series(fit.params, x.columns), pd.Series(fit.bse, x.columns), x)
    assert [lv["level"] for lv in result["strata"]["levels"]] == sorted(data["smoking_gp_2"].unique())
    assert result["strata"]["station"] == G2


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------
A, B = v(REG, "chemotherapy"), v(GP, "copd")


@pytest.mark.parametrize("features, message", [
    ([A, B, inter(A, A)], "itself"),
    ([A, B, inter(A, v(REG, OUTCOME))], "is the outcome"),
    ([A, inter(A, B)], "'copd' .* is not among the features"),
    ([A, v(GP, "bmi", spline={"knots": 3}), inter(A, v(GP, "bmi"))], "has a spline"),
    ([A, B, inter(A, B), inter(B, A)], "listed twice"),
    ([A, v(GP, "smoking", type="categorical"), inter(A, v(GP, "smoking", type="categorical"), at=[1])],
     "'at' is for a numeric second factor"),
    ([A, B, inter(A, B, extra=1)], "unknown key"),
    ([A, B, {"interaction": [A]}], "exactly two"),
])
def test_bad_interactions_are_refused_before_any_station_runs(features, message):
    raw = {"model": "logistic", "outcome": v(REG, OUTCOME), "features": features}
    with pytest.raises(InputError, match=message):
        parse_train_spec(raw, [REG, GP])


def test_interaction_with_the_survival_time_is_refused():
    raw = {"model": "cox", "time": v(REG, TIME), "event": v(REG, EVENT),
           "features": [A, inter(A, v(REG, TIME))]}
    with pytest.raises(InputError, match="is the survival time"):
        parse_train_spec(raw, [REG, GP])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("inter_small"), patients=500, gp_stations=1, seed=4)


def test_small_cross_cell_is_refused_naming_the_interaction(small, tmp_path):
    """Each main effect has enough patients, events and non-events, but few patients with stage IV and the flag
    survive two years: the per-level odds ratios would reveal that count."""
    paths = with_columns(small, tmp_path, REG, stage4=lambda d: (d["stage"] == "IV").astype(int))
    gp = pd.read_csv(small[GP])
    gp["flag"] = (np.random.default_rng(3).random(len(gp)) < 0.3).astype(int)
    gp.to_csv(tmp_path / "gp.csv", index=False)
    paths = {**paths, GP: tmp_path / "gp.csv"}
    coord, _ = recording_coordinator(STEPS, paths)
    features = [v(REG, "stage4"), v(GP, "flag"), inter(v(REG, "stage4"), v(GP, "flag"))]
    with pytest.raises(PrivacyError, match="non-events .*stage4:flag"):
        train(coord, spec(small, "logistic", features))


@pytest.mark.parametrize("model", ["logistic", "cox"])
def test_an_empty_product_cell_is_refused_as_a_small_cell_naming_the_term(small, tmp_path, model):
    """surgery x no_surgery is 0 for everyone (constant): the refusal must not tell the empty cell from a small
    one (a zero count is disclosive too), so it comes from the cell check, before the identifiability check."""
    paths = with_columns(small, tmp_path, REG, no_surgery=lambda d: 1 - d["surgery"])
    coord, _ = recording_coordinator(STEPS, paths)
    features = [v(REG, "surgery"), v(REG, "no_surgery"), v(GP, "copd"), inter(v(REG, "surgery"), v(REG, "no_surgery"))]
    with pytest.raises(PrivacyError, match="fewer than 10 patients with surgery:no_surgery=1") as err:
        train(coord, spec(small, model, features))
    assert "no variation" not in str(err.value) and "surgery:no_surgery" in str(err.value)


# ---------------------------------------------------------------------------------------------
# the decision-support view, the report and the command line
# ---------------------------------------------------------------------------------------------
PROFILE = {"age_at_diagnosis": 72, "who_ps": 1, "age_group": "65-74", "copd": 1, "gp_visits": 6}


def test_decision_support_view_matches_statsmodels(study2, paths2, logistic2):
    from lancelot.training.predict import compare_treatment

    result, _ = logistic2
    x, data = pooled_with_products(study2, paths2, result, LOGISTIC, [OUTCOME], [REG, GP])
    x.insert(0, "(intercept)", 1.0)
    glm = sm.GLM(data[OUTCOME].astype(float), x, family=sm.families.Binomial()).fit(tol=1e-12)
    view = compare_treatment(result, PROFILE, "chemotherapy")
    rows = []
    for chemo in (0, 1):
        row = {c: 0.0 for c in x.columns}
        row.update({"(intercept)": 1, "age_at_diagnosis": 72, "who_ps": 1, "age_group=65-74": 1, "copd": 1,
                    "gp_visits": 6, "chemotherapy": chemo, "chemotherapy:copd": chemo, "copd:who_ps": 1,
                    "age_at_diagnosis:gp_visits": 72 * 6, "age_group=65-74:copd": 1})
        rows.append(row)
    ref = glm.get_prediction(pd.DataFrame(rows)[x.columns]).summary_frame(alpha=0.05)
    for arm, (_, expected) in zip(view["arms"], ref.iterrows()):
        assert arm["predicted_risk"] == pytest.approx(expected["mean"], abs=1e-6)
        assert arm["ci_low"] == pytest.approx(expected["mean_ci_lower"], abs=1e-6)
        assert arm["ci_high"] == pytest.approx(expected["mean_ci_upper"], abs=1e-6)
    # the treatment's odds ratio for this profile is its effect at copd = 1 (the interaction included)
    at_copd = next(r for r in result["interactions"][0]["effects"] if r["at"] == "1")
    assert view["ratios"][0]["odds_ratio"] == pytest.approx(at_copd["odds_ratio"], rel=1e-9)
    assert view["ratios"][0]["odds_ratio"] == pytest.approx(np.exp(glm.params["chemotherapy"]
                                                                   + glm.params["chemotherapy:copd"]), rel=1e-5)
    assert "research use only" in view["label"]
    with pytest.raises(LancelotError, match="not a feature"):
        compare_treatment(result, PROFILE, "surgery")


def test_report_and_command_line_show_effect_modification_and_both_arms(cox2, tmp_path, capsys):
    from PIL import Image

    from lancelot.cli import main
    from lancelot.report import write_train_report

    result, _ = cox2
    profile = {"age_at_diagnosis": 70, "stage": "III", "age_group": "65-74", "copd": 1, "gp_visits": 5,
               "smoking": "former"}
    page = write_train_report(result, tmp_path, decision={"profile": profile, "treatment": "immunotherapy"}).read_text()
    assert "Effect modification: immunotherapy:copd" in page and "Decision support" in page
    assert "immunotherapy = 1" in page and "copd = 0" in page and "research use only" in page
    for png in ("effects_0.png", "effects_2.png", "decision.png"):
        with Image.open(tmp_path / png) as im:
            assert im.size[0] > 300 and len(np.unique(np.asarray(im.convert("L")))) > 10
    model = tmp_path / "cox.json"
    model.write_text(json.dumps(result))
    args = ["predict", "--model", str(model), "--treatment", "immunotherapy"] + [f"--set={k}={val}" for k, val in profile.items()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "immunotherapy=0 | immunotherapy=1" in out and "hazard ratio for this profile, immunotherapy=1 vs 0" in out


def test_client_views_and_the_schema(logistic2):
    from lancelot.results import LogisticModel, Model
    from lancelot.validate import validate_spec

    result, _ = logistic2
    model = Model.from_json(result, task_id=1, seconds=0.0)
    assert type(model) is LogisticModel and model.to_json() is result
    table = model.effect_modification()
    assert list(table["interaction"].unique()) == [b["interaction"] for b in result["interactions"]]
    assert {"effect_of", "at", "odds_ratio", "ci_low", "ci_high", "interaction_p_value"} <= set(table.columns)
    assert len(model.predict(PROFILE, treatment="chemotherapy")["arms"]) == 2
    spec = {"linkage": {"stations": {REG: {"id_column": "record_id"}, GP: {"id_column": "patient_nr"}},
                        "fields": [{"name": "dob", "kind": "date", "columns": {REG: "birth_date", GP: "geboortedatum"}}]},
            "model": "logistic", "outcome": v(REG, OUTCOME), "features": LOGISTIC}
    assert validate_spec(spec) == []
    bad = {**spec, "features": LOGISTIC + [inter(A, B, at="x")]}
    assert any("at" in p for p in validate_spec(bad))
    assert any("strata" in p for p in validate_spec({**spec, "strata": v(REG, "stage")}))
    spline = {**spec, "features": [v(REG, "age_at_diagnosis", spline={"knots": 9})]}
    assert any("knots" in p for p in validate_spec(spline))


# ---------------------------------------------------------------------------------------------
# the product primitive on its own: extreme and negative values, a scale-down, exactness
# ---------------------------------------------------------------------------------------------
def test_products_on_shares_are_exact_for_exact_products(tmp_path):
    from lancelot.policy import NodePolicy
    from lancelot.runtime.state import JobState
    from lancelot.runtime.station import StationContext
    from lancelot.training import products
    from lancelot.training import shares as sh
    from lancelot.training.channel import STATE

    hub, partner = "h", "p"
    seeds = {hub: sh.new_seed(), partner: sh.new_seed()}
    keys = {s: sh.new_exchange_key() for s in (hub, partner)}
    ctx = {}
    for s, other in ((hub, partner), (partner, hub)):
        ctx[s] = StationContext(s, pd.DataFrame(), JobState(tmp_path / s), NodePolicy())
        ctx[s].state.put(STATE, {"seed": seeds[s].hex(), "private": keys[s][0], "peers": {other: keys[other][1]},
                                 "role": "hub" if s == hub else "partner", "partner": other})
    rng = np.random.default_rng(5)
    n = 400
    one = 1 << 16
    # column 0 at the hub, column 2 at the partner (1 and 3 are open columns); values at 16 fractional bits
    x0 = np.concatenate([[32 * one, -32 * one, 0, one, -one], rng.integers(-32 * one, 32 * one, n - 5)])
    x2 = np.concatenate([[32 * one, 32 * one, -7 * one, -one // 4, 3 * one], rng.integers(-8, 9, n - 5) * (one // 8)])
    q = 6   # two station columns each, the product and the bits its rounding drops
    for shift in (0, 5):
        layout = {"widths": [[hub, 2], [partner, 2]], "features": [0, 2, 4, 5], "open": [1, 3], "products": [[0, 2, shift]],
                  "q": q}
        x = np.zeros((n, q), dtype=np.int64)
        x[:, 0], x[:, 2] = x0, x2
        b = sh.prg(seeds[hub], "b", (n, q)) + sh.prg(seeds[partner], "b", (n, q))
        f = sh.to_ring(x) - b
        for s in (hub, partner):
            ctx[s].state.put_array("train_f", np.where(np.arange(q) >= 4, np.uint64(0), f))
        dealt = products.deal(seeds[hub], seeds[partner], layout, n, b)
        first = {hub: products.share_round(ctx[hub], {"products": {"layout": layout, "low": dealt["low"]}, "partner": partner},
                                           {partner: f[:, 2:4]}),
                 partner: products.share_round(ctx[partner], {"products": {"layout": layout, **dealt}, "partner": hub},
                                               {hub: f[:, 0:2]})}
        second = {s: products.open_round(ctx[s], {"products_relay": first[o]["products"]})
                  for s, o in ((hub, partner), (partner, hub))}
        for s, o in ((hub, partner), (partner, hub)):
            products.finish_round(ctx[s], {"products_relay": second[o]["products"]})
        views = [ctx[s].state.get_array("train_f")[:, 4] for s in (hub, partner)]
        assert np.array_equal(views[0], views[1])                        # both hold the same f of the product
        got = (views[0] + b[:, 4]).view(np.int64)
        exact = x0.astype(object) * x2.astype(object)
        divisor = 1 << (16 + shift)
        floor = np.array([v // divisor for v in exact], dtype=np.int64)
        divisible = np.array([v % divisor == 0 for v in exact])
        assert np.array_equal(got[divisible], floor[divisible])          # exact products: exact
        assert np.all((got - floor)[~divisible] >= 0) and np.all((got - floor)[~divisible] <= 1)   # else rounded
        assert divisible[:5].all() and (~divisible).any()      # the extremes are exact; some products are rounded
        # the next column holds exactly what the rounding dropped: together they are the product
        lows = [ctx[s].state.get_array("train_f")[:, 5] for s in (hub, partner)]
        assert np.array_equal(lows[0], lows[1])
        dropped = (lows[0] + b[:, 5]).view(np.int64).astype(object)
        assert all(hi * divisor + lo == v for hi, lo, v in zip(got.astype(object), dropped, exact))
        assert np.all(np.abs(dropped.astype(float)) < divisor)

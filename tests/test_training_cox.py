"""Training: Cox proportional hazards on the linked cohort equals a pooled fit on the same records
(lifelines for Efron ties, statsmodels PHReg for Breslow), with concordance and baseline checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from helpers import (
    joined,
    local_study,
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
from lancelot.runtime.errors import LancelotError
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train
from lancelot.training.ring import R128, R256, log_uniform_blinds

REG, GP, G2 = "registry", "gp_1", "gp_2"
TIME, EVENT = "survival_days", "vital_status"
STEPS = {**LINK_STEPS, **TRAIN_STEPS}


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


FEATURES = [v(REG, "age_at_diagnosis"), v(REG, "stage", type="categorical", reference="I"), v(REG, "who_ps"),
            v(GP, "copd"), v(GP, "bmi"), v(GP, "smoking", type="categorical", reference="never")]


def concordance_rounds(cost: dict) -> int:
    """0 when the concordance came with the last iteration's weights, else its own round."""
    return cost["rounds_per_phase"].get("training: concordance", 0)


def spec_for(study, features, **extra):
    return {"linkage": json.loads(study["link_spec"].read_text()), "model": "cox", "time": v(REG, TIME),
            "event": v(REG, EVENT), "features": features, **extra}


def pooled(study, result, features, stations=(REG, GP)):
    """Design matrix, times and events of the linked complete cases, in plain text."""
    x, data = pooled_design(joined(study, result["links"], list(stations)), features, [TIME, EVENT])
    return x, data[TIME].astype(float), data[EVENT].astype(float)


def lifelines_fit(x, time, event):
    frame = x.assign(T=time, E=event)
    return CoxPHFitter().fit(frame, "T", "E", fit_options={"precision": 1e-10})


def assert_coefficients(result, params, bse, x, atol=1e-5):
    table = pd.DataFrame(result["coefficients"]).set_index("feature")
    assert list(table.index) == list(x.columns)
    np.testing.assert_allclose(table["estimate"], params[x.columns], atol=atol, rtol=0)
    np.testing.assert_allclose(table["std_error"], bse[x.columns], atol=atol, rtol=1e-5)
    np.testing.assert_allclose(table["hazard_ratio"], np.exp(params[x.columns]), rtol=1e-4)
    return table


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("cox"), patients=900, gp_stations=1, seed=5)


@pytest.fixture(scope="module")
def result(study):
    """Efron, through the real vantage6 entry points (wrap_algorithm in fresh processes)."""
    return local_study(station_paths(study)).train(spec_for(study, FEATURES), evaluate=True).to_json()


@pytest.fixture(scope="module")
def reference(study, result):
    x, time, event = pooled(study, result, FEATURES)
    return x, time, event, lifelines_fit(x, time, event)


def test_efron_matches_lifelines_on_the_linked_records(result, reference):
    x, time, event, cph = reference
    table = assert_coefficients(result, cph.params_, cph.standard_errors_, x)
    np.testing.assert_allclose(table["p_value"], cph.summary.loc[x.columns, "p"], atol=1e-5)
    np.testing.assert_allclose(table["ci_low"], cph.confidence_intervals_.loc[x.columns].iloc[:, 0], atol=1e-4)
    assert result["n_used"] == rounded(len(x)) and result["events"] == rounded(int(event.sum()))
    assert result["protections"]["rounding_base"] == 5
    # the log partial likelihood at the last opened iterate (features in 16-bit fixed point)
    assert result["convergence"]["history"][-1]["log_partial_likelihood"] == pytest.approx(cph.log_likelihood_, abs=1e-4)
    assert {r["feature"]: r["station"] for r in result["coefficients"]}["copd"] == GP


def test_breslow_matches_statsmodels_phreg(study):
    coord, _ = recording_coordinator(STEPS, station_paths(study), {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, spec_for(study, FEATURES, ties="breslow"), evaluate=True)
    x, time, event = pooled(study, result, FEATURES)
    fit = sm.PHReg(time, x, status=event, ties="breslow").fit()
    assert_coefficients(result, pd.Series(fit.params, x.columns), pd.Series(fit.bse, x.columns), x)
    assert result["convergence"]["history"][-1]["log_partial_likelihood"] == pytest.approx(fit.llf, abs=1e-4)
    assert result["ties"] == "breslow"
    # Breslow needs one round less per iteration than Efron's tie terms
    assert coord.cost.rounds == 3 + 4 * result["convergence"]["iterations"] + concordance_rounds(coord.cost.as_dict())


def test_few_rounds_and_convergence_reported(result):
    conv = result["convergence"]
    assert conv["converged"] and 3 <= conv["iterations"] <= 8
    lls = [h["log_partial_likelihood"] for h in conv["history"]]
    assert lls[0] is None   # at beta = 0 a function of the risk-set sizes alone
    assert all(b >= a - 1e-6 for a, b in zip(lls[1:], lls[2:]))
    assert result["cost"]["rounds"] == 3 + 5 * conv["iterations"] + concordance_rounds(result["cost"]) < 40
    # the concordance came with the last iteration, as Newton's step sizes predicted
    assert concordance_rounds(result["cost"]) == 0


def test_concordance_brackets_lifelines(result, reference):
    x, time, event, cph = reference
    c = result["quality"]["concordance"]
    assert c["lower"] <= cph.concordance_index_ <= c["upper"]
    assert c["estimate"] == pytest.approx(cph.concordance_index_, abs=5e-3)
    assert c["upper"] - c["lower"] < 0.05
    assert c["comparable_pairs"] % 5 == 0


def test_baseline_matches_the_pooled_breslow_estimator(result, reference):
    """At-risk counts, survival at the mean profile and the variance terms against plain numpy on the pooled
    records (at the coefficients the baseline belongs to: the last opened iterate)."""
    x, time, event, cph = reference
    base = result["baseline"]
    names = list(x.columns)
    beta = np.array(base["coefficients_of_last_iterate"])
    ref = np.array([base["reference_profile"][n] for n in names])
    xc = x.to_numpy() - ref
    risk = np.exp(xc @ beta)
    event_times = np.unique(time[event == 1])
    at_risk = np.array([risk[time >= s].sum() for s in event_times])
    deaths = np.array([((time == s) & (event == 1)).sum() for s in event_times])
    xbar = np.array([(risk[time >= s, None] * xc[time >= s]).sum(0) for s in event_times]) / at_risk[:, None]
    released = base["times"]
    kept, withheld = spaced_reference(time, event, [91.0, 182.0, 365.0, 730.0, 1095.0, 1826.0], result["min_cell_count"])
    assert [r["time"] for r in released] == kept and base["withheld"] == withheld and kept
    baseline_survival = cph.baseline_survival_.iloc[:, 0]
    for row in released:
        upto = event_times <= row["time"]
        assert row["at_risk"] == rounded(int((time >= row["time"]).sum()))
        assert row["cumulative_hazard_at_reference"] == pytest.approx((deaths / at_risk)[upto].sum(), rel=1e-6)
        assert row["v0"] == pytest.approx((deaths / at_risk ** 2)[upto].sum(), rel=1e-5)
        np.testing.assert_allclose(row["q"], ((deaths / at_risk)[:, None] * xbar)[upto].sum(0), rtol=1e-5, atol=1e-6)  # features in 16-bit fixed point
        # lifelines' baseline is at the mean profile, at its own (converged) coefficients
        expected = baseline_survival[baseline_survival.index <= row["time"]].iloc[-1]
        assert row["survival_at_mean"] == pytest.approx(expected, abs=2e-3)
        assert row["ci_low"] < row["survival_at_mean"] < row["ci_high"]


def test_predicted_survival_for_a_profile(result, reference):
    from lancelot.training.predict import predict

    x, time, event, cph = reference
    profile = {"age_at_diagnosis": 72, "stage": "IV", "who_ps": 1, "copd": 1, "bmi": 23.5, "smoking": "former"}
    row = pd.DataFrame([{c: 0.0 for c in x.columns}])
    row[["age_at_diagnosis", "stage=IV", "who_ps", "copd", "bmi", "smoking=former"]] = [72, 1, 1, 1, 23.5, 1]
    got = predict(result, profile)
    curve = cph.predict_survival_function(row).iloc[:, 0]
    for point in got["survival"]:
        if point["survival"] is None:
            continue
        expected = curve[curve.index <= point["time"]].iloc[-1]
        assert point["survival"] == pytest.approx(expected, abs=3e-3)
        assert point["ci_low"] < point["survival"] < point["ci_high"]
    assert "research use" in got["label"]
    with pytest.raises(LancelotError, match="lacks bmi"):
        predict(result, {k: val for k, val in profile.items() if k != "bmi"})


def test_registry_with_two_gp_stations(tmp_path):
    study = make_study(tmp_path, patients=700, gp_stations=2, seed=11)
    features = [v(REG, "age_at_diagnosis"), v(REG, "surgery"), v(GP, "copd"), v(G2, "diabetes"), v(G2, "gp_visits")]
    coord, _ = recording_coordinator(STEPS, station_paths(study), {s: {"allow_evaluate": True} for s in (REG, GP, G2)})
    result = train(coord, spec_for(study, features), evaluate=True)
    x, time, event = pooled(study, result, features, (REG, GP, G2))
    cph = lifelines_fit(x, time, event)
    assert_coefficients(result, cph.params_, cph.standard_errors_, x)
    assert {row["station"] for row in result["coefficients"]} == {REG, GP, G2}


def test_no_station_learns_which_of_its_rows_are_linked(study):
    """The hub's row order is the domain: the hub gets every other station's rows through a random
    injection into a table padded with dummy rows; the partner never gets positions at all."""
    coord, transport = recording_coordinator(STEPS, station_paths(study))
    train(coord, spec_for(study, FEATURES[:4]))
    n_hub, n_gp = len(pd.read_csv(study[REG])), len(pd.read_csv(study[GP]))
    share = [(s, json.loads(p)) for s, p in transport.sent if '"parts"' in p]
    assert {s for s, _ in share} == {REG, GP}
    for station, payload in share:
        assert station not in payload["parts"]
        for part in payload["parts"].values():
            if station == GP:
                assert "idx" not in part          # the hub's rows in their own order: nothing to learn
            else:
                idx = np.asarray(part["idx"])
                assert len(idx) == n_hub == len(np.unique(idx)) and idx.max() < n_gp + n_hub
    for station, text in transport.received:  # no column names or values travel in the clear
        assert TIME not in text and (EVENT not in text or station == REG)


@pytest.mark.parametrize("change, message", [
    ({"ties": "exact"}, "ties"),
    ({"outcome": v(REG, "death_within_2y")}, "not 'outcome'"),
    ({"time": v(GP, "gp_visits")}, "same station"),
    ({"survival_times": [0, 365]}, "survival_times"),
    ({"concordance_bins": 2}, "concordance_bins"),
    ({"features": [v(REG, "age_at_diagnosis"), v(REG, TIME)]}, "survival time is also listed"),
])
def test_bad_spec_is_refused(study, change, message):
    coord, _ = recording_coordinator(STEPS, station_paths(study))
    with pytest.raises(LancelotError, match=message):
        train(coord, {**spec_for(study, FEATURES), **change})


@pytest.mark.parametrize("columns, spec_change, message", [
    ({"tn": lambda d: d[TIME] - d[TIME].median()}, {"time": v(REG, "tn")}, "must not be negative"),
    ({"tt": lambda d: d[TIME].astype(str) + " days"}, {"time": v(REG, "tt")}, "must be numeric"),
    ({"tc": lambda d: (d[TIME] / 7).round(1).astype(str).str.replace(".", ",")}, {"time": v(REG, "tc")},
     "must be numeric .*decimal commas"),
    ({"none": lambda d: 0}, {"event": v(REG, "none")}, "no events"),
    ({"ev2": lambda d: d[EVENT] * 2}, {"event": v(REG, "ev2")}, "binary"),
    ({"c": lambda d: 3.0}, {"features": [v(REG, "c"), v(GP, "copd")]}, "constant"),
    ({"age2": lambda d: d["age_at_diagnosis"] * 2 + 1}, {"features": [v(REG, "age_at_diagnosis"), v(REG, "age2")]},
     "collinear"),
    # a feature that orders the deaths perfectly: the partial likelihood has no finite maximum
    ({"order": lambda d: -d[TIME].rank()}, {"features": [v(REG, "order"), v(GP, "copd")]}, "no finite maximum"),
])
def test_bad_data_is_refused_clearly(study, tmp_path, columns, spec_change, message):
    paths = with_columns(study, tmp_path, REG, **columns)
    coord, _ = recording_coordinator(STEPS, paths)
    with pytest.raises(LancelotError, match=message):
        train(coord, {**spec_for(study, FEATURES[:4]), **spec_change})


def test_deaths_at_time_zero_are_kept_as_lifelines_keeps_them(study, tmp_path):
    """A death on the day of diagnosis (time 0) is common in a registry: it is a death at the first event time."""
    zero = lambda d: d[TIME].where(d[TIME] > d[TIME].quantile(0.02), 0)   # noqa: E731
    paths = with_columns(study, tmp_path, REG, t0=zero)
    coord, _ = recording_coordinator(STEPS, paths, {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, {**spec_for(study, FEATURES[:4]), "time": v(REG, "t0")}, evaluate=True)
    x, data = pooled_design(joined(paths, result["links"], [REG, GP]), FEATURES[:4], ["t0", EVENT])
    assert ((data["t0"] == 0) & (data[EVENT] == 1)).sum() >= 5
    cph = lifelines_fit(x, data["t0"].astype(float), data[EVENT].astype(float))
    assert_coefficients(result, cph.params_, cph.standard_errors_, x)


def test_missing_time_column_names_it(study):
    coord, _ = recording_coordinator(STEPS, station_paths(study))
    with pytest.raises(LancelotError, match="missing column.*'days'"):
        train(coord, {**spec_for(study, FEATURES[:2]), "time": v(REG, "days")})


def test_too_few_events_per_coefficient(tmp_path):
    small = make_study(tmp_path, patients=60, gp_stations=1, seed=2)
    coord, _ = recording_coordinator(STEPS, station_paths(small))
    with pytest.raises(LancelotError, match="too few"):
        train(coord, spec_for(small, FEATURES))


# ---------------------------------------------------------------------------------------------
# the wide share rings
# ---------------------------------------------------------------------------------------------
def test_lift_and_truncate_shares_of_small_values():
    seed = bytes(range(32))
    values = np.array([5, -7, 2 ** 60, -(2 ** 70), 0], dtype=object)
    first = R128.prg(seed, "s", 5)
    second = R128.sub(values, first)
    assert list(R128.signed(R128.add(first, second))) == list(values)
    lifted = (R256.lift(first, R128), R256.lift(second, R128))
    assert list(R256.signed(R256.add(*lifted))) == list(values)
    cut = R256.add(R256.truncate(lifted[0], 4, True), R256.truncate(lifted[1], 4, False))
    assert all(abs(int(c) - int(x) // 16) <= 1 for c, x in zip(R256.signed(cut), values))
    assert np.array_equal(R256.unpack(R256.pack(lifted[0])), lifted[0])


@pytest.mark.parametrize("ring", [R128, R256], ids=["128", "256"])
def test_wide_ring_products_are_exact(ring):
    """ring.dot's float64 limb path (wide products) against Python integers, element by element, on uniform
    elements (every limb full), unreduced and negative inputs, more rows than one float64 chunk holds, and the
    object path (narrow products) on the same data."""
    seed = bytes(range(32))
    a = ring.prg(seed, "a", (5, 70_000))
    b = ring.prg(seed, "b", (70_000, 6))
    b[:3, 0] = [-1, ring.modulus + 5, -(2 ** 200)]
    got = ring.dot(a, b)
    for i in range(5):
        for j in range(6):
            assert got[i, j] == sum(int(x) * int(y) for x, y in zip(a[i], b[:, j])) % ring.modulus
    assert np.array_equal(ring.dot(a[:, :300], b[:300, :2]), ring.element(a[:, :300].dot(b[:300, :2])))
    assert np.array_equal(ring.unpack(ring.pack(b)), ring.element(b))


def test_labels_under_one_seed_never_coincide():
    """Masks are derived from (seed, label): two values masked under one seed with one label would share a
    keystream (the partner, holding both differences, learns the difference of two secrets). Every name list
    that shares a seed must be free of repeats, and the per-iteration labels must be injective in (name, t)."""
    import re
    from pathlib import Path

    import lancelot.training as training
    from lancelot.training import labels

    for namespace in (labels.Seeded, labels.Pair, labels.LogisticDealt, labels.CoxDealt, labels.CoxOpened,
                      labels.Validation):
        names = labels.names(namespace)
        assert len(names) == len(set(names)) > 2, namespace
    # under the pair key: the pair masks and the openings' masks; under the hub's seed: the dealt shares
    pair_labels = {labels.at(n, t) for n in labels.names(labels.Pair) for t in range(12)}
    opening_labels = {labels.opening(n, t) for n in labels.names(labels.CoxOpened) for t in range(12)}
    assert len(pair_labels) == 12 * len(labels.names(labels.Pair))
    assert not pair_labels & opening_labels
    dealt = {labels.at(n, t) for n in labels.names(labels.CoxDealt) for t in range(12)}
    assert not dealt & set(labels.names(labels.Seeded))
    # the validation deals under the hub's seed too, after the logistic iterations' dealt shares
    logistic = {labels.at(n, t) for n in labels.names(labels.LogisticDealt) for t in range(12)}
    validation = {labels.at(n, t) for n in labels.names(labels.Validation) for t in range(12)}
    assert not validation & (logistic | set(labels.names(labels.Seeded)))
    # Cox cross-validation: its dealt names and pair labels at the fit's last iteration, apart from the fit's own
    # (hub's seed: CoxDealt, and the Beaver triples' Validation labels; pair key: Pair and every opening's mask)
    names = labels.names(labels.CoxValidation)
    assert len(names) == len(set(names))
    cross = {labels.at(n, t) for n in names for t in range(12)}
    slope_orders = {labels.at(f"{labels.CoxValidation.SLOPE_ORDER}:{j}", t) for j in range(11) for t in range(12)}
    openings = {labels.opening(n, t) for n in labels.names(labels.CoxOpened) + names for t in range(12)}
    assert not (cross | slope_orders) & (dealt | validation | pair_labels | openings)
    assert len(openings) == 12 * len(labels.names(labels.CoxOpened) + names)
    # no protocol module spells a per-iteration label by hand: they all go through labels.at / labels.opening
    for path in Path(training.__file__).parent.glob("*.py"):
        assert not re.findall(r'f"[A-Za-z0-9:]+\{t\}"', path.read_text()), path.name


def test_blinds_spread_over_many_orders_of_magnitude():
    blinds = log_uniform_blinds(bytes(32), "rho", 4800)
    logs = np.array([int(b).bit_length() for b in blinds])
    assert logs.min() == 17 and logs.max() == 64       # at least 16 random bits: never a blind of 1
    counts = np.bincount(logs, minlength=65)[17:]
    assert counts.min() > 50 and counts.max() < 160    # about 4800 / 48 = 100 per power of two


def test_report_and_command_line_prediction(result, tmp_path, capsys):
    from PIL import Image

    from lancelot.cli import main
    from lancelot.report import write_train_report

    page = write_train_report(result, tmp_path).read_text()
    for row in result["coefficients"]:
        assert row["feature"] in page
    assert "research use only" in page and "Concordance" in page
    for png in ("forest.png", "survival.png"):
        with Image.open(tmp_path / png) as im:  # a real, non-blank image
            assert im.size[0] > 300 and len(np.unique(np.asarray(im.convert("L")))) > 10
    model = tmp_path / "cox.json"
    model.write_text(json.dumps(result))
    args = ["predict", "--model", str(model)] + [f"--set={k}={val}" for k, val in
                                                 {"age_at_diagnosis": 60, "stage": "I", "who_ps": 0, "copd": 0,
                                                  "bmi": 26, "smoking": "never"}.items()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "predicted survival" in out and "t = 365: 0." in out


def test_concordance_gets_its_own_round_when_the_last_iteration_was_not_foreseen(study):
    """A fit that stops after its first step (strong penalty, loose tolerance): the last opened iterate is beta = 0, whose
    risk scores are all equal, so every comparable pair is a tie (C = 0.5)."""
    coord, _ = recording_coordinator(STEPS, station_paths(study))
    result = train(coord, spec_for(study, FEATURES[:3], penalty=1e4, tolerance=0.5))
    assert result["convergence"]["iterations"] == 1 and concordance_rounds(coord.cost.as_dict()) == 1
    c = result["quality"]["concordance"]
    assert c["estimate"] == 0.5 and c["lower"] == 0 and c["upper"] == 1 and c["comparable_pairs"] > 0


def test_blinded_risk_set_sums_are_no_exact_multiple_of_a_risk_score():
    """A late risk set of one record opened as rho 2^A e_i would be divisible by 2^A e_i, which C knows for every
    frame row (found in review); the stations' sub-unit noise breaks every such test, and stays below one unit."""
    from lancelot.training.cox_steps import A_BITS, phi_noise

    noise = phi_noise(bytes(32), 3, 2000)
    assert min(noise) >= 1 and max(noise) < 1 << A_BITS
    rho = log_uniform_blinds(bytes(32), "rho", 2000)
    e = np.arange(1, 2001, dtype=object) * 977 + (1 << 20)
    blinded = rho * ((e << A_BITS) + noise)
    assert not any(int(v) % (int(r) << A_BITS) == 0 for v, r in zip(blinded, e))
    assert all(int(v) % (int(r) << A_BITS) == 0 for v, r in zip(rho * (e << A_BITS), e))   # as it was without

"""Internal validation (bootstrap optimism of the AUC and calibration slope) on shares.

The protocol's pieces are checked exactly against the same arithmetic in the clear (the resample
Hessians, the counts per bin, the AUC's pair counts against scikit-learn); the whole procedure on the
in-process network against the bootstrap run in the clear on the pooled linked records.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import statsmodels.api as sm
from helpers import (
    clear_bootstrap,
    joined,
    make_study,
    pooled_design,
    pooled_with_products,
    recording_coordinator,
    station_paths,
    with_columns,
)
from sklearn.metrics import roc_auc_score

from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.runtime.coordinator import StepCall
from lancelot.runtime.errors import InputError, LancelotError
from lancelot.training import logistic_fit, validation
from lancelot.training import shares as sh
from lancelot.training.labels import Pair, Validation, at
from lancelot.training.protocol import STEPS as TRAIN_STEPS
from lancelot.training.protocol import train

REG, GP, G2 = "registry", "gp_1", "gp_2"
SEED_H, SEED_P, PAIR = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))


def v(station, column, **extra):
    return {"station": station, "column": column, **extra}


FEATURES = [v(REG, "age_at_diagnosis"), v(REG, "stage", type="categorical"), v(REG, "who_ps"),
            v(GP, "copd"), v(GP, "bmi"), v(GP, "smoking", type="categorical", reference="never")]


def signed(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64).view(np.int64).astype(object)


def frame(n: int, p: int, t: int = 3) -> tuple[dict, np.ndarray, np.ndarray]:
    """A last-iteration frame: C's opened mask b', the stations' F = X - b' and the weights and residuals."""
    rng = np.random.default_rng(4)   # test data only
    x = sh.encode(rng.normal(size=(n, p)), 16)
    b = sh.prg(SEED_P, "b'", (n, p))
    last = {"t": t, "b_perm": b, "w": rng.uniform(0, 0.25, n), "r": rng.uniform(-1, 1, n), "beta": np.zeros(p),
            "z": rng.normal(size=n), "y": (rng.random(n) < 0.4).astype(float), "complete": rng.random(n) < 0.9}
    return last, x, x - b


def test_resample_hessians_and_gradients_on_shares_are_the_weighted_sums_in_the_clear():
    n, p, reps = 300, 4, 12
    last, x, f = frame(n, p)
    boot = validation.Bootstrap(last, SEED_H, np.eye(p), np.full(p, 8.0), reps, 32, (24, 30), 0.0)
    dealt_p = {k: sh.unpack(val) for k, val in boot.resample_material().items()}
    shapes = {k: val.shape for k, val in dealt_p.items()}
    dealt_h = {k: sh.prg(SEED_H, at(k, 3), shapes[k]) for k in shapes}
    weights = validation.resample_weights(PAIR, 3, reps, n)
    total = (validation.station_resample_sums(f, dealt_h, weights)
             + validation.station_resample_sums(f, dealt_p, weights))
    w = signed(sh.encode(last["w"], boot.fw))
    r = signed(sh.encode(last["r"], boot.fr))
    xs = signed(x)
    i, j = np.triu_indices(p)
    for b in range(reps):
        m = weights[b].astype(object)
        hess = [(m * w * xs[:, a] * xs[:, c]).sum() for a, c in zip(i, j)]
        grad = [(m * r * xs[:, a]).sum() for a in range(p)]
        assert list(signed(total[b])) == hess + grad   # exact: no wrap-around below 2^63
    betas, ok = boot.one_step(total)
    assert ok.all()
    xf = sh.decode(x, 16)
    for b in (0, reps - 1):
        m = weights[b]
        hess = xf.T @ (xf * (m * last["w"])[:, None])
        np.testing.assert_allclose(betas[b], np.linalg.solve(hess, xf.T @ (m * last["r"])), rtol=1e-5, atol=1e-6)


def test_resample_weights_are_poisson_and_new_with_every_key():
    weights = validation.resample_weights(PAIR, 0, 50, 4000)
    assert weights.min() == 0 and weights.max() <= validation.WEIGHT_CAP
    assert weights.mean() == pytest.approx(1.0, abs=0.01) and weights.var() == pytest.approx(1.0, abs=0.02)
    assert np.mean(weights == 0) == pytest.approx(np.exp(-1), abs=0.01)
    assert not np.array_equal(weights, validation.resample_weights(SEED_H, 0, 50, 4000))
    assert not np.array_equal(weights, validation.resample_weights(PAIR, 1, 50, 4000))


def share_pipeline(boot: validation.Bootstrap, x: np.ndarray, weights: np.ndarray, bins: int):
    """Both stations' side of rounds 2-4 on shares of the bin-scaled scores x (B, n); returns the opened
    counts (B, 2, 2, K), the AUC numerators and the stations' count shares."""
    t, reps, n = boot.t, x.shape[0], x.shape[1]
    x_h = sh.prg(PAIR, "x", x.shape)
    r_h = sh.prg(SEED_H, at(Validation.BIN_MASK, t), x.shape)
    opened = (x_h + r_h) + (x - x_h + boot.r - r_h)
    material = boot.table_material()
    tables_h = {k: [sh.prg(SEED_H, at(f"{k}{b}", t), (n, bins)) for b in range(reps)] for k in material}
    tables_p = {k: [sh.unpack(s) for s in v] for k, v in material.items()}
    counts_h = validation.station_bin_counts(opened, tables_h, weights, bins)
    counts_p = validation.station_bin_counts(opened, tables_p, weights, bins)
    de = (validation.beaver_open(*validation.auc_factors(counts_h), SEED_H, t)
          + validation.beaver_open(*validation.auc_factors(counts_p), SEED_P, t))
    c_p = sh.unpack(validation.deal_triples(SEED_H, SEED_P, t, de.shape[1:]))
    c_h = sh.prg(SEED_H, at(Validation.TRIPLE_C, t), de.shape[1:])
    numerators = (validation.beaver_finish(de, SEED_H, t, c_h, True)
                  + validation.beaver_finish(de, SEED_P, t, c_p, False)).view(np.int64)
    return counts_h + counts_p, numerators, (counts_h, counts_p)


def test_counts_per_bin_and_auc_pair_counts_on_shares_equal_the_clear_ones():
    n, reps, bins = 500, 6, 32
    last, _, _ = frame(n, 2, t=0)
    rng = np.random.default_rng(7)
    boot = validation.Bootstrap(last, SEED_H, np.eye(2), np.ones(2), reps, bins, (24, 30), 0.0)
    boot.r = sh.prg(SEED_P, "r", (reps, n))   # uniform modulo 2^64: x + r may wrap
    boot.lo, boot.width = -3.0, 0.25
    boot.clip = (-np.inf, np.inf)
    true_bins = rng.integers(1, bins - 1, (reps, n))
    x = true_bins.astype(np.uint64) << np.uint64(validation.BIN_BITS)   # on an edge: no rounding
    weights = validation.resample_weights(PAIR, 0, reps, n)
    counts, numerators, shares = share_pipeline(boot, x, weights, bins)
    y, keep = last["y"].astype(int), last["complete"]
    for b in range(reps):
        for d, wt in enumerate((weights[b], np.ones(n, dtype=np.int64))):
            for c, outcome in enumerate((1, 0)):
                sel = keep & (y == outcome)
                expected = np.bincount(true_bins[b][sel], weights=wt[sel], minlength=bins)
                assert list(counts[b, d, c].view(np.int64)) == list(expected.astype(int))
            # the AUC with ties counted half, as scikit-learn counts them
            auc = numerators[b, d] / (2.0 * counts[b, d, 0].sum() * counts[b, d, 1].sum())
            assert auc == pytest.approx(roc_auc_score(y[keep], true_bins[b][keep], sample_weight=wt[keep]), abs=1e-12)
    # the calibration statistics: the same sums in floating point
    coef = boot.statistic_weights()
    stats = validation.decode_statistics(sum(validation.calibration_statistics(s, coef) for s in shares))
    score = boot.lo + np.arange(bins) * boot.width
    p = 1 / (1 + np.exp(-score))
    vv = p * (1 - p)
    for d in range(2):
        events, total = counts[0, d, 0].view(np.int64), counts[0, d].view(np.int64).sum(axis=0)
        expected = [np.sum(events - total * p), np.sum((events - total * p) * score)]
        expected += [np.sum(total * c * score ** i) for j, c in ((2, vv), (3, vv * (1 - 2 * p)), (4, vv * (1 - 6 * vv)))
                     for i in range(j + 1)]
        np.testing.assert_allclose(stats[0, d], expected, atol=total.sum() * 300 * 2.0 ** -validation.STAT_BITS)


def test_the_calibration_slope_from_the_shared_moments_equals_a_recalibration_fit():
    """The fourth-order Taylor expansion at (0, 1) against statsmodels' logistic fit of y on the bin scores."""
    n, bins = 6000, 64
    rng = np.random.default_rng(9)
    last = {"t": 0, "z": np.zeros(n), "y": np.zeros(n), "complete": np.ones(n, dtype=bool)}
    boot = validation.Bootstrap(last, SEED_H, np.eye(1), np.ones(1), 1, bins, (24, 30), 0.0)
    boot.lo, boot.width = -6.0, 0.2
    boot.clip = (-np.inf, np.inf)
    k = rng.integers(5, bins - 5, n)
    score = boot.lo + k * boot.width
    for intercept, slope in ((0.0, 1.0), (0.15, 0.85), (-0.2, 1.2)):
        y = (rng.random(n) < 1 / (1 + np.exp(-(intercept + slope * score)))).astype(int)
        counts = np.zeros((1, 2, 2, bins), dtype=np.uint64)
        counts[0, :, 0] = np.bincount(k[y == 1], minlength=bins)
        counts[0, :, 1] = np.bincount(k[y == 0], minlength=bins)
        stats = validation.decode_statistics(validation.calibration_statistics(counts, boot.statistic_weights()))
        fit = sm.GLM(y, sm.add_constant(score), family=sm.families.Binomial()).fit()
        assert validation.recalibration_slopes(stats)[0, 1] == pytest.approx(fit.params[1], abs=2e-3)


def test_the_stations_noise_on_the_calibration_statistics_is_one_records_largest_contribution():
    last = {"t": 0, "z": np.linspace(-4, 3, 100), "y": np.zeros(100), "complete": np.ones(100, dtype=bool)}
    boot = validation.Bootstrap(last, SEED_H, np.eye(1), np.ones(1), 1, 32, (24, 30), 0.0, k=5)
    boot.lo, boot.width = -6.0, 0.4
    weights = boot.statistic_weights()
    noise = sh.decode(validation.statistic_noise(PAIR, 3, weights, (4000, 2, validation.STATISTICS)),
                      validation.STAT_BITS)
    largest = np.abs(weights.view(np.int64) / 2.0 ** validation.STAT_BITS).max(axis=(0, 2))
    assert largest[1] == pytest.approx(max(abs(last["z"][4]), abs(last["z"][-5])), rel=1e-6)  # clipped scores
    np.testing.assert_allclose(noise.std(axis=(0, 1)), largest * validation.NOISE_RECORDS, rtol=0.05)
    assert abs(noise.mean()) < 0.05 * largest.max()
    assert not np.array_equal(noise, sh.decode(validation.statistic_noise(PAIR, 4, weights, noise.shape),
                                               validation.STAT_BITS))


def test_a_score_between_two_edges_lands_in_either_bin_with_the_right_odds():
    """Stochastic rounding: a quarter of a bin above edge 5, it lands in bin 6 one time in four."""
    reps, bins = 4000, 16
    last = {"t": 0, "z": np.zeros(1), "y": np.ones(1), "complete": np.ones(1, dtype=bool)}
    boot = validation.Bootstrap(last, SEED_H, np.eye(1), np.ones(1), reps, bins, (24, 30), 0.0)
    boot.r = sh.prg(SEED_P, "r", (reps, 1))
    x = np.full((reps, 1), (5 << validation.BIN_BITS) + (1 << (validation.BIN_BITS - 2)), dtype=np.uint64)
    counts, _, _ = share_pipeline(boot, x, np.ones((reps, 1), dtype=np.int64), bins)
    landed = counts[:, 1, 0].view(np.int64)
    assert set(np.flatnonzero(landed.sum(axis=0))) == {5, 6}
    assert landed[:, 6].mean() == pytest.approx(0.25, abs=4 * np.sqrt(0.25 * 0.75 / reps))


@pytest.mark.parametrize("failed, withheld", [(1, False), (2, True)])
def test_a_failed_recalibration_leaves_out_the_slope_only_and_too_many_withhold_it(failed, withheld):
    """30 resamples, one not refitted; of the other 29, ``failed`` recalibrations fail: the AUC's optimism is the
    mean over all 29, the slope's over those solved, withheld when more than 5% failed (dropping more would
    bias it)."""
    rng = np.random.default_rng(9)   # test data only
    totals = np.tile([[40.0, 60.0]], (30, 2, 1))
    numerators = rng.uniform(0.6, 0.8, (30, 2)) * 2 * 40 * 60
    slope = rng.uniform(0.8, 1.2, (30, 2))
    ok = np.ones(30, dtype=bool)
    ok[0] = False
    slope[1:1 + failed, 1] = np.nan
    got = validation.release(validation.summarise(numerators, totals, slope, ok, 0.75, 1.0), 64)
    auc = numerators / (2 * 40 * 60)
    assert got["resamples_used"] == 29
    assert got["resamples_left_out"] == {"refit_failed": 1, "recalibration_failed": failed}
    assert got["auc"]["optimism"] == pytest.approx(np.mean(auc[1:, 0] - auc[1:, 1]), rel=1e-3)
    if withheld:
        assert got["calibration_slope"] is None and "2 of 29 resample models" in got["withheld"]["calibration_slope"]
    else:
        solved = slope[1 + failed:]
        assert "withheld" not in got
        assert got["calibration_slope"]["optimism"] == pytest.approx(np.mean(solved[:, 0] - solved[:, 1]), rel=1e-3)


# ---------------------------------------------------------------------------------------------
# the whole procedure on the in-process network
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("validation"), patients=900, gp_stations=1, seed=5)


def spec_for(study, **validation_options):
    return {"linkage": json.loads(study["link_spec"].read_text()), "model": "logistic",
            "outcome": v(REG, "death_within_2y"), "features": FEATURES, "validation": validation_options}


@pytest.fixture(scope="module")
def validated(study):
    """The fit with 200 resamples; the test also keeps what it needs to redo the same resamples in the clear:
    the linkage (cohort order, record ids) and the hub's resample weights with the key and iteration."""
    seen = {}
    start, weights, scores = logistic_fit.start_training, validation.resample_weights, validation.Bootstrap.score_material

    def keep_start(*args, **kwargs):
        seen["start"] = start(*args, **kwargs)
        return seen["start"]

    def keep_weights(pair, t, reps, n):
        seen["weights"] = (pair, t, weights(pair, t, reps, n))
        return seen["weights"][2]

    def keep_grid(self, betas):
        out = scores(self, betas)
        seen["grid"] = (self.lo, self.width)
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation, "NOISE_RECORDS", 0.0)   # the calibration statistics exact: checks the algebra
        patch.setattr(logistic_fit, "start_training", keep_start)
        patch.setattr(validation.Bootstrap, "score_material", keep_grid)
        patch.setattr(validation, "resample_weights", keep_weights)
        coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study),
                                         {s: {"allow_evaluate": True} for s in (REG, GP)})
        coord.max_input_mb = 4096.0     # no input goes in parts: count the protocol's own rounds
        result = train(coord, spec_for(study, repetitions=200), evaluate=True)
    return {**result, "cost": coord.cost.as_dict()}, coord.cost.as_dict()["rounds_per_phase"], seen


def resample_weights_by_record(seen: dict) -> dict[str, np.ndarray]:
    """Each linked hub record's B weights: the weights are drawn in the last iteration's order, whose row j
    is cohort row pi_t[j] (the permutation H and P derive from their key)."""
    pair, t, weights = seen["weights"]
    linkage, hub = seen["start"].linkage, seen["start"].hub
    perm = sh.permutation(pair, at(Pair.PERMUTATION, t), weights.shape[1])
    ids = np.asarray(linkage.record_ids[hub], dtype=str)[linkage.cohort()[hub]]
    return {ids[k]: weights[:, j] for j, k in enumerate(perm)}


def test_bootstrap_optimism_equals_the_procedure_run_in_the_clear_on_the_same_resamples(study, validated):
    """The stations' resample weights (read back through the test's view of the hub), put on the linked records
    in the clear: the same one-step refits and the same bins, the protocol's one draw of the stochastic
    rounding against the clear procedure's expectation and spread over draws (the slope with full
    recalibration fits, where the protocol expands the log-likelihood); then what the bins cost against
    exact scores."""
    result, rounds, seen = validated
    x, data = pooled_design(joined(study, result["links"], [REG, GP]), FEATURES, ["death_within_2y", "record_id"])
    x.insert(0, "(intercept)", 1.0)
    by_record = resample_weights_by_record(seen)
    weights = np.stack([by_record[str(r)] for r in data["record_id"]], axis=1)
    ref = clear_bootstrap(x.to_numpy(float), data["death_within_2y"].to_numpy(float), 200, seed=0,
                          k=result["min_cell_count"], weights=weights, grid=seen["grid"], roundings=25,
                          slope_roundings=6)
    got = result["validation"]
    assert got["repetitions"] == 200 and got["resamples_used"] == 200 and got["bins"] == 64
    assert got["auc"]["apparent"] == result["quality"]["auc"] == pytest.approx(ref["apparent"], abs=1e-4)
    # the same bins: the protocol's one draw of the rounding against the expectation and spread (AUC about
    # 1e-4; the slope's mean over 6 draws carries its own error, and the Taylor expansion about 1e-4)
    for key, name, slack in (("auc", "binned_auc", 0.0), ("calibration_slope", "binned_slope", 2e-4)):
        expected, spread = ref[name]
        assert got[key]["optimism"] == pytest.approx(expected, abs=5 * spread * np.sqrt(1 + 1 / 6) + slack), \
            (got[key], ref[name])
    # what the bins cost (stochastic rounding is noise on the scores): small beside the Monte Carlo SE
    for key, name, binned in (("auc", "auc", "binned_auc"), ("calibration_slope", "slope", "binned_slope")):
        block = got[key]
        assert abs(ref[binned][0] - ref[name][0]) < 0.5 * block["optimism_se"], (key, ref[name], ref[binned])
        assert block["optimism_se"] == pytest.approx(ref[name][1], rel=0.05)
        assert block["optimism"] > 4 * block["optimism_se"]          # a model with 9 coefficients overfits
        assert block["corrected"] == pytest.approx(block["apparent"] - block["optimism"], abs=2e-4)
    assert got["calibration_slope"]["apparent"] == 1.0
    assert rounds["training: internal validation"] == 4      # for all 200 resamples


def test_the_report_and_summary_show_the_corrected_values(validated, tmp_path):
    from lancelot.results.models import Model

    result, rounds = validated[0], validated[1]
    corrected = result["validation"]["auc"]["corrected"]
    seconds = result["cost"]["seconds_per_phase"]["training: internal validation"]
    model = Model.from_json(result)
    cost = f"200 bootstrap resamples, {seconds:.0f} s in {rounds['training: internal validation']} rounds"
    assert any(f"-> {corrected:.3f} corrected" in line and cost in line for line in model.summary_lines())
    page = model.write_report(tmp_path).read_text()
    assert "Internal validation" in page and f"{corrected:.4g}" in page and f"{seconds:.0f} s in 4 rounds" in page


def test_three_stations_with_cross_station_interactions(tmp_path):
    """The resample models' scores include product columns (and their low-bits columns) from three stations."""
    study = make_study(tmp_path, patients=1000, gp_stations=2, seed=11)
    features = [v(REG, "age_at_diagnosis"), v(REG, "chemotherapy"), v(GP, "copd"), v(G2, "diabetes"),
                v(G2, "gp_visits"), {"interaction": [v(GP, "copd"), v(G2, "diabetes")]},
                {"interaction": [v(REG, "chemotherapy"), v(G2, "gp_visits")]}]
    spec = {**spec_for(study, repetitions=150), "features": features}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study),
                                     {s: {"allow_evaluate": True} for s in (REG, GP, G2)})
    result = train(coord, spec, evaluate=True)
    x, data = pooled_with_products(study, {}, result, features, ["death_within_2y"], [REG, GP, G2])
    x.insert(0, "(intercept)", 1.0)
    ref = clear_bootstrap(x.to_numpy(float), data["death_within_2y"].to_numpy(float), 400, seed=2,
                          k=result["min_cell_count"])
    got = result["validation"]
    assert got["bins"] == 64 and got["resamples_used"] >= 148
    for key, name, allowance in (("auc", "auc", 0.001), ("calibration_slope", "slope", 0.005)):
        mean, se = ref[name]
        assert got[key]["optimism"] == pytest.approx(mean, abs=4 * np.hypot(got[key]["optimism_se"], se) + allowance)


def test_a_model_without_signal_gets_its_auc_optimism_and_no_calibration_slope(study, tmp_path):
    """An outcome unrelated to the features: the resample models' slopes on the original cohort fall outside what
    the expansion covers, so the slope is withheld with the reason, while the AUC's optimism (about the apparent
    AUC's excess over 0.5) agrees with the clear procedure on its own resamples."""
    from lancelot.results.models import Model

    noise = with_columns(study, tmp_path, REG, noise_outcome=lambda df: (np.arange(len(df)) % 7 == 0).astype(int))
    spec = {**spec_for(study, repetitions=60), "outcome": v(REG, "noise_outcome"),
            "features": [v(REG, "age_at_diagnosis"), v(GP, "bmi")]}
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, noise, {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = train(coord, spec, evaluate=True)
    got = result["validation"]
    assert got["calibration_slope"] is None and "little discrimination" in got["withheld"]["calibration_slope"]
    x, data = pooled_design(joined(noise, result["links"], [REG, GP]), spec["features"], ["noise_outcome"])
    x.insert(0, "(intercept)", 1.0)
    mean, se = clear_bootstrap(x.to_numpy(float), data["noise_outcome"].to_numpy(float), 300, seed=4,
                               k=result["min_cell_count"])["auc"]
    assert got["auc"]["optimism"] == pytest.approx(mean, abs=4 * np.hypot(got["auc"]["optimism_se"], se) + 0.002)
    model = Model.from_json(result)
    assert any("calibration slope withheld" in line for line in model.summary_lines())
    assert "calibration slope withheld" in model.write_report(tmp_path / "report").read_text()


def test_validation_refusals_name_the_problem(study, monkeypatch, tmp_path):
    paths = station_paths(study)
    cox = {**spec_for(study), "model": "cox", "time": v(REG, "survival_days"), "event": v(REG, "death")}
    del cox["outcome"]
    for spec, message in (
            ({**cox, "validation": {"method": "bootstrap"}}, "method built for a Cox model is \"cross-validation\""),
            (spec_for(study, repetitions=5), "'repetitions' must be an integer from 10"),
            (spec_for(study, bins=48), "'bins' must be one of 32, 64, 128"),
            (spec_for(study, method="cross-validation"), "method built for a logistic model is \"bootstrap\""),
            (spec_for(study, repetitions=1000), "at most one per two records")):
        coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
        with pytest.raises(InputError, match=message):
            train(coord, spec)
    small = make_study(tmp_path, patients=220, gp_stations=1, seed=5)
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(small))
    with pytest.raises(InputError, match="at least 200 records"):
        train(coord, spec_for(small, repetitions=10))
    # the stations enforce the bound themselves, whatever the coordinator lets through
    monkeypatch.setattr(logistic_fit, "check_repetitions", lambda *args, **kwargs: None)
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, paths)
    with pytest.raises(LancelotError, match="station 'registry'.*at most one per two records"):
        train(coord, spec_for(study, repetitions=1000))


def test_a_station_refuses_bins_outside_the_choices_naming_itself():
    """The stations check the bins a coordinator sends with the same rule as the researcher's spec."""
    from lancelot.training.spec import check_bins

    assert check_bins(128, "gp_1") == 128
    for bad in (48, 16, 64.0, True, None):
        with pytest.raises(InputError, match="station 'gp_1': 'validation': 'bins' must be one of 32, 64, 128"):
            check_bins(bad, "gp_1")


@pytest.mark.parametrize("step, shift, why", [("train_count", 0, "out of order"),
                                               ("train_resample", -1, "not at the fit's last iteration")])
def test_stations_run_the_validation_once_in_order_at_the_last_iteration(study, monkeypatch, step, shift, why):
    """A coordinator that skips a step, or asks for resample weights at an earlier iteration (fresh weights
    there would escape the bound on repetitions), is refused by the stations."""
    def crafted(self, options, penalty):
        st = self.st
        payload = {"t": self.last["t"] + shift, "layout": st.layout, "repetitions": options["repetitions"],
                   "bins": 32}
        self.c.round({st.hub: StepCall(step, payload)}, label="crafted")

    monkeypatch.setattr(logistic_fit._LogisticFit, "validate", crafted)
    coord, _ = recording_coordinator({**LINK_STEPS, **TRAIN_STEPS}, station_paths(study))
    with pytest.raises(LancelotError, match=f"station 'registry'.*{why}"):
        train(coord, spec_for(study, repetitions=20))

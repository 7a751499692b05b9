"""Counts across stations on exponential ElGamal (lancelot.crypto.ecelgamal, lancelot.explore.ec_product):
every party's step run by hand against numpy's sums over the cohort, the re-randomisation that keeps the key
owner from recognising its own randomness, the station steps' refusals, and the plan's choice of cipher."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import make_study  # noqa: I001

from lancelot.crypto import ecelgamal as ec
from lancelot.explore import ec_product, product
from lancelot.explore.plan import COUNTS_CIPHER, plan_products
from lancelot.explore.protocol import _pairs
from lancelot.explore.spec import parse_explore_spec
from lancelot.explore.steps import STATE_EC_KEY, step_decrypt, step_describe, step_encrypt
from lancelot.linkage.steps import STATE_PERM
from lancelot.policy import NodePolicy
from lancelot.runtime.errors import InputError, PrivacyError
from lancelot.runtime.state import JobState
from lancelot.runtime.station import StationContext


def _run(rng, n_r=700, n_l=600, n_c=450, k=3, times=40):
    """R's k 0/1 columns, L's one-hot exit columns plus a cumulative family and a constant; the protocol by hand."""
    r_cols = [rng.integers(0, 2, n_r).astype(np.int8) for _ in range(k)]
    keys = ec.Keys.fresh(k)
    rows = ec.points_from_str(ec.points_to_str(ec_product.encrypt(keys, r_cols)))
    zeros = product.Zeros(ec.points_from_str(ec.points_to_str(ec_product.make_zeros(keys, 1024))), k + 1)
    pairs_l, pairs_r = rng.permutation(n_l)[:n_c], rng.permutation(n_r)[:n_c]
    layout = ec.points_from_str(ec.points_to_str(
        ec_product.layout_for_l(rows, zeros, k + 1, n_l, pairs_l, pairs_r)))
    t = rng.integers(0, times, n_l)
    l_cols = ([(t == i).astype(np.int8) for i in range(times + 1)]             # one-hot (the last one empty)
              + [(t <= i).astype(np.int8) for i in range(0, times, 7)]          # cumulative: many columns per row
              + [np.ones(n_l, dtype=np.int8)])
    needs = [[j for j in range(k) if (a + j) % 3] or [0] for a in range(len(l_cols))]
    results = ec_product.aggregate(keys.public, layout, l_cols, needs)
    aligned = np.zeros((n_l, k), dtype=np.int64)
    aligned[pairs_l] = np.stack(r_cols, axis=1)[pairs_r]
    exact = [[int(l_cols[a].astype(np.int64) @ aligned[:, j]) for j in needs[a]] for a in range(len(l_cols))]
    return keys, rows, results, needs, exact, n_l


def test_counts_equal_the_cohort_sums():
    keys, _rows, results, needs, exact, n_l = _run(np.random.default_rng(3))
    decryptions = ec_product.partial_decrypt(keys, ec_product.c1_of(results, needs), needs)
    assert ec_product.counts(results, decryptions, needs, bound=n_l) == exact
    assert exact[-1][0] > 100 and any(row == [0] * len(row) for row in exact)  # large and empty sums both decrypt


def test_the_key_owner_cannot_recognise_its_own_randomness_in_a_result(monkeypatch):
    """The key owner made every randomness in L's layout (its rows' r and its zero rows' z), so without L's
    re-randomisation the first point of a one-row sum is that layout row's first point: R would see which L row
    (and, by its own r, which of its rows) makes up a small count."""
    rng = np.random.default_rng(4)
    keys = ec.Keys.fresh(1)
    zeros = product.Zeros(ec.points_from_str(ec.points_to_str(ec_product.make_zeros(keys, 1024))), 2)
    rows = ec.points_from_str(ec.points_to_str(ec_product.encrypt(keys, [rng.integers(0, 2, 40).astype(np.int8)])))
    layout = ec.points_from_str(ec.points_to_str(
        ec_product.layout_for_l(rows, zeros, 2, 40, rng.permutation(40)[:30], rng.permutation(40)[:30])))
    single = [np.eye(40, dtype=np.int8)[i] for i in range(40)]  # one L row per column, as rare exit times are
    owner_knows = {layout[2 * i] for i in range(40)}
    results = ec_product.aggregate(keys.public, layout, single, [[0]] * 40)
    assert not owner_knows & set(ec_product.c1_of(results, [[0]] * 40))
    empty = ec_product.c1_of(ec_product.aggregate(keys.public, layout, [np.zeros(40, np.int8)], [[0]]), [[0]])
    assert empty[0] != ec.IDENTITY  # an empty sum leaves as a fresh random point too
    monkeypatch.setattr(ec, "rerandomise", lambda public, c1, c2s, which: [c1, *c2s])  # without it ...
    results = ec_product.aggregate(keys.public, layout, single, [[0]] * 40)
    assert set(ec_product.c1_of(results, [[0]] * 40)) == owner_knows  # ... every one is recognised


def test_discrete_logarithm_bounds_and_invalid_points():
    logs = ec.SmallLog(bound=10_000, baby=64)
    assert [logs.log(ec.base_mult(m)) if m else logs.log(ec.IDENTITY) for m in (0, 1, 63, 64, 9_999, 10_000)] == \
        [0, 1, 63, 64, 9_999, 10_000]
    with pytest.raises(ArithmeticError, match="outside its bound"):
        logs.log(ec.base_mult(10_001))
    order_two = ((1 << 255) - 20).to_bytes(32, "little")  # (0, -1): a point of order 2
    mixed = ec.add(ec.base_mult(5), order_two)               # outside the prime-order subgroup
    keys = ec.Keys.fresh(1)
    with pytest.raises(ValueError, match="prime-order group"):  # would leak the key modulo the cofactor
        ec.partial_decrypt(keys.secret, mixed, [0])
    with pytest.raises(ValueError, match="valid curve point"):
        ec.add((2).to_bytes(32, "little"), ec.base_mult(1))  # y = 2: no x on the curve
    with pytest.raises(ValueError, match="only 0/1"):
        ec_product.encrypt(keys, [np.array([0, 2])])


# ---------------------------------------------------------------------------------------------------
# the station steps' refusals, and the plan
# ---------------------------------------------------------------------------------------------------
REG, GP = "registry", "gp_1"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("ec"), patients=300, gp_stations=1, seed=11)


def _spec(study, analyses):
    return {"linkage": json.loads(study["link_spec"].read_text()), "analyses": analyses}


KM_BY_GP = {"type": "kaplan_meier", "time": {"station": REG, "column": "survival_days"},
            "event": {"station": REG, "column": "vital_status"}, "by": {"station": GP, "column": "copd"}}
MEAN_BY_GP = {"type": "summary", "variable": {"station": REG, "column": "age_at_diagnosis"},
              "by": {"station": GP, "column": "copd"}}


def _ctx(study, tmp_path, station):
    ctx = StationContext(station, pd.read_csv(study[station]), JobState(tmp_path / station), NodePolicy())
    ctx.state.put_array(STATE_PERM, np.random.default_rng(0).permutation(len(ctx.data)))  # as linkage's round 1
    return ctx


def _plan(study, tmp_path, analyses, rows=None):
    spec_raw = _spec(study, analyses)
    payload = {"spec": spec_raw, "stations": [REG, GP]}
    described = {s: step_describe(_ctx(study, tmp_path, s), payload) for s in (REG, GP)}
    meta = {s: d["meta"] for s, d in described.items()}
    n_rows = rows or {s: d["n"] for s, d in described.items()}
    spec = parse_explore_spec(spec_raw, [REG, GP])
    return plan_products(spec, meta, n_rows, _pairs(spec, REG, [GP]), {REG: GP, GP: REG}, 10, 2048)


def test_the_plan_counts_indicator_products_on_elgamal_and_keeps_scaled_values_on_paillier(study, tmp_path):
    plan = _plan(study, tmp_path, [KM_BY_GP])
    (job,) = plan.jobs
    assert (job.cipher, job.left, job.right) == ("ec", REG, GP)
    assert plan.encrypt[GP]["ec"]["columns"] == job.r_columns and "columns" not in plan.encrypt[GP]
    assert all(len(g) == 1 for g in job.groups)
    # a mean by a GP column needs scaled registry values: never counted (here it travels on shares)
    assert all(j.cipher == "paillier" for j in _plan(study, tmp_path, [MEAN_BY_GP]).jobs)


def test_a_station_counts_only_its_indicator_columns_and_decrypts_only_with_its_own_keys(study, tmp_path):
    gp = _ctx(study, tmp_path, GP)
    bmi = {"type": "summary", "variable": {"station": GP, "column": "bmi"}, "by": {"station": REG, "column": "stage"}}
    payload = {"spec": _spec(study, [KM_BY_GP, bmi]), "stations": [REG, GP], "key_bits": 2048}
    names = step_describe(gp, payload)["meta"]["names"]
    scaled = [n for n in names if n not in step_describe(gp, payload)["meta"]["indicators"]]
    assert scaled
    for ask, message in [({"columns": scaled[:1], "zeros": 0}, "only 0/1 indicator"),
                         ({"columns": ["nope"], "zeros": 0}, "unknown columns"),
                         ({"columns": ["1"] * 2, "zeros": 0}, "too many or repeated"),
                         ({"columns": ["1"], "zeros": 1000}, "unexpected number of zero rows")]:
        with pytest.raises(InputError, match=message):
            step_encrypt(gp, {**payload, "ec": ask})
    fresh = _ctx(study, tmp_path / "direct", GP)  # a decryption asked for in a job that made no keys here
    with pytest.raises(PrivacyError, match="no counting keys"):
        step_decrypt(fresh, {"ec_jobs": {"j": {"c1": ec.points_to_str([ec.base_mult(7)]), "needs": [[0]]}}})
    out = step_encrypt(gp, {**payload, "ec": {"columns": ["1"], "zeros": 1024}})
    assert out["public_key"] is None and gp.state.has(STATE_EC_KEY)  # no Paillier key when nothing needs one
    assert len(ec.points_from_str(out["ec"]["rows"])) == 2 * len(gp.data)
    with pytest.raises(InputError, match="do not match this station's keys"):
        step_decrypt(gp, {"ec_jobs": {"j": {"c1": ec.points_to_str([ec.base_mult(7)]), "needs": [[1]]}}})


def test_a_wide_grid_at_the_other_station_swaps_roles_so_the_narrow_side_encrypts(study, tmp_path):
    """At 100,000 rows a table one's 202-bin histogram of a GP median (for Kruskal-Wallis by a registry column) no
    longer fits the shares: the GP would have to encrypt 202 columns per row, so the registry (its stratifier, a
    few one-hot columns) becomes the key owner of the counts."""
    median = {"type": "table_one", "by": {"station": REG, "column": "stage"},
              "variables": [{"station": GP, "column": "bmi", "summary": "median", "range": [10, 50]}]}
    plan = _plan(study, tmp_path, [median], rows={REG: 100_000, GP: 120_000})
    counted = [j for j in plan.jobs if j.cipher == "ec"]
    assert [(j.left, j.right) for j in counted] == [(GP, REG)]
    assert len(counted[0].r_columns) <= ec_product.MAX_COLUMNS < len(counted[0].l_columns)
    assert all(c == "1" or c.startswith("c|stage|") for c in counted[0].r_columns)  # and the constant: GP totals


def test_wide_indicator_totals_are_counted_on_elgamal_rather_than_relayed_as_masked_words(study, tmp_path):
    """A GP's 200-bin histogram totals (overall quantiles) at 120,000 rows would be about 100 MB of masked words."""
    quantiles = {"type": "summary", "variable": {"station": GP, "column": "bmi"}, "quantiles": [0.25, 0.5, 0.75],
                 "range": [10, 50]}
    plan = _plan(study, tmp_path, [quantiles, KM_BY_GP], rows={REG: 100_000, GP: 120_000})
    (totals,) = [j for j in plan.jobs if j.kind == "totals"]
    assert (totals.cipher, totals.left, totals.right) == ("ec", GP, REG)
    assert len(totals.l_columns) > 200 and plan.encrypt[REG]["ec"] == {"columns": [], "zeros": 120_832}
    assert plan.masked[GP].columns and not set(plan.masked[GP].columns) & set(totals.l_columns)  # BMI's moments
    small = _plan(study, tmp_path, [quantiles, KM_BY_GP])  # at this study's size the words are few: masked sums
    assert GP in small.masked and not [j for j in small.jobs if j.kind == "totals"]


def test_counts_leave_out_the_constant_when_the_other_stations_totals_fit_masked_sums(study, tmp_path, monkeypatch):
    """R's constant would cost a point per row only to give L's totals (here a registry histogram's bins); on
    Paillier it shares the ciphertext for free, and L's totals ride on it."""
    histogram = {"type": "histogram", "variable": {"station": REG, "column": "age_at_diagnosis"},
                 "edges": [40, 50, 60, 70, 80, 90]}
    rows = {REG: 100_000, GP: 120_000}
    plan = _plan(study, tmp_path, [histogram, KM_BY_GP], rows=rows)
    (job,) = plan.jobs
    assert job.cipher == "ec" and "1" not in job.r_columns and not job.l_totals and REG in plan.masked
    monkeypatch.setenv(COUNTS_CIPHER, "paillier")
    plan = _plan(study, tmp_path / "paillier", [histogram, KM_BY_GP], rows=rows)
    (job,) = plan.jobs
    assert job.cipher == "paillier" and "1" in job.r_columns and job.l_totals and REG not in plan.masked


def test_the_coordinator_pads_and_shuffles_what_the_key_owner_decrypts():
    """R sees the first points of the real results among random ones asking for the same keys, in a random order,
    a multiple of 256 in all; the counts still come out in the job's order."""
    from lancelot.explore.counts_job import RESULT_QUANTUM, CountsRun
    from lancelot.explore.plan import Job, Plan

    rng = np.random.default_rng(5)
    n_r, n_l, k = 200, 150, 2
    r_cols = [rng.integers(0, 2, n_r).astype(np.int8) for _ in range(k)]
    keys = ec.Keys.fresh(k)
    upload = {"public": ec.public_to_str(keys.public), "rows": ec.points_to_str(ec_product.encrypt(keys, r_cols)),
              "zeros": ec.points_to_str(ec_product.make_zeros(keys, 1024))}
    l_cols = [rng.integers(0, 2, n_l).astype(np.int8) for _ in range(7)]
    needs = [[0, 1], [1], [0, 1], [0], [0, 1], [1], [0, 1]]
    job = Job(id="cross:L:R", kind="cross", left="L", right="R", n_left=n_l, l_columns=[f"a{i}" for i in range(7)],
              l_bits=[1] * 7, needs=needs, r_columns=["b0", "b1"], r_bits=[1, 1], widths=[1, 1], groups=[[0], [1]],
              cipher="ec")
    cohort = {"L": rng.permutation(n_l)[:120], "R": rng.permutation(n_r)[:120]}
    run = CountsRun(Plan(jobs=[job], encrypt={}, chains=[], masked={}, shared={}, shared_pairs=[]), {"R": upload},
                    {"L": n_l, "R": n_r}, cohort)
    sent = run.layout(job)
    results = ec_product.aggregate(keys.public, ec.points_from_str(sent["rows"]), l_cols, needs)
    call = run.decrypt_calls({"L": {job.id: {"results": ec.points_to_str(results)}}})["R"][job.id]
    c1s = ec.points_from_str(call["c1"])
    assert len(c1s) == RESULT_QUANTUM and {tuple(n) for n in call["needs"]} == {tuple(n) for n in needs}
    assert c1s[:7] != ec_product.c1_of(results, needs)  # not in the job's order
    partial = ec.points_to_str(ec_product.partial_decrypt(keys, c1s, call["needs"]))
    got = {(a, j): v for _job, a, j, v in run.counts({"R": {job.id: partial}})}
    aligned = np.zeros((n_l, k), dtype=np.int64)
    aligned[cohort["L"]] = np.stack(r_cols, axis=1)[cohort["R"]]
    assert got == {(a, j): int(l_cols[a].astype(np.int64) @ aligned[:, j]) for a in range(7) for j in needs[a]}

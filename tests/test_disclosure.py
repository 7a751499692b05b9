"""Disclosure control audited from outside: an independent auditor, the issue's attacks, ACRO as an oracle.

(a) The auditor (tests/disclosure_audit.py) on tiny constructed releases whose protection intervals
    are known by hand, and against a plain full-product linear program without its reductions.
(b) The auditor on real jobs: an exploration spec like tests/test_exploration.py's plus the attack
    analyses, with the node default rounding (5) and with rounding off (node policy base 1).
(c) Each attack of the disclosure-control issue, asserted on the released numbers against the
    pooled linked records (the evaluation run's links joined in plain text).
(d) ACRO (SACRO's output checker, default thresholds) on the same tables and survival curve of the
    pooled records: every interior cell lancelot releases is one ACRO passes.
"""

from __future__ import annotations

import itertools
import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from disclosure_audit import (
    MISSING,
    AuditError,
    ReleasedSystem,
    assert_protected,
    audit,
    release_interval,
    rounding_interval,
)
from helpers import local_study, make_study, station_paths, walk_strings
from scipy.optimize import linprog

from lancelot.runtime.errors import LancelotError

REG, GP = "registry", "gp_1"
K = 10
EXACT = {s: {"LANCELOT_ROUNDING_BASE": "1"} for s in (REG, GP)}  # node policies: rounding off
# The documented default grid of survival times (docs: 3, 6, 12, 24, 36, 60 months in days).
DEFAULT_GRID = {91.0, 182.0, 365.0, 730.0, 1095.0, 1826.0}


def v(station, column):
    return {"station": station, "column": column}


AGE, TIME, EVENT = v(REG, "age_at_diagnosis"), v(REG, "survival_days"), v(REG, "vital_status")
OLDEST = 89  # an age edge with fewer than k linked patients at or above it
# like tests/test_exploration.py's spec
EXPLORATION = [
    {"type": "count", "variable": v(REG, "stage")},
    {"type": "crosstab", "variables": [v(REG, "stage"), v(GP, "copd")]},
    {"type": "crosstab", "variables": [v(REG, "stage"), v(REG, "surgery")]},
    {"type": "summary", "variable": v(GP, "bmi"), "by": v(REG, "surgery"), "quantiles": [0.25, 0.5, 0.75],
     "range": [10, 50]},
    {"type": "summary", "variable": AGE, "by": v(REG, "stage")},
    {"type": "histogram", "variable": AGE, "edges": [40, 50, 60, 70, 80, 90]},
    {"type": "correlation", "variables": [AGE, v(GP, "bmi"), v(REG, "who_ps"), v(GP, "medication_count")]},
    {"type": "missingness", "variables": [v(REG, "who_ps"), v(GP, "bmi"), v(GP, "smoking")]},
    {"type": "kaplan_meier", "time": TIME, "event": EVENT, "by": v(REG, "stage"), "times": [90, 365, 730]},
]
# the attacks that run inside one job
ATTACKS = [
    # labels: a column made from diagnosis_date (months of 2019, most with fewer than k patients)
    {"type": "count", "variable": v(REG, "diagnosis_month")},
    {"type": "crosstab", "variables": [v(REG, "diagnosis_month"), v(GP, "copd")]},
    # extreme quantiles with narrow ranges
    {"type": "summary", "variable": AGE, "quantiles": [0.000001, 0.01, 0.5, 0.99, 0.999999], "range": [60, 61]},
    {"type": "summary", "variable": AGE, "quantiles": [0.000001, 0.999999], "range": [88, 100]},
    # a two-way table (above) against the layers of a three-way table
    {"type": "crosstab", "variables": [v(REG, "stage"), v(REG, "surgery"), v(GP, "copd")]},
    # shifted histogram edges: [60, 200] - [60, 89) would isolate the oldest patients (the issue's
    # [0, 60, 96, 200]; this synthetic cohort's oldest two are 89 and 92)
    {"type": "histogram", "variable": AGE, "edges": [0, 60, OLDEST, 200]},
    {"type": "histogram", "variable": AGE, "edges": [0, 60, 200]},
    # Kaplan-Meier at adjacent days, and at the default times
    {"type": "kaplan_meier", "time": TIME, "event": EVENT, "by": v(GP, "copd"), "times": [90, 180, 365, 366, 730]},
    {"type": "kaplan_meier", "time": TIME, "event": EVENT},
]
ANALYSES = EXPLORATION + ATTACKS
# table one by a stratifier of mostly small levels (months of diagnosis); and one whose tests can be released
# (a job of their own: with the analyses above they would link every dimension of the job into one product
# too large for the auditor)
TABLE_ONES = [
    {"type": "table_one", "by": v(REG, "diagnosis_month"), "variables": [AGE, v(GP, "bmi"), v(REG, "who_ps"),
                                                                        v(GP, "copd")]},
    {"type": "table_one", "by": v(REG, "immunotherapy"), "variables": [AGE, v(GP, "bmi"), v(GP, "copd"),
                                                                      v(GP, "smoking")]},
]


def label(value) -> str:
    return MISSING if pd.isna(value) else str(int(value)) if isinstance(value, float) else str(value)


def released_level(series: pd.Series) -> pd.Series:
    """The level a pooled value is released under: its label if >= k linked patients have it, else <other>."""
    labels = series.map(label)
    counts = labels.value_counts()
    small = {lab for lab, n in counts.items() if n < K and lab != MISSING}
    return labels.map(lambda lab: "<other>" if lab in small else lab)


# -------------------------------------------------------------------------------------------------
# fixtures: one study, two jobs (rounding 5 and rounding off), each with its links
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    paths = make_study(tmp_path_factory.mktemp("disclosure"), patients=400, gp_stations=1, seed=5)
    reg = pd.read_csv(paths[REG])
    date = pd.to_datetime(reg["diagnosis_date"])
    reg["diagnosis_month"] = date.dt.strftime("%Y-%m").where(date.dt.year == 2019, "2015-2018")
    reg.to_csv(paths[REG], index=False)
    return paths


@pytest.fixture(scope="module")
def spec(study):
    return {"linkage": json.loads(study["link_spec"].read_text()), "analyses": ANALYSES}


@pytest.fixture(scope="module")
def jobs(study, spec):
    """The same spec with the node default rounding (5) and with rounding off, run side by side."""
    def explore(**kwargs):
        return local_study(station_paths(study), **kwargs).explore(spec, evaluate=True).to_json()

    with ThreadPoolExecutor(2) as pool:
        rounded = pool.submit(explore)
        exact = pool.submit(explore, station_env=EXACT)
        return {"rounded": rounded.result(), "exact": exact.result()}


def linked_records(study, result) -> pd.DataFrame:
    """The registry and GP rows the job's linkage linked, joined (the pooled reference)."""
    reg, gp = pd.read_csv(study[REG]), pd.read_csv(study[GP])
    links = pd.DataFrame(result["links"])[[REG, GP]]
    return links.merge(reg, left_on=REG, right_on="record_id").merge(gp, left_on=GP, right_on="patient_nr")


@pytest.fixture(params=["rounded", "exact"])
def job(request, study, jobs):
    """(result, linked records) of one of the two jobs."""
    return jobs[request.param], linked_records(study, jobs[request.param])


_AUDITS: dict[int, list] = {}


def audited(result: dict, spec: dict):
    """The auditor's intervals for a job's result (computed once per result)."""
    if id(result) not in _AUDITS:
        _AUDITS[id(result)] = audit(released_only(result), spec)
    return _AUDITS[id(result)]


def released_only(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "links"}


# -------------------------------------------------------------------------------------------------
# (a) the auditor on releases whose answer is known
# -------------------------------------------------------------------------------------------------
def test_rounding_interval_is_exactly_the_counts_that_round_to_the_released_value():
    from lancelot.disclosure import round_count

    for base in (1, 2, 5, 10):
        for released in sorted({round_count(c, base) for c in range(200)}):
            lo, hi = rounding_interval(released, base)
            assert {c for c in range(300) if round_count(c, base) == released} == set(range(lo, hi + 1))
            for k in (10, 12, 15):
                allowed = {c for c in range(300) if round_count(c, base) == released and (c == 0 or c >= k)}
                both = release_interval(released, base, k)
                assert (set(range(both[0], both[1] + 1)) if both else set()) == allowed
    assert rounding_interval(20, 5) == (18, 22) and rounding_interval(20, 10) == (15, 24)
    assert release_interval(10, 5, 12) == (12, 12)  # with k = 12, a released 10 can only be 12
    assert release_interval(5, 5, 10) is None        # no count >= 10 rounds to 5


def _spec(*analyses):
    return {"analyses": list(analyses)}


def _result(*analyses, k=K, base=1, records=None):
    out = {"analyses": list(analyses), "disclosure_control": {"min_cell_count": k, "rounding_base": base}}
    if records is not None:
        out["cohort"] = {"records": records}
    return out


A, B, C = v("s1", "a"), v("s2", "b"), v("s1", "c")


def _crosstab(name, cells, rows, cols, total, names=("a", "b")):
    """A released two-way table: cells {(row, col): count}, rows/cols {label: count}."""
    ra, cb = names
    return {"name": name, "type": "crosstab",
            "table": [{ra: r, cb: c, "count": n} for (r, c), n in cells.items()],
            "row_totals": [{ra: r, "count": n} for r, n in rows.items()],
            "column_totals": [{cb: c, "count": n} for c, n in cols.items()], "total": total}


def _widths(result, spec):
    return {(w.analysis, tuple(sorted((k, str(x)) for k, x in w.cell.items()))): (w.lo, w.hi)
            for w in audit(result, spec)}


def test_a_properly_suppressed_two_by_two_table_passes_with_the_intervals_by_hand():
    # true table [[3, 17], [12, 18]]: every cell withheld, margins released
    cells = {("a1", "b1"): None, ("a1", "b2"): None, ("a2", "b1"): None, ("a2", "b2"): None}
    result = _result(_crosstab("t", cells, {"a1": 20, "a2": 30}, {"b1": 15, "b2": 35}, 50))
    spec = _spec({"type": "crosstab", "variables": [A, B]})
    got = {tuple(w.cell[x] for x in ("s1.a", "s2.b")): (w.lo, w.hi) for w in assert_protected(result, spec)}
    assert got == {("a1", "b1"): (0, 15), ("a1", "b2"): (5, 20), ("a2", "b1"): (0, 15), ("a2", "b2"): (15, 30)}


def test_a_two_by_two_table_with_one_margin_too_many_fails():
    cells = {("a1", "b1"): None, ("a1", "b2"): None, ("a2", "b1"): 12, ("a2", "b2"): 18}
    spec = _spec({"type": "crosstab", "variables": [A, B]})
    safe = _result(_crosstab("t", cells, {"a1": 20, "a2": 30}, {"b1": None, "b2": None}, 50))
    got = {tuple(w.cell.values()): (w.lo, w.hi) for w in assert_protected(safe, spec)}
    assert got == {("a1", "b1"): (0, 20), ("a1", "b2"): (0, 20), ("(total)", "b1"): (12, 32),
                   ("(total)", "b2"): (18, 38)}
    leaky = _result(_crosstab("t", cells, {"a1": 20, "a2": 30}, {"b1": 15, "b2": None}, 50))
    with pytest.raises(AssertionError, match="recoverable"):
        assert_protected(leaky, spec)
    assert _widths(leaky, spec)[("t", (("s1.a", "a1"), ("s2.b", "b1")))] == (3, 3)  # 15 - 12


@pytest.mark.parametrize("base, released, interval, safe", [
    (5, {"a2": 40, "total": 45}, (1, 9), False),     # 40 is 38..42, 45 is 43..47: a1 = 1..9
    (10, {"a2": 40, "total": 50}, (1, 19), True),    # 40 is 35..44, 50 is 45..54: a1 = 1..19
])
def test_rounding_widens_the_interval_exactly_as_derived(base, released, interval, safe):
    result = _result({"name": "n", "type": "count", "table": [{"a": "a1", "count": None},
                                                               {"a": "a2", "count": released["a2"]}],
                      "total": released["total"]}, base=base)
    spec = _spec({"type": "count", "variable": A})
    (w,) = audit(result, spec)
    assert (w.lo, w.hi) == interval
    if safe:
        assert_protected(result, spec)
    else:
        with pytest.raises(AssertionError):
            assert_protected(result, spec)


def test_without_a_released_total_a_count_is_unbounded_above():
    result = _result({"name": "n", "type": "count", "table": [{"a": "a1", "count": None}, {"a": "a2", "count": 30}],
                      "total": None})
    got = [(w.lo, w.hi) for w in assert_protected(result, _spec({"type": "count", "variable": A}))]
    assert got == [(0, float("inf")), (30, float("inf"))]  # a1, and the withheld total


def test_pinning_a_count_of_at_least_k_fails_only_the_strict_audit():
    # the group g2 is pinned to 20: a secondary suppression, no one below k is disclosed
    groups = [{"g": "g1", "n": 30}, {"g": "g2", "n": None}]
    result = _result({"name": "s", "type": "summary", "overall": {"n": 50, "missing": 0}, "by": groups})
    spec = _spec({"type": "summary", "variable": v("s1", "x"), "by": v("s2", "g")})
    assert_protected(result, spec, strict=False)
    with pytest.raises(AssertionError):
        assert_protected(result, spec)
    groups[0]["n"] = 45  # now g2 is pinned to 5
    with pytest.raises(AssertionError):
        assert_protected(result, spec, strict=False)


def test_contradicting_counts_are_named():
    # 12 + 18 released in row a2, whose total says 35: no table has these counts
    result = _result(_crosstab("t", {("a1", "b1"): None, ("a1", "b2"): None, ("a2", "b1"): 12, ("a2", "b2"): 18},
                               {"a1": None, "a2": 35}, {"b1": None, "b2": None}, 60))
    with pytest.raises(AuditError, match="contradict.*off by"):
        audit(result, _spec({"type": "crosstab", "variables": [A, B]}))


def test_a_released_count_below_k_is_a_violation():
    result = _result({"name": "n", "type": "count", "table": [{"a": "a1", "count": 5}, {"a": "a2", "count": 40}],
                      "total": 45}, base=5)
    with pytest.raises(AssertionError, match="below k"):
        assert_protected(result, _spec({"type": "count", "variable": A}))


def test_a_two_way_table_minus_the_other_layer_of_a_three_way_table():
    spec = _spec({"type": "crosstab", "variables": [A, B]}, {"type": "crosstab", "variables": [A, B, C]})
    two = _crosstab("two", {("a1", "b1"): 20, ("a1", "b2"): 30, ("a2", "b1"): 25, ("a2", "b2"): 25},
                    {"a1": 50, "a2": 50}, {"b1": 45, "b2": 55}, 100)

    def layer(c, cells, rows, cols, total):
        return {**_crosstab("three", cells, rows, cols, total), "c": c}

    # layer c1 withholds (a1, b1) = 3 and its partners; layer c2 releases (a1, b1) = 17
    c1 = layer("c1", {("a1", "b1"): None, ("a1", "b2"): None, ("a2", "b1"): None, ("a2", "b2"): None},
               {"a1": None, "a2": None}, {"b1": None, "b2": None}, 40)
    c2 = layer("c2", {("a1", "b1"): 17, ("a1", "b2"): None, ("a2", "b1"): None, ("a2", "b2"): None},
               {"a1": None, "a2": None}, {"b1": None, "b2": None}, 60)
    result = _result(two, {"name": "three", "type": "crosstab", "layers": [c1, c2], "layer_variable": "c"})
    got = _widths(result, spec)
    assert got[("three", (("s1.a", "a1"), ("s1.c", "c1"), ("s2.b", "b1")))] == (3, 3)  # 20 - 17
    with pytest.raises(AssertionError):
        assert_protected(result, spec)


def _histogram(name, bins, missing=0):
    return {"name": name, "type": "histogram", "bins": [{"bin": b, "count": n} for b, n in bins] +
            [{"bin": "missing", "count": missing}]}


def test_shifted_histogram_edges_split_each_other():
    x = v("s1", "x")
    spec = _spec({"type": "histogram", "variable": x, "edges": [0, 60, 96, 200]},
                 {"type": "histogram", "variable": x, "edges": [0, 60, 200]})
    fine = _histogram("h1", [("(-inf, 0)", 0), ("[0, 60)", 100), ("[60, 96)", 47), ("[96, 200]", None),
                             ("(200, inf)", 0)])
    coarse = _histogram("h2", [("(-inf, 0)", 0), ("[0, 60)", 100), ("[60, 200]", 50), ("(200, inf)", 0)])
    leaky = _result(fine, coarse)
    assert [(w.lo, w.hi) for w in audit(leaky, spec)] == [(3, 3)]
    with pytest.raises(AssertionError):
        assert_protected(leaky, spec)
    system = ReleasedSystem(leaky, spec)
    assert system.interval({"s1.x": system.atoms_between("s1.x", 60, 96)}) == (47, 47)
    dropped = _histogram("h1", [("(-inf, 0)", 0), ("[0, 60)", 100), ("[60, 200]", 50), ("(200, inf)", 0)])
    assert_protected(_result(dropped, coarse), spec)  # 96 dropped: nothing to difference


def test_summary_groups_against_the_overall_count():
    x, by = v("s1", "x"), v("s2", "g")
    spec = _spec({"type": "summary", "variable": x, "by": by})
    groups = [{"g": "g1", "n": 30, "mean": 1.0}, {"g": "g2", "n": None, "refused": "secondary"}]
    leaky = _result({"name": "s", "type": "summary", "overall": {"n": 50, "mean": 1.0, "missing": 10},
                     "by": groups})
    # the <missing> group is left out only when empty, so g2 = 50 - 30
    assert [(w.lo, w.hi) for w in audit(leaky, spec)] == [(20, 20)]
    with pytest.raises(AssertionError):
        assert_protected(leaky, spec)
    groups.append({"g": MISSING, "n": None, "refused": "secondary"})
    assert [(w.lo, w.hi) for w in assert_protected(leaky, spec)] == [(0, 20), (0, 20)]


@pytest.mark.parametrize("cohort, interval, safe", [(60, (30, 40), True), (55, (35, 40), False)])
def test_correlation_pairs_and_missingness(cohort, interval, safe):
    x, y = v("s1", "x"), v("s2", "y")
    spec = _spec({"type": "correlation", "variables": [x, y]}, {"type": "missingness", "variables": [x, y]})
    corr = {"name": "r", "type": "correlation", "n": [[50, None], [None, 40]], "pearson_r": [[1, None], [None, 1]]}
    miss = {"name": "m", "type": "missingness", "cohort": cohort,
            "table": [{"station": "s1", "variable": "x", "missing": cohort - 50},
                      {"station": "s2", "variable": "y", "missing": cohort - 40}]}
    result = _result(corr, miss)
    assert {(w.lo, w.hi) for w in audit(result, spec)} == {interval}  # both presents overlap by >= 90 - cohort
    if safe:
        assert_protected(result, spec)
    else:
        with pytest.raises(AssertionError):
            assert_protected(result, spec)


def test_kaplan_meier_group_counts():
    g = v("s2", "g")
    spec = _spec({"type": "kaplan_meier", "time": v("s1", "t"), "event": v("s1", "e"), "by": g})
    group = {"group": "g1", "n": 30, "events": None, "censored": 25, "curve": []}
    result = _result({"name": "km", "type": "kaplan_meier", "groups": [group], "refused": []})
    assert [(w.lo, w.hi) for w in audit(result, spec)] == [(5, 5)]
    with pytest.raises(AssertionError):
        assert_protected(result, spec)
    group["censored"] = None
    assert_protected(result, spec)


def test_a_withheld_zero_is_disclosive_only_inside_non_empty_margins():
    spec = _spec({"type": "crosstab", "variables": [A, B]})
    # row a1 has nobody: its withheld zeros say nothing the released empty margin does not
    empty = _result(_crosstab("t", {("a1", "b1"): None, ("a1", "b2"): None, ("a2", "b1"): 15, ("a2", "b2"): 25},
                              {"a1": 0, "a2": 40}, {"b1": 15, "b2": 25}, 40))
    assert all(w.empty_margin for w in assert_protected(empty, spec))
    # (a1, b1) = 0 withheld, but a1 = 20 and b1 = 15 are not empty: everyone in a1 has b2
    zero = _result(_crosstab("t", {("a1", "b1"): None, ("a1", "b2"): 20, ("a2", "b1"): 15, ("a2", "b2"): None},
                             {"a1": 20, "a2": None}, {"b1": 15, "b2": None}, 50))
    with pytest.raises(AssertionError, match="recoverable"):
        assert_protected(zero, spec)


def _random_release(rng, base):
    """A random true table over a(3) x b(2) x c(2) and an unrelated d(2), released with random holes."""
    a, b, c, d = ["a1", "a2", "a3"], ["b1", "b2"], ["c1", "c2"], ["d1", "d2"]
    true = rng.integers(0, 25, size=(3, 2, 2))
    n = int(true.sum())
    dd = [int(rng.integers(0, n + 1))]
    dd.append(n - dd[0])

    def rel(value):
        if rng.random() < 0.45:
            return None
        return int(base * np.floor(value / base + 0.5)) if base > 1 else int(value)

    def table(name, m, fixed=None):
        out = _crosstab(name, {(a[i], b[j]): rel(m[i, j]) for i in range(3) for j in range(2)},
                        {a[i]: rel(m[i].sum()) for i in range(3)}, {b[j]: rel(m[:, j].sum()) for j in range(2)},
                        rel(m.sum()))
        return out if fixed is None else {**out, "c": fixed}

    analyses = [
        {"name": "ca", "type": "count", "table": [{"a": a[i], "count": rel(true[i].sum())} for i in range(3)],
         "total": rel(n)},
        table("ab", true.sum(2)),
        {"name": "abc", "type": "crosstab", "layer_variable": "c",
         "layers": [table("abc", true[:, :, k], c[k]) for k in range(2)]},
        {"name": "cd", "type": "count", "table": [{"d": d[i], "count": rel(dd[i])} for i in range(2)], "total": None},
    ]
    spec = _spec({"type": "count", "variable": A}, {"type": "crosstab", "variables": [A, B]},
                 {"type": "crosstab", "variables": [A, B, C]}, {"type": "count", "variable": v("s3", "d")})
    return _result(*analyses, base=base, records=rel(n)), spec


def _plain_lp(system: ReleasedSystem) -> list[tuple[float, float]]:
    """The same release as one linear program over every atom of the full product, nothing merged."""
    dims = list(system.dims)
    atoms = list(itertools.product(*[system.dims[d] for d in dims]))

    def row(cond):
        return np.array([all(d not in cond or lv in cond[d] for d, lv in zip(dims, atom)) for atom in atoms], float)

    released = [(row(c.condition), (c.value, c.value) if c.exact else rounding_interval(c.value, system.base))
                for c in system.counts if c.value is not None]
    a_ub = np.array([r for r, _ in released] + [-r for r, _ in released])
    b_ub = np.array([hi for _, (lo, hi) in released] + [-lo for _, (lo, hi) in released], float)
    out = []
    for c in system.counts:
        if c.value is None:
            target = row(c.condition)
            lo = linprog(target, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
            hi = linprog(-target, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
            out.append((lo.fun if lo.status == 0 else np.nan, -hi.fun if hi.status == 0 else np.inf))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_auditors_reductions_give_the_plain_full_product_program(seed):
    rng = np.random.default_rng(seed)
    result, spec = _random_release(rng, base=1 if seed % 2 else 5)
    system = ReleasedSystem(result, spec, use_release_rule=False)
    got = [(w.lo, w.hi) for w in system.withheld()]
    want = _plain_lp(system)
    assert len(got) == len(want) > 0
    assert np.allclose(np.array(got, float), np.array(want, float), atol=1e-6)


# -------------------------------------------------------------------------------------------------
# (b) the auditor holds on real jobs
# -------------------------------------------------------------------------------------------------
def test_the_auditor_finds_no_recoverable_withheld_count(job, spec):
    """lancelot's rule (docs/leakage/disclosure.md): every withheld count that could be a small count
    (its feasible range reaches below k) keeps a range at least k wide. A count withheld only as cover
    may be pinned when its whole range lies at or above k: that discloses no small count."""
    result, _ = job
    intervals = assert_protected(released_only(result), spec, strict=False)
    _AUDITS[id(result)] = intervals
    assert intervals  # the data has counts below k: something is withheld
    assert result["disclosure_control"]["rounding_base"] in (1, 5)


# -------------------------------------------------------------------------------------------------
# (c) the attacks of the issue
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("analysis, message", [
    ({"type": "crosstab", "variables": [v(REG, "surname"), v(GP, "copd")]}, "identifier or linkage field"),
    ({"type": "crosstab", "variables": [v(REG, "surname"), v(REG, "birth_date")]}, "identifier or linkage field"),
    ({"type": "crosstab", "variables": [v(REG, "birth_date"), v(GP, "copd")]}, "identifier or linkage field"),
    ({"type": "count", "variable": v(REG, "diagnosis_date")}, "too many categories"),
])
def test_labels_attack_identifiers_and_high_cardinality_columns_are_refused(study, analysis, message):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [analysis]}
    with pytest.raises(LancelotError, match=message):
        local_study(station_paths(study)).explore(spec)


def test_labels_attack_no_label_of_fewer_than_k_patients_appears(job):
    result, linked = job
    counts = linked["diagnosis_month"].map(label).value_counts()
    small = [lab for lab, n in counts.items() if n < K]
    assert small and (counts >= K).any()  # the column has both kinds of label
    text = list(walk_strings(released_only(result)))
    assert not [lab for lab in small if any(lab in s for s in text)]
    shown = {row["diagnosis_month"] for row in result["analyses"][len(EXPLORATION)]["table"]}
    assert shown <= {lab for lab, n in counts.items() if n >= K} | {"<other>", MISSING}


def test_extreme_quantiles_are_withheld_outside_k_over_n(job):
    result, linked = job
    values = linked["age_at_diagnosis"].dropna().to_numpy()
    n = len(values)
    checked = 0
    for a, out in zip(ANALYSES, result["analyses"]):
        if a["type"] != "summary" or not a.get("quantiles") or a["variable"] != AGE:
            continue
        overall = out["overall"]
        for key, value in overall["quantiles"].items():
            if not K / n <= float(key) <= 1 - K / n:
                assert value is None, (a["range"], key)
                checked += 1
        width = (a["range"][1] - a["range"][0]) / 200
        # coarse bounds are never more extreme than the k-th smallest / largest value's bin
        if overall.get("coarse_min") is not None:
            assert (values < overall["coarse_min"] + width + 1e-9).sum() >= K
        if overall.get("coarse_max") is not None:
            assert (values > overall["coarse_max"] - width - 1e-9).sum() >= K
    assert checked >= 4  # 1e-6, 0.999999 (twice) and 0.01 at this cohort size


def test_a_two_way_table_against_three_way_layers_recovers_nothing(job, spec):
    result, linked = job
    two = result["analyses"][2]
    three = result["analyses"][len(EXPLORATION) + 4]
    assert three["layer_variable"] == "copd"
    base = result["disclosure_control"]["rounding_base"]
    for cell in two["table"]:
        layers = [next(c["count"] for c in layer["table"] if c["stage"] == cell["stage"]
                       and c["surgery"] == cell["surgery"]) for layer in three["layers"]]
        if cell["count"] is not None and layers.count(None) == 1:  # the difference is the withheld layer cell
            lo = rounding_interval(cell["count"], base)[0] - sum(rounding_interval(x, base)[1] for x in layers if x)
            hi = rounding_interval(cell["count"], base)[1] - sum(rounding_interval(x, base)[0] for x in layers if x)
            assert hi - lo >= K or lo >= K, (cell, layers)
    names = {two["name"], three["name"]}
    # a withheld cell that could be small (its range reaches below k) keeps a range at least k wide (a range of
    # exactly k, such as [0, 10) at k = 10, comes out of the linear programs as 9.999999999999993)
    narrow = [w for w in audited(result, spec) if w.analysis in names and w.width < K - 1e-6 and not w.empty_margin
              and w.lo < K]
    assert not narrow


def test_shifted_histogram_edges_isolate_nobody(job, spec):
    result, linked = job
    age = linked["age_at_diagnosis"]
    oldest = int(((age >= OLDEST) & (age <= 200)).sum())
    assert 0 < oldest < K  # the attack targets a real small group
    system = ReleasedSystem(released_only(result), spec)
    cuts = system.edges["registry.age_at_diagnosis"]
    if OLDEST in cuts:  # the attacker's difference: everyone from OLDEST up
        lo, hi = system.interval({"registry.age_at_diagnosis": system.atoms_between("registry.age_at_diagnosis",
                                                                                   OLDEST, float("inf"))})
        assert hi - lo >= K or lo >= K
    else:  # not computable: the edge was dropped wherever it was asked for
        for a, out in zip(ANALYSES, result["analyses"]):
            if a["type"] == "histogram" and OLDEST in a["edges"]:
                assert OLDEST in out["edges_dropped"]["edges"]


@pytest.fixture(scope="module")
def table_one_job(study):
    """The table ones with the node default rounding (5), and the pooled linked records."""
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": TABLE_ONES}
    result = local_study(station_paths(study)).explore(spec, evaluate=True).to_json()
    return result, linked_records(study, result), spec


def test_table_one_merges_small_levels_and_tests_only_released_numbers(table_one_job):
    """Small levels of the stratifier and of a row are merged into <other>, their labels never appear, and no
    withheld count of the table can be recomputed (the auditor); a p-value is computed from the released numbers
    only (rounded counts, means and SDs on their grid), and withheld when one of them is, since a test on the
    exact counts could give a withheld cell back."""
    from scipy import stats

    result, linked, spec = table_one_job
    assert result["disclosure_control"]["rounding_base"] == 5
    assert_protected(released_only(result), spec, strict=False)
    counts = linked["diagnosis_month"].map(label).value_counts()
    small = [lab for lab, n in counts.items() if n < K]
    text = list(walk_strings(released_only(result)))
    assert small and not [lab for lab in small if any(lab in s for s in text)]
    withheld = released = 0
    for a, out in zip(TABLE_ONES, result["analyses"]):
        by = released_level(linked[a["by"]["column"]])
        assert {g["level"] for g in out["groups"]} == set(by)
        tested = [i for i, g in enumerate(out["groups"]) if g["level"] != MISSING]
        for row in out["rows"]:
            test = row["test"]
            if row["kind"] == "categorical":
                assert {lv["level"] for lv in row["levels"]} == set(released_level(linked[row["variable"]]))
                table = [[lv["groups"][i]["n"] for i in tested] for lv in row["levels"] if lv["level"] != MISSING]
                if any(x is None for r in table for x in r):
                    assert test["p_value"] is None and "withheld" in test, (a["by"], row["variable"])
                    withheld += 1
                else:  # scipy on the released (rounded) counts; Yates' correction for a 2 x 2 table, as scipy's default
                    assert test["p_value"] == pytest.approx(stats.chi2_contingency(np.array(table)).pvalue, rel=5e-4)
                    released += 1
                continue
            groups = [row["groups"][i] for i in tested]
            if any(g.get("mean") is None for g in groups):
                assert test["p_value"] is None and "withheld" in test, (a["by"], row["variable"])
                withheld += 1
                continue
            n, mean, sd = ([g[key] for g in groups] for key in ("n", "mean", "sd"))
            if len(groups) == 2:
                want = stats.ttest_ind_from_stats(mean[0], sd[0], n[0], mean[1], sd[1], n[1], equal_var=False).pvalue
            else:  # the textbook one-way ANOVA from group sizes, means and SDs
                total, grand = sum(n), sum(x * m for x, m in zip(n, mean)) / sum(n)
                between = sum(x * (m - grand) ** 2 for x, m in zip(n, mean)) / (len(n) - 1)
                within = sum((x - 1) * sd_ ** 2 for x, sd_ in zip(n, sd)) / (total - len(n))
                want = stats.f.sf(between / within, len(n) - 1, total - len(n))
            assert test["p_value"] == pytest.approx(want, rel=5e-4), (a["by"], row["variable"])
            released += 1
    assert withheld and released  # both outcomes of the rule occur in this job
    assert "<other>" in {g["level"] for g in result["analyses"][0]["groups"]}  # the small months, merged


def _km_groups(a, linked):
    """The pooled records of each released group of a Kaplan-Meier analysis."""
    if a.get("by") is None:
        return {"all": linked}
    levels = released_level(linked[a["by"]["column"]])
    return {lab: linked[levels == lab] for lab in levels.unique() if lab != MISSING}


def test_kaplan_meier_counts_times_and_at_risk(job):
    result, linked = job
    points = withheld = 0
    for a, out in zip(ANALYSES, result["analyses"]):
        if a["type"] != "kaplan_meier":
            continue
        pooled = _km_groups(a, linked)
        for g in out["groups"]:
            data = pooled[g["group"]]
            t, e = data["survival_days"].to_numpy(float), data["vital_status"].to_numpy(float)
            why = {c["cell"]["status"]: c["reason"] for c in out["suppressed"] if c["cell"]["group"] == g["group"]}
            assert set(why) == {s for s, key in (("all", "n"), ("event", "events"), ("censored", "censored"))
                                if g[key] is None}, (g, why)   # every withheld count says why, and only those
            withheld += len(why)
            for what, true in (("events", int(e.sum())), ("censored", int((1 - e).sum()))):
                if g[what] is not None:  # a zero only for the whole cohort (it says nothing about a group)
                    assert g[what] >= K or (g[what] == 0 and a.get("by") is None), (a, g["group"], what)
                    assert true >= K or (true == 0 and a.get("by") is None), (a, g["group"], what, true)
            previous = 0.0
            for p in g["curve"]:
                assert p["at_risk"] % 5 == 0 and abs(p["at_risk"] - (t >= p["time"]).sum()) <= 2
                assert (t >= p["time"]).sum() >= K
                assert ((t > previous) & (t <= p["time"]) & (e == 1)).sum() >= K, (g["group"], previous, p["time"])
                previous = p["time"]
                points += 1
            if not a.get("times"):  # the default: a fixed grid, never a data-derived time
                assert {p["time"] for p in g["curve"]} <= DEFAULT_GRID
                assert t.max() not in {p["time"] for p in g["curve"]} - DEFAULT_GRID
    assert points > 0 and withheld > 0


# -------------------------------------------------------------------------------------------------
# (d) ACRO as an oracle, on the exact job
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def acro_checker():
    import acro  # a test dependency (pyproject's test extra): missing, the oracle tests fail rather than skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checker = acro.ACRO(suppress=True)
    assert checker.config["safe_threshold"] == K and checker.config["survival_safe_threshold"] == K
    return checker


def _last_outcome(checker):
    return list(checker.results.results.values())[-1].outcome


def test_acro_passes_every_interior_cell_lancelot_releases(study, jobs, acro_checker):
    """The pooled crosstab through ACRO (threshold 10, zeros disclosive): each released interior cell is "ok".

    Margins are not compared: ACRO recomputes them after suppressing. The pooled labels are the
    released levels (categories with fewer than k linked patients merged into <other>, missing as
    <missing>), so both tables have the same cells. A level nobody in the cohort has (a layer of
    <missing> when nothing is missing) is not a row of ACRO's table: lancelot may show it only as 0.
    """
    exact = jobs["exact"]
    linked = linked_records(study, exact)
    compared = 0
    for a, out in zip(ANALYSES, exact["analyses"]):
        if a["type"] != "crosstab":
            continue
        cols = [x["column"] for x in a["variables"]]
        series = [released_level(linked[c]).rename(c) for c in cols]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = acro_checker.crosstab(series[0], series[1] if len(cols) == 2 else [series[1], series[2]])
        outcome = _last_outcome(acro_checker)
        for layer in out.get("layers") or [out]:
            for cell in layer["table"]:
                if cell["count"] is None:
                    continue
                row = cell[cols[0]]
                col = cell[cols[1]] if len(cols) == 2 else (cell[cols[1]], layer[cols[2]])
                if row not in outcome.index or col not in outcome.columns:
                    assert cell["count"] == 0, (a, cell)
                    continue
                assert outcome.loc[row, col] == "ok", (a["variables"], row, col, outcome.loc[row, col])
                assert cell["count"] == table.loc[row, col]
                compared += 1
    assert compared > 0  # an oracle that compared nothing vouches for nothing


def test_acro_survival_table_agrees_with_the_released_curve(study, jobs, acro_checker):
    """ACRO's surv_func gives no per-time verdict (the table is marked for review as a whole, and its
    own rounded curve is updated only once `survival_safe_threshold` records have left the risk
    set). What maps: at least that many records leave ACRO's (statsmodels') risk set between any
    two of lancelot's released times, and the survival there is ACRO's estimate."""
    exact = jobs["exact"]
    linked = linked_records(study, exact)
    threshold = acro_checker.config["survival_safe_threshold"]
    points = 0
    for a, out in zip(ANALYSES, exact["analyses"]):
        if a["type"] != "kaplan_meier":
            continue
        pooled = _km_groups(a, linked)
        for g in out["groups"]:
            data = pooled[g["group"]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = acro_checker.surv_func(data["survival_days"], data["vital_status"], output="table")
            times, risk = table.index.to_numpy(float), table["num at risk"].to_numpy(float)

            def at_risk_after(t, times=times, risk=risk, n=data):
                later = np.flatnonzero(times > t)
                return float(len(n)) if t <= 0 else (risk[later[0]] if len(later) else 0.0)

            previous = 0.0
            for p in g["curve"]:
                assert at_risk_after(previous) - at_risk_after(p["time"]) >= threshold
                before = np.flatnonzero(times <= p["time"])
                surv = float(table["Surv prob"].iloc[before[-1]]) if len(before) else 1.0
                assert p["survival"] == pytest.approx(surv, rel=5e-4)
                previous = p["time"]
                points += 1
    assert points > 0


def test_means_one_record_could_dominate_are_withheld_where_acro_flags_them(tmp_path, acro_checker):
    """One linked patient with 250,000 GP visits among about 1,800 with a handful: the mean of any cell holding
    that patient is about its value / n. ACRO's dominance and p% rules flag such a cell on the pooled records;
    lancelot, which sees only the cell's sums, withholds every mean and SD of the column in the job and its
    correlations (from the bound sqrt(2 sum x^2) on the two largest values), while a usual column (BMI) that
    ACRO passes is released as before."""
    from helpers import joined, recording_coordinator

    from lancelot.explore.protocol import STEPS as EXPLORE_STEPS
    from lancelot.explore.protocol import explore
    from lancelot.linkage.protocol import STEPS as LINK_STEPS

    study = make_study(tmp_path / "tail", patients=1500, seed=11)
    gp = pd.read_csv(study[GP])
    truth = pd.read_csv(study["truth_links"])
    extreme = truth.loc[truth.station == GP, "station_id"].iloc[0]
    gp["visits_tail"] = np.where(gp["patient_nr"] == extreme, 250000.0, gp["gp_visits"])
    gp.to_csv(tmp_path / "gp_1.csv", index=False)
    paths = {**station_paths(study), GP: tmp_path / "gp_1.csv"}
    by = {"station": REG, "column": "surgery"}
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [
        {"type": "summary", "variable": {"station": GP, "column": "visits_tail"}, "by": by},
        {"type": "summary", "variable": {"station": GP, "column": "bmi"}, "by": by},
        {"type": "correlation", "variables": [{"station": GP, "column": "visits_tail"}, {"station": GP, "column": "bmi"},
                                              {"station": REG, "column": "age_at_diagnosis"}]}]}
    coord, _ = recording_coordinator({**LINK_STEPS, **EXPLORE_STEPS}, paths, {s: {"allow_evaluate": True} for s in (REG, GP)})
    result = explore(coord, spec, evaluate=True)
    tail, bmi, corr = result["analyses"]
    linked = joined({**study, GP: paths[GP]}, result["links"], [REG, GP])
    assert linked["visits_tail"].max() == 250000.0    # the patient is in the cohort

    def acro_outcomes(column):
        data = linked.dropna(subset=[column, "surgery"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            acro_checker.crosstab(data["surgery"].astype(int).astype(str), pd.Series("all", index=data.index),
                                  values=data[column], aggfunc="mean")
        return _last_outcome(acro_checker)["all"]

    flagged = acro_outcomes("visits_tail")
    assert (flagged != "ok").any() and all("NK" in v or "PPercent" in v for v in flagged if v != "ok")
    for cell in [tail["overall"], *tail["by"]]:
        assert cell["mean"] is None and cell["sd"] is None and "dominance" in cell["withheld"]
    assert (acro_outcomes("bmi") == "ok").all()
    truth_means = linked.groupby(linked["surgery"].astype(int).astype(str))["bmi"].mean()
    for cell in bmi["by"]:
        assert "withheld" not in cell and cell["mean"] == pytest.approx(truth_means[cell["surgery"]], abs=0.2)
    r = corr["pearson_r"]
    assert r[0][1] is None and r[0][2] is None and r[1][2] is not None
    assert [w["pair"][0] for w in corr["withheld"]] == ["gp_1.visits_tail", "gp_1.visits_tail"]

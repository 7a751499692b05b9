"""Exploration: every released statistic equals pandas / lifelines on the records the linkage linked.

The main fixture runs with rounding off (each node's policy ``rounding_base`` 1), so released counts
must equal the pooled count exactly; magnitudes are released to 4 significant digits, so they must
lie within that rounding of the pooled value. Which counts are withheld is decided jointly for the
whole job (lancelot.explore.ledger): here every withheld count must say why, every count below k
must be withheld, and tests/test_disclosure.py audits that no withheld count can be recomputed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import check_moments, local_study, make_study, station_paths, with_columns
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from lancelot.explore.plan import COUNTS_CIPHER
from lancelot.runtime.errors import LancelotError
from lancelot.v6.local import LocalNetwork

REG, GP = "registry", "gp_1"
K = 10
SIG = 5e-4  # relative error of 4 significant digits
EXACT = {s: {"LANCELOT_ROUNDING_BASE": "1"} for s in (REG, GP, "gp_2")}  # node policies: no rounding


def v(station, column):
    return {"station": station, "column": column}


ANALYSES = [
    {"type": "count", "variable": v(REG, "stage")},
    {"type": "crosstab", "variables": [v(REG, "stage"), v(GP, "copd")]},
    {"type": "crosstab", "variables": [v(REG, "stage"), v(REG, "surgery")]},
    {"type": "summary", "variable": v(GP, "bmi"), "by": v(REG, "surgery"), "quantiles": [0.25, 0.5, 0.75],
     "range": [10, 50]},
    {"type": "summary", "variable": v(REG, "age_at_diagnosis"), "by": v(REG, "stage")},
    {"type": "histogram", "variable": v(REG, "age_at_diagnosis"), "edges": [40, 50, 60, 70, 80, 90]},
    {"type": "correlation", "variables": [v(REG, "age_at_diagnosis"), v(GP, "bmi"), v(REG, "who_ps"), v(GP, "medication_count")]},
    {"type": "missingness", "variables": [v(REG, "who_ps"), v(GP, "bmi"), v(GP, "smoking")]},
    {"type": "kaplan_meier", "time": v(REG, "survival_days"), "event": v(REG, "vital_status"), "by": v(GP, "copd"),
     "times": [90, 180, 365, 730, 1095]},
    {"type": "kaplan_meier", "time": v(REG, "survival_days"), "event": v(REG, "vital_status"), "by": v(REG, "stage"),
     "times": [90, 365, 730]},
    # table one by a registry treatment: rows at both stations (mean, median, 0/1, text with missing values)
    {"type": "table_one", "by": v(REG, "immunotherapy"), "variables": [
        v(REG, "age_at_diagnosis"), {**v(GP, "bmi"), "summary": "median", "range": [10, 50]},
        {**v(GP, "medication_count"), "kind": "numeric"}, v(GP, "copd"), v(GP, "smoking"), v(REG, "stage")]},
    # ... and by a GP column with three levels and missing values: every row at the other station
    {"type": "table_one", "by": v(GP, "smoking"), "variables": [
        v(REG, "age_at_diagnosis"), {**v(REG, "survival_days"), "summary": "median", "range": [0, 3650]},
        v(REG, "surgery"), v(REG, "who_ps"), {**v(REG, "histology"), "kind": "categorical"}]},
]
TABLE_ONES = [10, 11]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("explore"), patients=500, gp_stations=1, seed=5)


@pytest.fixture(scope="module")
def result(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": ANALYSES}
    return local_study(station_paths(study), station_env=EXACT).explore(spec, evaluate=True).to_json()


@pytest.fixture(scope="module")
def linked(study, result):
    """The reference: the registry and GP rows that the linkage actually linked, joined."""
    reg = pd.read_csv(study[REG])
    gp = pd.read_csv(study[GP])
    links = pd.DataFrame(result["links"])[[REG, GP]]
    return links.merge(reg, left_on=REG, right_on="record_id").merge(gp, left_on=GP, right_on="patient_nr")


def by_name(result, index):
    return result["analyses"][index]


def label(value):
    return "<missing>" if pd.isna(value) else str(int(value)) if isinstance(value, float) else str(value)


def check_count(got, true: int, where) -> None:
    """A released count equals the pooled one; a count 0 < c < k is never released."""
    if got is not None:
        assert got == true, where
    assert not 0 < true < K or got is None, where


def levels_of(series: pd.Series) -> dict[str, str]:
    """Each label's released level: itself with >= k linked patients, else <other> (missing stays)."""
    counts = series.map(label).value_counts()
    return {lab: (lab if lab == "<missing>" or c >= K else "<other>") for lab, c in counts.items()}


def released_level(series: pd.Series) -> pd.Series:
    return series.map(label).map(levels_of(series))


def test_four_rounds_and_the_cohort(result, linked):
    assert result["cost"]["rounds"] == 4
    assert result["cohort"]["records"] == len(linked)
    assert result["disclosure_control"]["rounding_base"] == 1


def test_count(result, linked):
    out = by_name(result, 0)
    ref = released_level(linked["stage"]).value_counts()
    assert {row["stage"] for row in out["table"]} == set(ref.index)  # labels only from the linked cohort
    for row in out["table"]:
        check_count(row["count"], int(ref.get(row["stage"], 0)), row)
    assert out["total"] == len(linked)
    withheld = {json.dumps(s["cell"], sort_keys=True) for s in out["suppressed"]}
    assert all(json.dumps({"stage": r["stage"]}, sort_keys=True) in withheld for r in out["table"] if r["count"] is None)


@pytest.mark.parametrize("index, a, b", [(1, "stage", "copd"), (2, "stage", "surgery")])
def test_crosstab_matches_pandas_with_suppression(result, linked, index, a, b):
    out = by_name(result, index)
    ra, rb = released_level(linked[a]), released_level(linked[b])
    ref = pd.crosstab(ra, rb)
    for r in out["table"]:
        true = int(ref.loc[r[a], r[b]]) if r[a] in ref.index and r[b] in ref.columns else 0
        check_count(r["count"], true, r)
        if true == 0 and ref.loc[r[a]].sum() > 0 and ref[r[b]].sum() > 0:
            assert r["count"] is None  # a zero inside non-empty margins (ACRO: zeros are disclosive)
    for r in out["row_totals"]:
        check_count(r["count"], int((ra == r[a]).sum()), r)
    for r in out["column_totals"]:
        check_count(r["count"], int((rb == r[b]).sum()), r)
    reasons = {json.dumps(s["cell"], sort_keys=True): s["reason"] for s in out["suppressed"]}
    for r in out["table"]:
        if r["count"] is None:
            assert reasons[json.dumps({a: r[a], b: r[b]}, sort_keys=True)].split(":")[0] in ("primary", "zero",
                                                                                             "secondary")


def _moments(x):
    x = x.dropna()
    return len(x), x.mean(), x.var(ddof=1)


def test_summary_across_stations(result, linked):
    out = by_name(result, 3)
    n, mean, var = _moments(linked["bmi"])
    assert out["overall"]["n"] == n
    check_count(out["overall"]["missing"], int(linked["bmi"].isna().sum()), "missing")
    check_moments(out["overall"], linked["bmi"], 1)
    groups = released_level(linked["surgery"])
    for g in out["by"]:
        n, mean, var = _moments(linked.loc[groups == g["surgery"], "bmi"])
        check_count(g["n"], n, g)
        if g["n"] is not None and n >= K:
            check_moments(g, linked.loc[groups == g["surgery"], "bmi"], 1)
    q = np.quantile(linked["bmi"].dropna(), [0.25, 0.5, 0.75])
    for got, want in zip(out["overall"]["quantiles"].values(), q):
        assert abs(got - want) <= 0.2 + 1e-9 + SIG * abs(want)  # one bin of the 200-bin histogram over [10, 50]


def test_summary_within_one_station_by_group(result, linked):
    out = by_name(result, 4)
    groups = released_level(linked["stage"])
    for g in out["by"]:
        n, mean, var = _moments(linked.loc[groups == g["stage"], "age_at_diagnosis"])
        check_count(g["n"], n, g)
        if g["n"] is not None and n >= K:
            check_moments(g, linked.loc[groups == g["stage"], "age_at_diagnosis"], 1)
        elif g["n"] is None:
            assert g["refused"].split(":")[0] in ("primary", "secondary")


def bin_count(values: pd.Series, label_: str) -> int:
    """The pooled count of a released bin label such as "[60, 70)", "(-inf, 60)" or "[80, 90]"."""
    lo_text, hi_text = label_[1:-1].split(", ")
    lo, hi = float(lo_text), float(hi_text)
    above = values > lo if label_[0] == "(" else values >= lo
    below = values <= hi if label_[-1] == "]" else values < hi
    return int((above & below).sum())


def test_histogram(result, linked):
    out = by_name(result, 5)
    age = linked["age_at_diagnosis"]
    assert [b["bin"] for b in out["bins"]][-1] == "missing"
    for b in out["bins"][:-1]:
        assert bin_count(age, b["bin"]) >= K  # bins are merged until each holds k
        check_count(b["count"], bin_count(age, b["bin"]), b)
    check_count(out["bins"][-1]["count"], int(age.isna().sum()), "missing")
    assert sum(bin_count(age, b["bin"]) for b in out["bins"][:-1]) == age.notna().sum()  # a partition
    for e in out.get("edges_dropped", {}).get("edges", []):
        assert e in [40, 50, 60, 70, 80, 90]


def test_correlation_pairwise_complete(result, linked):
    out = by_name(result, 6)
    cols = ["age_at_diagnosis", "bmi", "who_ps", "medication_count"]
    ref = linked[cols].corr()
    for i, a in enumerate(cols):
        for j, b in enumerate(cols):
            assert out["pearson_r"][i][j] == pytest.approx(ref.loc[a, b], rel=SIG, abs=1e-12)
            check_count(out["n"][i][j], int((linked[a].notna() & linked[b].notna()).sum()), (a, b))


def test_missingness(result, linked):
    out = by_name(result, 7)
    for row in out["table"]:
        check_count(row["missing"], int(linked[row["variable"]].isna().sum()), row)


@pytest.mark.parametrize("index, group_col", [(8, "copd"), (9, "stage")])
def test_kaplan_meier_and_logrank_match_lifelines(result, linked, index, group_col):
    check_kaplan_meier(by_name(result, index), linked, group_col, ANALYSES[index]["times"])


def test_kaplan_meier_by_a_gp_column_counted_on_elgamal_or_paillier_matches_lifelines(study):
    """The stratified curve's products are counts of 0/1 columns: the coordinator may take them on exponential
    ElGamal (lancelot.explore.ec_product) or Paillier; both give lifelines' curve, ElGamal with far fewer bytes.
    Forced onto ElGamal, the GP's own totals (a count) come from its indicators times its membership there too."""
    km = {"type": "kaplan_meier", "time": v(REG, "survival_days"), "event": v(REG, "vital_status"),
          "by": v(GP, "smoking"), "times": [90, 365, 730]}  # three levels and missing values
    count = {"type": "count", "variable": v(GP, "smoking")}  # GP totals: masked sums, or forced onto ElGamal
    # registry totals: from the Paillier job's constant, or (counts leave R's constant out) masked sums
    histogram = {"type": "histogram", "variable": v(REG, "age_at_diagnosis"), "edges": [40, 50, 60, 70, 80, 90]}
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [km, count, histogram]}
    outs = {}
    env = {s: {**EXACT[s], "LANCELOT_ALLOW_EVALUATE": "1"} for s in (REG, GP)}
    for cipher in ("ec", "paillier"):  # the coordinator node's setting
        with LocalNetwork("lancelot_exploration", station_paths(study), station_env=env,
                          coordinator_env={COUNTS_CIPHER: cipher}) as net:
            outs[cipher] = net.run({"stations": net.orgs, "spec": spec, "evaluate": True})
        reg, gp = pd.read_csv(study[REG]), pd.read_csv(study[GP])
        links = pd.DataFrame(outs[cipher]["links"])[[REG, GP]]
        data = links.merge(reg, left_on=REG, right_on="record_id").merge(gp, left_on=GP, right_on="patient_nr")
        check_kaplan_meier(outs[cipher]["analyses"][0], data, "smoking", km["times"])
        pooled = data["smoking"].map(label).value_counts()
        for row in outs[cipher]["analyses"][1]["table"]:
            check_count(row["count"], int(pooled.get(row["smoking"], 0)), row)
        for b in outs[cipher]["analyses"][2]["bins"][:-1]:
            check_count(b["count"], bin_count(data["age_at_diagnosis"], b["bin"]), b)
        assert outs[cipher]["cost"]["rounds"] == 4
    assert outs["ec"]["analyses"] == outs["paillier"]["analyses"]
    assert outs["ec"]["cost"]["bytes_from_stations"] < 0.8 * outs["paillier"]["cost"]["bytes_from_stations"]


def test_kaplan_meier_default_times_say_their_unit(study, tmp_path):
    """The default times are days: with a time column in years none can be released, and the note says why;
    in days the curve is released at them."""
    paths = with_columns(study, tmp_path, REG, years=lambda d: d["survival_days"] / 365.25)
    km = {"type": "kaplan_meier", "event": v(REG, "vital_status")}
    spec = {"linkage": json.loads(study["link_spec"].read_text()),
            "analyses": [{**km, "time": v(REG, "years")}, {**km, "time": v(REG, "survival_days")}]}
    years, days = local_study(station_paths(paths)).explore(spec).to_json()["analyses"]
    assert years["groups"] and not any(g["curve"] for g in years["groups"])
    assert "if the time column is not in days, set 'times' in its unit" in years["note"]
    assert any(g["curve"] for g in days["groups"]) and "set 'times'" not in days["note"]
    assert "91, 182, 365, 730, 1095 and 1826" in days["note"]


def check_kaplan_meier(out, linked, group_col, times):
    data = linked[linked[group_col].notna()]
    groups = released_level(data[group_col])
    for g in out["groups"]:
        sub = data[groups == g["group"]]
        kmf = KaplanMeierFitter().fit(sub["survival_days"], sub["vital_status"])
        check_count(g["n"], len(sub), g["group"])
        check_count(g["events"], int(sub["vital_status"].sum()), g["group"])
        previous = 0.0
        for point in g["curve"]:
            t = point["time"]
            at_risk = int((sub["survival_days"] >= t).sum())
            events_between = int(((sub["survival_days"] > previous) & (sub["survival_days"] <= t)
                                  & (sub["vital_status"] == 1)).sum())
            assert at_risk >= K and events_between >= K, (g["group"], t)  # released times are k events apart
            previous = t
            assert point["survival"] == pytest.approx(float(kmf.survival_function_at_times(t).iloc[0]), rel=SIG)
            ci = kmf.confidence_interval_survival_function_
            assert point["ci_lower"] == pytest.approx(float(ci[ci.index <= t].iloc[-1, 0]), rel=SIG)
            assert point["at_risk"] == 5 * int(np.floor(at_risk / 5 + 0.5))  # at-risk counts rounded to 5
        for w in g["times_withheld"]:
            assert w["time"] in times
    kept = data[groups.isin([g["group"] for g in out["groups"]])]
    ref = multivariate_logrank_test(kept["survival_days"], groups[kept.index], kept["vital_status"])
    assert out["logrank"]["statistic"] == pytest.approx(ref.test_statistic, rel=SIG)
    assert out["logrank"]["p_value"] == pytest.approx(ref.p_value, rel=SIG, abs=1e-300)


def test_one_station_alone_matches_pandas_on_all_records(study):
    """Default protections: counts rounded to a multiple of 5."""
    spec = {"analyses": [ANALYSES[0], ANALYSES[4], ANALYSES[5], ANALYSES[9]]}
    out = local_study({REG: study[REG]}).explore(spec).to_json()
    reg = pd.read_csv(study[REG])
    assert out["disclosure_control"]["rounding_base"] == 5

    def rounded(c):
        return 5 * int(np.floor(c / 5 + 0.5))

    assert out["cost"]["rounds"] == 1 and out["cohort"]["records"] == rounded(len(reg))
    counts = released_level(reg["stage"]).value_counts()
    for row in out["analyses"][0]["table"]:
        true = int(counts.get(row["stage"], 0))
        assert row["count"] is None or row["count"] == rounded(true)
        assert not 0 < true < K or row["count"] is None
    for g in out["analyses"][1]["by"]:
        if g["n"]:
            check_moments(g, reg.loc[released_level(reg["stage"]) == g["stage"], "age_at_diagnosis"], 5)


# -------------------------------------------------------------------------------------------------
# table one: against the tableone package and scipy on the pooled linked records
# -------------------------------------------------------------------------------------------------
def _released_frame(linked, a):
    """The pooled records with the released levels of the stratifier and of each categorical row (missing: NaN)."""
    frame = linked.copy()
    by = a["by"]["column"]
    frame["_by"] = released_level(frame[by]).replace("<missing>", np.nan)
    return frame


def _group_values(frame, column, level):
    rows = frame["_by"].isna() if level == "<missing>" else frame["_by"] == level
    return frame.loc[rows, column]


def _tableone(frame, row, nonnormal=False, categorical=False):
    """The tableone package on the pooled records: one variable by the released stratifier."""
    import warnings

    from tableone import TableOne

    column = row["variable"]
    data = frame[[column, "_by"]].copy()
    if categorical:
        data[column] = released_level(data[column]).replace("<missing>", np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = TableOne(data.dropna(subset=["_by"]), columns=[column], categorical=[column] if categorical else [],
                         nonnormal=[column] if nonnormal else [], groupby="_by", pval=True, include_null=False)
    return table


def _welch_or_anova_range(groups, values):
    """The p-values of Welch's t-test (two groups) or one-way ANOVA over every corner of the box of means and SDs
    that the documented grid allows around the pooled ones (helpers.mean_step): the released p must lie in it."""
    import itertools

    from helpers import mean_step
    from scipy import stats

    n = [len(x) for x in values]
    m = [x.mean() for x in values]
    sd = [x.std(ddof=1) for x in values]
    boxes = [((mi - mean_step(mi, si, ni, 1) / 2, mi + mean_step(mi, si, ni, 1) / 2),
              (si - mean_step(si, si, ni, 1) / 2, si + mean_step(si, si, ni, 1) / 2)) for ni, mi, si in zip(n, m, sd)]
    ps = []
    for corner in itertools.product(*[itertools.product(*box) for box in boxes]):
        means, sds = [c[0] for c in corner], [c[1] for c in corner]
        if len(n) == 2:
            ps.append(stats.ttest_ind_from_stats(means[0], sds[0], n[0], means[1], sds[1], n[1],
                                                 equal_var=False).pvalue)
        else:  # the textbook one-way ANOVA from group sizes, means and SDs
            total = sum(n)
            grand = sum(ni * mi for ni, mi in zip(n, means)) / total
            between = sum(ni * (mi - grand) ** 2 for ni, mi in zip(n, means)) / (len(n) - 1)
            within = sum((ni - 1) * si ** 2 for ni, si in zip(n, sds)) / (total - len(n))
            ps.append(stats.f.sf(between / within, len(n) - 1, total - len(n)))
    return min(ps), max(ps)


def _quantile_ok(values, q, got, width):
    """``got`` is within one histogram bin of a q-quantile of the pooled values (robust to ties and gaps)."""
    x = np.sort(values.dropna().to_numpy(float))
    return (x <= got + width + 1e-9).mean() >= q - 1e-12 and (x < got - width - 1e-9).mean() <= q + 1e-12


@pytest.mark.parametrize("index", TABLE_ONES)
def test_table_one_matches_tableone_and_scipy(result, linked, index):
    check_table_one(ANALYSES[index], by_name(result, index), linked)


def test_table_one_on_one_station_with_the_stratifier_beside_the_rows(study):
    """One station alone (its own sums, one round): the stratifier at the station of the rows, a median included."""
    a = {"type": "table_one", "by": v(REG, "immunotherapy"), "variables": [
        v(REG, "age_at_diagnosis"), {**v(REG, "survival_days"), "summary": "median", "range": [0, 3650]},
        v(REG, "stage"), v(REG, "surgery")]}
    out = local_study({REG: study[REG]}, station_env=EXACT).explore({"analyses": [a]}).to_json()
    assert out["cost"]["rounds"] == 1
    check_table_one(a, out["analyses"][0], pd.read_csv(study[REG]))


def check_table_one(a, out, linked):
    """A released table_one against the tableone package and scipy on the pooled records ``linked``."""
    from scipy import stats

    frame = _released_frame(linked, a)
    by_levels = released_level(linked[a["by"]["column"]])
    assert {g["level"] for g in out["groups"]} == set(by_levels)  # <missing> a column only when there are any
    for g in out["groups"]:
        check_count(g["n"], int((by_levels == g["level"]).sum()), g)
    assert out["overall"]["n"] == len(linked)
    group_n = {g["level"]: int((by_levels == g["level"]).sum()) for g in out["groups"]}
    tested = [g["level"] for g in out["groups"] if g["level"] != "<missing>"]
    assert [r["variable"] for r in out["rows"]] == [x["column"] for x in a["variables"]]
    for spec_row, row in zip(a["variables"], out["rows"]):
        column = row["variable"]
        values = linked[column]
        check_count(row["missing"], int(values.isna().sum()), (column, "missing"))
        if row["kind"] == "categorical":
            levels = released_level(values)
            assert {lv["level"] for lv in row["levels"]} == set(levels)
            for lv in row["levels"]:
                true = int((levels == lv["level"]).sum())
                check_count(lv["overall"]["n"], true, (column, lv["level"]))
                if lv["overall"]["n"] is not None:
                    assert lv["overall"]["percent"] == round(100 * true / len(linked), 1)
                for g in lv["groups"]:
                    true = int(((levels == lv["level"]) & (by_levels == g["level"])).sum())
                    check_count(g["n"], true, (column, lv["level"], g["level"]))
                    if g["n"] is not None:
                        assert g["percent"] == round(100 * true / group_n[g["level"]], 1)
            cells = [g["n"] for lv in row["levels"] if lv["level"] != "<missing>" for g in lv["groups"]
                     if g["level"] != "<missing>"]
            if None in cells:  # a test on exact counts could reveal a withheld one
                assert row["test"]["p_value"] is None and row["test"]["withheld"]
                continue
            ref = _tableone(frame, row, categorical=True).htest_table.loc[column]
            assert ref["Test"] == "Chi-squared"
            assert row["test"]["p_value"] == pytest.approx(ref["P-Value"], rel=SIG, abs=1e-300)
            continue
        assert spec_row.get("kind", "numeric") == "numeric" and row["kind"] == "numeric"
        check_count(row["n"], int(values.notna().sum()), (column, "n"))
        groups = {g["level"]: g for g in row["groups"]}
        per_group = {lv: _group_values(frame, column, lv).dropna() for lv in groups}
        for lv, g in groups.items():
            check_count(g["n"], len(per_group[lv]), (column, lv))
        if row["statistic"] == "mean (SD)":
            def moments(got, x):  # a table one shows mean (SD), no variance
                check_moments({**got, "variance": got["sd"] ** 2}, x, 1)

            moments(row["overall"], values)
            for lv, g in groups.items():
                if g.get("mean") is not None:
                    moments(g, per_group[lv])
            test = row["test"]
            if any(groups[lv].get("mean") is None for lv in tested):
                assert test["p_value"] is None and test["withheld"]
                continue
            ref = _tableone(frame, row).htest_table.loc[column]
            assert test["test"] == {"Welch’s T-test": "Welch's t-test", "One-way ANOVA": "one-way ANOVA"}[ref["Test"]]
            low, high = _welch_or_anova_range(tested, [per_group[lv] for lv in tested])
            assert low <= ref["P-Value"] <= high  # the exact p lies in the box, as a check of the box
            assert low * (1 - SIG) <= test["p_value"] <= high * (1 + SIG), (column, low, test["p_value"], high)
            continue
        width = (spec_row["range"][1] - spec_row["range"][0]) / 200  # medians from a private 200-bin histogram
        for entry, data in [(row["overall"], values.dropna())] + [(groups[lv], per_group[lv]) for lv in groups]:
            for key, value in (entry.get("quantiles") or {}).items():
                if value is not None:
                    assert _quantile_ok(data, float(key), value, width), (column, key, value)
                else:
                    assert not K / len(data) <= float(key) <= 1 - K / len(data) or len(data) < K
        edges = np.linspace(*spec_row["range"], 201)

        def binned(x, edges=edges):
            idx = np.searchsorted(edges, x, side="right")
            return np.where(x == edges[-1], len(edges) - 1, idx)

        ref = stats.kruskal(*[binned(per_group[lv].to_numpy(float)) for lv in tested])
        assert row["test"]["test"] == "Kruskal-Wallis"
        assert row["test"]["p_value"] == float(f"{ref.pvalue:.2g}")  # 2 significant digits
        raw = _tableone(frame, row, nonnormal=True).htest_table.loc[column]
        assert raw["Test"] == "Kruskal-Wallis" and abs(raw["P-Value"] - row["test"]["p_value"]) < 0.05


def test_table_one_kinds_and_its_report_client_and_cli_views(result, tmp_path, capsys):
    from lancelot.report import write_explore_report
    from lancelot.results import Exploration

    out = by_name(result, TABLE_ONES[1])
    kinds = {r["variable"]: (r["kind"], r["statistic"]) for r in out["rows"]}
    assert kinds == {"age_at_diagnosis": ("numeric", "mean (SD)"), "survival_days": ("numeric", "median [Q1, Q3]"),
                     "surgery": ("categorical", "n (%)"), "who_ps": ("categorical", "n (%)"),
                     "histology": ("categorical", "n (%)")}  # 0/1 and 0-4 scores are categorical without a kind
    frame = Exploration.from_json(result).table_one(out["name"])
    groups = [f"smoking = {g['level']}" for g in out["groups"]]
    assert list(frame.columns) == ["missing", "overall", *groups, "p-value", "test"]
    assert frame.loc[("n", ""), "overall"] == str(out["overall"]["n"])
    age = out["rows"][0]
    assert frame.loc[("age_at_diagnosis, mean (SD)", ""), "overall"] == \
        f"{age['overall']['mean']:.4g} ({age['overall']['sd']:.4g})"
    assert len(frame) == 1 + 2 + sum(len(r["levels"]) for r in out["rows"] if r["kind"] == "categorical")
    page = write_explore_report(result, tmp_path).read_text()
    assert page.count("<th>smoking = ") == len(groups) and "median [Q1, Q3]" in page
    assert "<th>stage \\ copd</th>" in page  # the stage x COPD crosstab as a grid
    Exploration.from_json(result).print_summary()
    printed = capsys.readouterr().out
    assert "survival_days, median [Q1, Q3]" in printed and "stage \\ copd" in printed


@pytest.mark.parametrize("analysis, message", [
    ({"type": "count", "variable": v(GP, "no_such_column")}, "unknown column"),
    ({"type": "summary", "variable": v(REG, "histology")}, "wrong type"),
    ({"type": "count", "variable": v(GP, "bmi")}, "fractional"),
    ({"type": "count", "variable": v(REG, "record_id")}, "identifier"),
    ({"type": "count", "variable": v(REG, "surname")}, "identifier"),
    ({"type": "count", "variable": v(REG, "diagnosis_date")}, "too many categories"),
    ({"type": "count", "variable": v("gp_9", "copd")}, "unknown station"),
    ({"type": "table_one", "by": v(REG, "immunotherapy"), "variables": [v(GP, "no_such_column")]},
     "station 'gp_1', column 'no_such_column': unknown column"),
    ({"type": "table_one", "by": v(REG, "diagnosis_date"), "variables": [v(GP, "bmi")]},
     "station 'registry', column 'diagnosis_date': too many categories"),
    ({"type": "table_one", "by": v(REG, "stage"), "variables": [v(GP, "bmi")]}, "more than max_categories=3"),
    ({"type": "table_one", "by": v(REG, "immunotherapy"), "variables": []}, "non-empty 'variables'"),
    ({"type": "table_one", "variables": [v(GP, "bmi")]}, "needs a stratifier"),
    ({"type": "table_one", "by": v(REG, "immunotherapy"), "variables": [{**v(GP, "bmi"), "summary": "median"}]},
     "station 'gp_1', column 'bmi': .*a median needs a 'range'"),
    ({"type": "table_one", "by": v(REG, "immunotherapy"), "variables": [{**v(REG, "stage"), "kind": "numeric"}]},
     "station 'registry', column 'stage': wrong type"),
])
def test_bad_input_is_refused_clearly(study, analysis, message):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [analysis]}
    if "more than max_categories=3" in message:
        spec["max_categories"] = 3  # the researcher may lower the ceiling: a 4-level stratifier is refused
    with pytest.raises(LancelotError, match=message):
        local_study(station_paths(study)).explore(spec)


def test_a_kaplan_meier_event_column_of_words_or_true_false(study, tmp_path):
    """yes/no is refused as an event indicator, naming it; True/False with missing cells is read as 1/0."""
    paths = with_columns(study, tmp_path, REG, said=lambda d: d["vital_status"].map({1: "yes", 0: "no"}),
                         flag=lambda d: d["vital_status"].astype(bool).astype(object).where(d.index % 7 > 0, None))
    km = {"type": "kaplan_meier", "time": v(REG, "survival_days"), "times": [365, 730]}
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [{**km, "event": v(REG, "said")}]}
    with pytest.raises(LancelotError, match="column 'said': the event indicator must be 0 .censored. or 1 .event."):
        local_study(station_paths(paths)).explore(spec)
    spec["analyses"] = [{**km, "event": v(REG, "flag")}]
    out = local_study(station_paths(paths)).explore(spec).to_json()["analyses"][0]
    assert out["groups"][0]["curve"], out


def test_a_table_one_stratifier_with_one_level_is_refused(study, tmp_path):
    reg = pd.read_csv(study[REG])
    reg["treated_everyone"] = 1
    reg.to_csv(tmp_path / "registry.csv", index=False)
    paths = {**station_paths(study), REG: tmp_path / "registry.csv"}
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [
        {"type": "table_one", "by": v(REG, "treated_everyone"), "variables": [v(GP, "bmi")]}]}
    with pytest.raises(LancelotError, match="station 'registry', column 'treated_everyone': .*at least two levels"):
        local_study(paths).explore(spec)


def _with_gp_columns(study, tmp_path, **columns):
    gp = pd.read_csv(study[GP])
    rows = np.arange(len(gp))
    gp = gp.assign(**{name: make(rows, gp) for name, make in columns.items()})
    gp.to_csv(tmp_path / "gp_1.csv", index=False)
    return {**station_paths(study), GP: tmp_path / "gp_1.csv"}


def test_a_column_counted_and_summarised_without_missing_values_and_true_false_columns(study, tmp_path):
    paths = _with_gp_columns(study, tmp_path, flag=lambda r, gp: r % 3 == 0,
                             flag_na=lambda r, gp: np.where(r % 7 == 0, "", np.where(r % 3 == 0, "True", "False")))
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [
        {"type": "count", "variable": v(GP, "flag")}, {"type": "summary", "variable": v(GP, "flag")},
        {"type": "missingness", "variables": [v(GP, "flag")]}, {"type": "summary", "variable": v(GP, "flag_na")}]}
    out = local_study(paths, station_env=EXACT).explore(spec, evaluate=True).to_json()
    gp = pd.read_csv(paths[GP])
    linked = pd.DataFrame(out["links"])[[GP]].merge(gp, left_on=GP, right_on="patient_nr")
    count, summary, missingness, summary_na = out["analyses"]
    assert {r["flag"]: r["count"] for r in count["table"]} == {"False": int((~linked["flag"]).sum()),
                                                                "True": int(linked["flag"].sum())}
    assert summary["overall"]["n"] == len(linked) and summary["overall"]["missing"] == 0
    assert missingness["table"][0]["missing"] == 0 and missingness["table"][0]["share_missing"] == 0.0
    values = linked["flag_na"].dropna().astype(float)
    assert summary_na["overall"]["n"] == len(values) and summary_na["overall"]["missing"] == len(linked) - len(values)
    check_moments(summary_na["overall"], values, base=1)


@pytest.mark.parametrize("column, message", [
    (lambda r, gp: gp["bmi"].map(lambda x: str(x).replace(".", ",")), "decimal commas"),
    (lambda r, gp: np.where(r % 9 == 0, "?", gp["bmi"].astype(str)), "some are text, such as a marker for missing"),
])
def test_numbers_stored_as_text_are_explained(study, tmp_path, column, message):
    paths = _with_gp_columns(study, tmp_path, bmi_text=column)
    spec = {"linkage": json.loads(study["link_spec"].read_text()),
            "analyses": [{"type": "summary", "variable": v(GP, "bmi_text")}]}
    with pytest.raises(LancelotError, match=f"station 'gp_1', column 'bmi_text': wrong type.*{message}"):
        local_study(paths).explore(spec)
    spec["analyses"] = [{"type": "count", "variable": v(GP, "BMI")}]
    with pytest.raises(LancelotError, match="did you mean 'bmi'"):
        local_study(paths).explore(spec)


def test_a_station_linked_to_no_one_is_named_when_the_cohort_is_too_small(study3):
    gp2 = pd.read_csv(study3["gp_2"], dtype=str)
    spec = {"linkage": json.loads(study3["link_spec"].read_text()), "analyses": [{"type": "count",
                                                                                  "variable": v(GP, "smoking")}]}
    date_column = next(f["columns"]["gp_2"] for f in spec["linkage"]["fields"] if f["kind"] == "date")
    surname = next(f["columns"]["gp_2"] for f in spec["linkage"]["fields"] if f["kind"] == "string")
    folder = study3["gp_2"].parent / "nobody"
    folder.mkdir(exist_ok=True)
    gp2.assign(**{date_column: "01-01-1900", surname: "Zz" + gp2[surname]}).to_csv(folder / "gp_2.csv", index=False)
    with pytest.raises(LancelotError, match=r"fewer than 10 records of the hub 'registry' are linked to station\(s\) "
                                            r"\['gp_2'\]"):
        local_study({**station_paths(study3), "gp_2": folder / "gp_2.csv"}).explore(spec)


def test_a_cohort_below_the_minimum_is_refused(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [ANALYSES[0]]}
    with pytest.raises(LancelotError, match="fewer than 100000 records"):
        local_study(station_paths(study)).explore(spec, min_cell_count=100000)


def test_node_floor_raises_the_minimum(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [ANALYSES[0]]}
    out = local_study(station_paths(study), station_env={GP: {"LANCELOT_MIN_CELL_COUNT": "60"}}).explore(spec).to_json()
    assert out["disclosure_control"]["min_cell_count"] == 60
    assert all(r["count"] is None or r["count"] == 0 or r["count"] >= 60 for r in out["analyses"][0]["table"])


@pytest.fixture(scope="module")
def study3(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("explore3"), patients=500, gp_stations=2, seed=8)


def test_registry_with_two_gp_stations(study3):
    G2 = "gp_2"
    spec = {"linkage": json.loads(study3["link_spec"].read_text()), "analyses": [
        {"type": "crosstab", "variables": [v(GP, "copd"), v(G2, "diabetes")]},
        {"type": "crosstab", "variables": [v(REG, "stage"), v(G2, "smoking")]},
        {"type": "summary", "variable": v(G2, "bmi"), "by": v(GP, "copd")},
        {"type": "crosstab", "variables": [v(REG, "stage"), v(REG, "surgery"), v(GP, "copd")]},
        {"type": "correlation", "variables": [v(GP, "bmi"), v(G2, "bmi")]},
    ]}
    out = local_study(station_paths(study3), station_env=EXACT).explore(spec, evaluate=True).to_json()
    assert out["cost"]["rounds"] == 4
    reg, gp1, gp2 = (pd.read_csv(study3[s]) for s in (REG, GP, G2))
    links = pd.DataFrame(out["links"])
    both = links[[REG, GP]].dropna().merge(links[[REG, G2]].dropna(), on=REG)  # cohort: linked to all stations
    data = (both.merge(reg, left_on=REG, right_on="record_id")
            .merge(gp1.add_suffix("_1"), left_on=GP, right_on="patient_nr_1")
            .merge(gp2.add_suffix("_2"), left_on=G2, right_on="patient_nr_2"))
    assert out["cohort"]["records"] == len(data)

    def check_table(table, cols, frame):
        for r in table:
            mask = np.ones(len(frame), bool)
            for key, col in cols.items():
                mask &= (frame[col].map(label) == r[key]).to_numpy()
            if r["count"] is not None:  # withheld cells are covered by the suppression tests
                assert r["count"] == int(mask.sum()), r

    check_table(out["analyses"][0]["table"], {"copd": "copd_1", "diabetes": "diabetes_2"}, data)
    check_table(out["analyses"][1]["table"], {"stage": "stage", "smoking": "smoking_2"}, data)
    released = [r for r in out["analyses"][0]["table"] if r["count"] is not None]
    assert sum(r["count"] for r in released) > 0.8 * len(data)
    summ = out["analyses"][2]
    n, mean, var = _moments(data["bmi_2"])
    assert summ["overall"]["n"] == n
    check_moments(summ["overall"], data["bmi_2"], 1)
    for g in summ["by"]:
        if g.get("mean") is not None:
            check_moments(g, data.loc[data["copd_1"].map(label) == g["copd"], "bmi_2"], 1)
    for layer in out["analyses"][3]["layers"]:
        frame = data[data["copd_1"].map(label) == layer["copd"]]
        check_table(layer["table"], {"stage": "stage", "surgery": "surgery"}, frame)
    r = out["analyses"][4]["pearson_r"][0][1]
    assert r == pytest.approx(data[["bmi_1", "bmi_2"]].corr().iloc[0, 1], rel=SIG)


def test_products_of_two_gp_stations_take_three_rounds_and_match_pandas(study3):
    """Both GP stations partner the registry, so the registry holds both shares' masks: the last Beaver term
    is local there, and the job ends after round 3 (the registry's columns take no part)."""
    G2 = "gp_2"
    spec = {"linkage": json.loads(study3["link_spec"].read_text()), "analyses": [
        {"type": "crosstab", "variables": [v(GP, "copd"), v(G2, "smoking")]},
        {"type": "summary", "variable": v(G2, "bmi"), "by": v(GP, "diabetes")}]}
    out = local_study(station_paths(study3), station_env=EXACT).explore(spec, evaluate=True).to_json()
    assert out["cost"]["rounds"] == 3
    links = pd.DataFrame(out["links"])
    both = links[[REG, GP]].dropna().merge(links[[REG, G2]].dropna(), on=REG)
    data = (both.merge(pd.read_csv(study3[GP]).add_suffix("_1"), left_on=GP, right_on="patient_nr_1")
            .merge(pd.read_csv(study3[G2]).add_suffix("_2"), left_on=G2, right_on="patient_nr_2"))
    released = 0
    for r in out["analyses"][0]["table"]:
        if r["count"] is not None:
            true = int(((data["copd_1"].map(label) == r["copd"]) & (data["smoking_2"].map(label) == r["smoking"])).sum())
            assert r["count"] == true, r
            released += 1
    assert released >= 3
    for g in out["analyses"][1]["by"]:
        if g.get("mean") is not None:
            check_moments(g, data.loc[data["diabetes_1"].map(label) == g["diabetes"], "bmi_2"], 1)


def test_three_way_crosstab_with_one_variable_at_each_station(study3):
    G2 = "gp_2"
    spec = {"linkage": json.loads(study3["link_spec"].read_text()), "analyses": [
        {"type": "crosstab", "variables": [v(REG, "stage"), v(GP, "copd"), v(G2, "diabetes")]},
        {"type": "count", "variable": v(REG, "stage")},
    ]}
    out = local_study(station_paths(study3), station_env=EXACT).explore(spec, evaluate=True).to_json()
    assert out["cost"]["rounds"] == 5  # one extra round for the chained three-station count
    reg, gp1, gp2 = (pd.read_csv(study3[s]) for s in (REG, GP, G2))
    links = pd.DataFrame(out["links"])
    both = links[[REG, GP]].dropna().merge(links[[REG, G2]].dropna(), on=REG)
    data = (both.merge(reg, left_on=REG, right_on="record_id")
            .merge(gp1.add_suffix("_1"), left_on=GP, right_on="patient_nr_1")
            .merge(gp2.add_suffix("_2"), left_on=G2, right_on="patient_nr_2"))
    released = 0
    for layer in out["analyses"][0]["layers"]:
        frame = data[data["diabetes_2"].map(label) == layer["diabetes"]]
        ref = pd.crosstab(frame["stage"].map(label), frame["copd_1"].map(label))
        for r in layer["table"]:
            true = int(ref.loc[r["stage"], r["copd"]]) if r["stage"] in ref.index and r["copd"] in ref.columns else 0
            check_count(r["count"], true, r)
            released += r["count"] or 0
    assert released > 0  # a sparse three-way table: many cells are withheld, the released ones are exact


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7])
def test_closed_form_chi_square_tail_matches_scipy(dof):
    from scipy import stats

    from lancelot.tails import chi2_sf

    for x in (0.01, 0.5, 1.0, 3.84, 10.0, 40.0, 120.0):
        assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


def test_crosstab_grids_lay_out_cells_margins_and_layers(tmp_path):
    """The report's and CLI's grid of a released crosstab: rows of the first variable, columns of the second, margins
    in the last column and row, a withheld count as a dash; a three-way table gives one grid per layer."""
    from lancelot.explore.tables import WITHHELD, crosstab_grids
    from lancelot.report import write_explore_report

    def layer(c, cells, rows, cols, total):
        return {"table": [{"a": r, "b": k, "count": n} for (r, k), n in cells.items()],
                "row_totals": [{"a": r, "count": n} for r, n in rows.items()],
                "column_totals": [{"b": k, "count": n} for k, n in cols.items()], "total": total, "c": c}

    three = {"name": "t", "type": "crosstab", "variables": ["s1.a", "s2.b", "s3.c"], "layer_variable": "c", "layers": [
        layer("c1", {("x", "u"): 20, ("x", "v"): None, ("y", "u"): 15, ("y", "v"): None}, {"x": 31, "y": 40},
              {"u": 35, "v": 36}, 71),
        layer("c2", {("x", "u"): 12, ("x", "v"): 30, ("y", "u"): 0, ("y", "v"): 11}, {"x": 42, "y": 11},
              {"u": 12, "v": 41}, 53)]}
    grids = crosstab_grids(three)
    assert [title for title, _, _ in grids] == ["c = c1", "c = c2"]
    assert grids[0][1] == ["a \\ b", "u", "v", "total"]
    assert grids[0][2] == [["x", "20", WITHHELD, "31"], ["y", "15", WITHHELD, "40"], ["total", "35", "36", "71"]]
    assert grids[1][2][1] == ["y", "0", "11", "11"]
    two = {"name": "t", "type": "crosstab", "variables": ["s1.a", "s2.b"],
           **{k: v for k, v in three["layers"][1].items() if k != "c"}}
    ((title, columns, rows),) = crosstab_grids(two)
    assert title == "" and rows[-1] == ["total", "12", "41", "53"]
    result = {"analyses": [three], "cohort": {"records": 124, "definition": "test"},
              "disclosure_control": {"rule": "test"}, "cost": {}}
    page = write_explore_report(result, tmp_path).read_text()
    assert page.count("<caption>c = c") == 2 and page.count("class='withheld'") == 2


@pytest.mark.parametrize("seed", range(4))
def test_closed_form_table_one_tests_match_scipy(seed):
    """The table one's tests (no scipy in the images) against scipy on random groups: Welch, ANOVA, chi-square
    (Yates for 2 x 2) and Kruskal-Wallis on binned values (ties within a bin)."""
    from scipy import stats

    from lancelot.explore.significance import anova, chi_square, kruskal_binned, welch_t

    rng = np.random.default_rng(seed)
    groups = [rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 3), int(rng.integers(5, 300))) for _ in range(4)]
    summary = [(len(g), g.mean(), g.std(ddof=1)) for g in groups]
    welch = welch_t(*[list(x) for x in zip(*summary[:2])])
    assert welch["p_value"] == pytest.approx(stats.ttest_ind(*groups[:2], equal_var=False).pvalue, rel=1e-9)
    assert anova(*[list(x) for x in zip(*summary)])["p_value"] == pytest.approx(stats.f_oneway(*groups).pvalue,
                                                                                rel=1e-8, abs=1e-300)
    for shape in ((2, 2), (3, 4), (2, 5)):
        table = rng.integers(1, 60, size=shape)
        assert chi_square(table)["p_value"] == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-9)
    edges = np.linspace(-4, 4, 41)
    binned = [np.searchsorted(edges, g, side="right") for g in groups]
    counts = np.array([np.bincount(b, minlength=len(edges) + 1) for b in binned])
    assert kruskal_binned(counts)["p_value"] == pytest.approx(stats.kruskal(*binned).pvalue, rel=1e-9, abs=1e-300)

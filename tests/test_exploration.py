"""Exploration: every released statistic equals pandas / lifelines on the records the linkage linked."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import make_study, station_paths
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from lancelot.cli import run_local
from lancelot.explore.suppression import suppress_table
from lancelot.runtime.errors import LancelotError

REG, GP = "registry", "gp_1"
K = 10


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
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("explore"), patients=500, gp_stations=1, seed=5)


@pytest.fixture(scope="module")
def result(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": ANALYSES}
    return run_local("explore", station_paths(study), {"spec": spec, "evaluate": True}, evaluate=True)


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


def released(count):
    return count if count == 0 or count >= K else None


def test_four_rounds_and_the_cohort(result, linked):
    assert result["cost"]["rounds"] == 4
    assert result["cohort"]["records"] == len(linked)


def test_count(result, linked):
    out = by_name(result, 0)
    ref = linked["stage"].map(label).value_counts()
    for row in out["table"]:
        assert row["count"] == released(int(ref.get(row["stage"], 0)))
    assert out["total"] == len(linked)


@pytest.mark.parametrize("index, a, b", [(1, "stage", "copd"), (2, "stage", "surgery")])
def test_crosstab_matches_pandas_with_suppression(result, linked, index, a, b):
    out = by_name(result, index)
    ref = pd.crosstab(linked[a].map(label), linked[b].map(label))
    rows = list(dict.fromkeys(r[a] for r in out["table"]))  # the released order (tie-breaks depend on it)
    cols = list(dict.fromkeys(r[b] for r in out["table"]))
    counts = np.array([[ref.loc[r, c] if r in ref.index and c in ref.columns else 0 for c in cols] for r in rows])
    hidden, _ = suppress_table(counts, K)
    for r in out["table"]:
        i, j = rows.index(r[a]), cols.index(r[b])
        assert r["count"] == (None if hidden[i, j] else counts[i, j])
    # no released line leaves exactly one withheld cell (it could be recomputed from the margin)
    for i, row_total in enumerate(out["row_totals"]):
        line = [x["count"] for x in out["table"] if x[a] == rows[i]]
        if row_total["count"] is not None:
            assert line.count(None) != 1


def test_suppression_rules_directly():
    counts = np.array([[50, 3, 40], [30, 25, 60]])
    hidden, reasons = suppress_table(counts, 10)
    assert hidden[0, 1]  # primary
    assert hidden[:2, 1].sum() == 2 and hidden[0, :3].sum() == 2  # secondary in its row and column
    assert any(r["reason"].startswith("secondary") for r in reasons)
    for line in list(hidden) + list(hidden.T):
        assert line.sum() != 1


def _moments(x):
    x = x.dropna()
    return len(x), x.mean(), x.var(ddof=1)


def test_summary_across_stations(result, linked):
    out = by_name(result, 3)
    n, mean, var = _moments(linked["bmi"])
    assert out["overall"]["n"] == n and out["overall"]["missing"] == linked["bmi"].isna().sum()
    assert out["overall"]["mean"] == pytest.approx(mean, rel=1e-9)
    assert out["overall"]["variance"] == pytest.approx(var, rel=1e-9)
    for g in out["by"]:
        n, mean, var = _moments(linked.loc[linked["surgery"].map(label) == g["surgery"], "bmi"])
        if n == 0:
            assert g["n"] == 0
        elif n >= K:
            assert g["n"] == n and g["mean"] == pytest.approx(mean, rel=1e-9)
            assert g["variance"] == pytest.approx(var, rel=1e-9)
    q = np.quantile(linked["bmi"].dropna(), [0.25, 0.5, 0.75])
    for got, want in zip(out["overall"]["quantiles"].values(), q):
        assert abs(got - want) <= 0.2 + 1e-9  # one bin of the 200-bin histogram over [10, 50]


def test_summary_within_one_station_by_group(result, linked):
    out = by_name(result, 4)
    for g in out["by"]:
        n, mean, var = _moments(linked.loc[linked["stage"].map(label) == g["stage"], "age_at_diagnosis"])
        if g["n"] == 0:
            assert n == 0
        elif g["n"] is not None:
            assert g["n"] == n and g["mean"] == pytest.approx(mean, rel=1e-9)
            assert g["variance"] == pytest.approx(var, rel=1e-9)
        else:
            assert n < K or "secondary" in g["refused"]


def test_histogram(result, linked):
    out = by_name(result, 5)
    age = linked["age_at_diagnosis"]
    edges = [40, 50, 60, 70, 80, 90]
    inner, _ = np.histogram(age, bins=edges)
    ref = [int((age < 40).sum()), *inner.tolist(), int((age > 90).sum()), int(age.isna().sum())]
    got = [b["count"] for b in out["bins"]]
    hidden = [g is None for g in got]
    assert [c for c, h in zip(ref, hidden) if not h] == [g for g in got if g is not None]
    assert all(c < K or (h and "secondary" in json.dumps(out["suppressed"])) for c, h in zip(ref, hidden) if h)


def test_correlation_pairwise_complete(result, linked):
    out = by_name(result, 6)
    cols = ["age_at_diagnosis", "bmi", "who_ps", "medication_count"]
    ref = linked[cols].corr()
    for i, a in enumerate(cols):
        for j, b in enumerate(cols):
            assert out["pearson_r"][i][j] == pytest.approx(ref.loc[a, b], rel=1e-9, abs=1e-12)
            assert out["n"][i][j] == int((linked[a].notna() & linked[b].notna()).sum())


def test_missingness(result, linked):
    out = by_name(result, 7)
    for row in out["table"]:
        assert row["missing"] == released(int(linked[row["variable"]].isna().sum()))


@pytest.mark.parametrize("index, group_col", [(8, "copd"), (9, "stage")])
def test_kaplan_meier_and_logrank_match_lifelines(result, linked, index, group_col):
    out = by_name(result, index)
    data = linked[linked[group_col].notna()]
    for g in out["groups"]:
        sub = data[data[group_col].map(label) == g["group"]]
        kmf = KaplanMeierFitter().fit(sub["survival_days"], sub["vital_status"])
        assert g["n"] == len(sub) and g["events"] == int(sub["vital_status"].sum())
        for point in g["curve"]:
            at_risk = int((sub["survival_days"] >= point["time"]).sum())
            if point["survival"] is None:
                assert at_risk < K
                continue
            assert point["survival"] == pytest.approx(float(kmf.survival_function_at_times(point["time"]).iloc[0]),
                                                      rel=1e-9)
            ci = kmf.confidence_interval_survival_function_
            lower = float(ci[ci.index <= point["time"]].iloc[-1, 0])
            assert point["ci_lower"] == pytest.approx(lower, rel=1e-6)
            assert point["at_risk"] == at_risk
    kept = data[data[group_col].map(label).isin([g["group"] for g in out["groups"]])]
    ref = multivariate_logrank_test(kept["survival_days"], kept[group_col].map(label), kept["vital_status"])
    assert out["logrank"]["statistic"] == pytest.approx(ref.test_statistic, rel=1e-7)
    assert out["logrank"]["p_value"] == pytest.approx(ref.p_value, rel=1e-6, abs=1e-300)


def test_one_station_alone_matches_pandas_on_all_records(study):
    spec = {"analyses": [ANALYSES[0], ANALYSES[4], ANALYSES[5], ANALYSES[9]]}
    out = run_local("explore", {REG: study[REG]}, {"spec": spec})
    reg = pd.read_csv(study[REG])
    assert out["cost"]["rounds"] == 1 and out["cohort"]["records"] == len(reg)
    counts = reg["stage"].map(label).value_counts()
    for row in out["analyses"][0]["table"]:
        assert row["count"] == released(int(counts.get(row["stage"], 0)))
    for g in out["analyses"][1]["by"]:
        if g["n"]:
            assert g["mean"] == pytest.approx(reg.loc[reg["stage"] == g["stage"], "age_at_diagnosis"].mean(), rel=1e-9)


@pytest.mark.parametrize("analysis, message", [
    ({"type": "count", "variable": v(GP, "no_such_column")}, "unknown column"),
    ({"type": "summary", "variable": v(REG, "histology")}, "wrong type"),
    ({"type": "count", "variable": v(GP, "bmi")}, "fractional"),
    ({"type": "count", "variable": v(REG, "record_id")}, "identifier"),
    ({"type": "count", "variable": v(REG, "surname")}, "identifier"),
    ({"type": "count", "variable": v(REG, "diagnosis_date")}, "too many categories"),
    ({"type": "count", "variable": v("gp_9", "copd")}, "unknown station"),
])
def test_bad_input_is_refused_clearly(study, analysis, message):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [analysis]}
    with pytest.raises(LancelotError, match=message):
        run_local("explore", station_paths(study), {"spec": spec})


def test_a_cohort_below_the_minimum_is_refused(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [ANALYSES[0]]}
    with pytest.raises(LancelotError, match="fewer than 100000 records"):
        run_local("explore", station_paths(study), {"spec": spec, "min_cell_count": 100000})


def test_node_floor_raises_the_minimum(study):
    spec = {"linkage": json.loads(study["link_spec"].read_text()), "analyses": [ANALYSES[0]]}
    out = run_local("explore", station_paths(study), {"spec": spec},
                    station_env={GP: {"LANCELOT_MIN_CELL_COUNT": "60"}})
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
    out = run_local("explore", station_paths(study3), {"spec": spec, "evaluate": True}, evaluate=True)
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
    assert summ["overall"]["mean"] == pytest.approx(mean, rel=1e-9) and summ["overall"]["n"] == n
    for g in summ["by"]:
        if g.get("mean") is not None:
            sub = data.loc[data["copd_1"].map(label) == g["copd"], "bmi_2"]
            assert g["mean"] == pytest.approx(sub.mean(), rel=1e-9)
    for layer in out["analyses"][3]["layers"]:
        frame = data[data["copd_1"].map(label) == layer["copd"]]
        check_table(layer["table"], {"stage": "stage", "surgery": "surgery"}, frame)
    r = out["analyses"][4]["pearson_r"][0][1]
    assert r == pytest.approx(data[["bmi_1", "bmi_2"]].corr().iloc[0, 1], rel=1e-9)


def test_three_way_crosstab_with_one_variable_at_each_station(study3):
    G2 = "gp_2"
    spec = {"linkage": json.loads(study3["link_spec"].read_text()), "analyses": [
        {"type": "crosstab", "variables": [v(REG, "stage"), v(GP, "copd"), v(G2, "diabetes")]},
        {"type": "count", "variable": v(REG, "stage")},
    ]}
    out = run_local("explore", station_paths(study3), {"spec": spec, "evaluate": True}, evaluate=True)
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
        rows = list(dict.fromkeys(r["stage"] for r in layer["table"]))
        cols = list(dict.fromkeys(r["copd"] for r in layer["table"]))
        counts = np.array([[ref.loc[r, c] if r in ref.index and c in ref.columns else 0 for c in cols] for r in rows])
        hidden, _ = suppress_table(counts, K)
        for r in layer["table"]:
            i, j = rows.index(r["stage"]), cols.index(r["copd"])
            assert r["count"] == (None if hidden[i, j] else counts[i, j])
            released += r["count"] or 0
    assert released > 0.5 * len(data)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7])
def test_closed_form_chi_square_tail_matches_scipy(dof):
    from scipy import stats

    from lancelot.explore.km import chi2_sf

    for x in (0.01, 0.5, 1.0, 3.84, 10.0, 40.0, 120.0):
        assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)

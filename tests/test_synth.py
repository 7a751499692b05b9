"""Tests of the synthetic federation: reproducibility, proportions, exact truth, error rates, outcomes."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from lancelot.synth import GP_COLUMNS, REGISTRY_COLUMNS, SynthData, generate
from lancelot.synth.errors import DEFAULT_RATES


@pytest.fixture(scope="module")
def data() -> SynthData:
    return generate(n_patients=2000, gp_stations=2, seed=11)


def _letters(s: object) -> str:
    return "" if not isinstance(s, str) else "".join(c for c in s.lower() if c.isalpha())


def _postcode(s: object) -> str:
    return "" if not isinstance(s, str) else s.replace(" ", "").upper()


def _linked(d: SynthData, station: str) -> pd.DataFrame:
    t = d.truth[d.truth.station == station]
    m = t.merge(d.registry, left_on="registry_id", right_on="record_id")
    m = m.merge(d.gp[station], left_on="station_id", right_on="patient_nr", suffixes=("", "_gp"))
    return m.merge(d.errors, on=["registry_id", "station", "station_id"])


def test_deterministic_with_seed() -> None:
    a, b = generate(300, 2, seed=5), generate(300, 2, seed=5)
    pd.testing.assert_frame_equal(a.registry, b.registry)
    for name in a.gp:
        pd.testing.assert_frame_equal(a.gp[name], b.gp[name])
    pd.testing.assert_frame_equal(a.truth, b.truth)
    c = generate(300, 2, seed=6)
    assert not a.registry["surname"].equals(c.registry["surname"])


def test_columns_and_counts(data: SynthData) -> None:
    assert list(data.registry.columns) == REGISTRY_COLUMNS
    assert len(data.registry) == 2000
    assert data.registry["record_id"].is_unique
    assert set(data.gp) == {"gp_1", "gp_2"}
    for name, g in data.gp.items():
        assert list(g.columns) == GP_COLUMNS
        assert g["patient_nr"].is_unique
        assert g["patient_nr"].str.match(rf"^GP{name[-1]}-\d{{6}}$").all()
        links = data.truth[data.truth.station == name]
        assert 0.82 < len(links) / 2000 < 0.88  # coverage ~85%
        assert 0.27 < 1 - len(links) / len(g) < 0.33  # GP-only rows ~30%
    both = data.truth.groupby("registry_id").size()
    assert 0.68 < (both == 2).sum() / 2000 < 0.77  # ~0.85^2 at both stations


def test_truth_is_exact_and_one_to_one(data: SynthData) -> None:
    t = data.truth
    assert list(t.columns) == ["registry_id", "station", "station_id"]
    assert t["registry_id"].isin(data.registry["record_id"]).all()
    for name, g in data.gp.items():
        sub = t[t.station == name]
        assert sub["station_id"].isin(g["patient_nr"]).all()
        assert sub["registry_id"].is_unique and sub["station_id"].is_unique
    # The registry id is not derived from the GP id.
    assert not data.registry["record_id"].str.contains("GP").any()


def test_lookalikes_present(data: SynthData) -> None:
    """~5% of GP rows are non-matches sharing surname+postcode or birth date+sex+area with a patient."""
    reg = data.registry.assign(sn=data.registry["surname"].map(_letters), pc=data.registry["postcode"])
    fam = set(zip(reg.sn, reg.pc, strict=True))
    dob = set(zip(reg.birth_date, reg.sex, reg.pc.str[:4], strict=True))
    for name, g in data.gp.items():
        non = g[~g["patient_nr"].isin(data.truth["station_id"])]
        bd = pd.to_datetime(non["geboortedatum"], format="%d-%m-%Y").dt.strftime("%Y-%m-%d")
        pc = non["postcode"].map(_postcode)
        sex = non["geslacht"].map({"m": "M", "v": "F"})
        hit = [(s, p) in fam or (b, x, p[:4]) in dob
               for s, p, b, x in zip(non["achternaam"].map(_letters), pc, bd, sex, strict=True)]
        share = sum(hit) / len(g)
        assert 0.03 < share < 0.07, (name, share)


def test_disagreements_match_error_log_and_rates(data: SynthData) -> None:
    m = pd.concat([_linked(data, s) for s in data.gp], ignore_index=True)
    n = len(m)
    # Every logged error is a real disagreement and every disagreement is logged.
    surname_diff = m["surname"].map(_letters) != m["achternaam"].map(_letters)
    assert (surname_diff == (m.surname_typo | m.prefix_changed)).all()
    assert (m["initials"].map(_letters) != m["voorletters"].map(_letters)).eq(m.initials_differ).all()
    gp_birth = pd.to_datetime(m["geboortedatum"], format="%d-%m-%Y").dt.strftime("%Y-%m-%d")
    assert (gp_birth != m["birth_date"]).eq(m.birth_swap | m.birth_typo).all()
    assert m["geslacht"].isna().eq(m.sex_missing).all()
    assert (m.loc[~m.sex_missing, "geslacht"].map({"m": "M", "v": "F"}) == m.loc[~m.sex_missing, "sex"]).all()
    pc_diff = m["postcode_gp"].map(_postcode) != m["postcode"]
    assert pc_diff.eq(m.postcode_moved | m.postcode_typo | m.postcode_missing).all()

    def near(flag: str, expected: float) -> None:
        got = m[flag].mean()
        tol = 3 * np.sqrt(expected * (1 - expected) / n) + 0.003
        assert abs(got - expected) < tol, (flag, got, expected)

    near("surname_typo", DEFAULT_RATES["surname_typo"])
    near("initials_differ", DEFAULT_RATES["initials_differ"])
    near("birth_typo", DEFAULT_RATES["birth_typo"] * 0.99)
    near("postcode_moved", DEFAULT_RATES["postcode_moved"] * 0.98)
    near("sex_missing", DEFAULT_RATES["sex_missing"])
    near("postcode_missing", DEFAULT_RATES["postcode_missing"])
    prefixed = m["surname"].str.contains(" ")
    assert abs(m.loc[prefixed, "prefix_changed"].mean() - DEFAULT_RATES["prefix_changed"]) < 0.04
    assert not m.loc[~prefixed, "prefix_changed"].any()
    swappable = pd.to_datetime(m["birth_date"]).pipe(lambda d: (d.dt.day <= 12) & (d.dt.day != d.dt.month))
    assert not m.loc[~swappable, "birth_swap"].any()
    assert abs(m.loc[swappable, "birth_swap"].mean() - DEFAULT_RATES["birth_swap"]) < 0.025


def test_error_levels_scale() -> None:
    cols = list(DEFAULT_RATES)
    low = generate(1500, 1, seed=2, error_level="low").errors[cols].to_numpy().sum()
    high = generate(1500, 1, seed=2, error_level="high").errors[cols].to_numpy().sum()
    assert 3.0 < high / low < 5.5
    with pytest.raises(ValueError):
        generate(10, 1, error_level="extreme")


def test_realistic_ranges(data: SynthData) -> None:
    r = data.registry
    assert 67 < r["age_at_diagnosis"].mean() < 73 and 7 < r["age_at_diagnosis"].std() < 11
    assert 0.52 < (r["sex"] == "M").mean() < 0.62
    stage = r["stage"].value_counts(normalize=True)
    assert abs(stage["IV"] - 0.45) < 0.04 and abs(stage["I"] - 0.20) < 0.04
    assert abs((r["histology"] == "adenocarcinoma").mean() - 0.55) < 0.04
    assert set(r["who_ps"].dropna().unique()) <= {0, 1, 2, 3, 4}
    assert 0.015 < r["who_ps"].isna().mean() < 0.05
    assert r.groupby("stage")["who_ps"].mean().is_monotonic_increasing
    surg = r.groupby("stage")["surgery"].mean()
    assert surg["I"] > 0.5 and surg["IV"] < 0.05
    assert (r["survival_days"] > 0).all() and set(r["vital_status"]) == {0, 1}
    assert (r["death_within_2y"] == ((r["vital_status"] == 1) & (r["survival_days"] <= 730))).all()
    assert r["postcode"].str.match(r"^[1-9]\d{3}[A-Z]{2}$").all()
    assert r["initials"].str.match(r"^([A-Z]\.){1,3}$").all()
    assert 0.2 < r["surname"].str.contains(" ").mean() < 0.3
    birth = pd.to_datetime(r["birth_date"], format="%Y-%m-%d")
    diag = pd.to_datetime(r["diagnosis_date"], format="%Y-%m-%d")
    assert ((diag - birth).dt.days // 365.25 - r["age_at_diagnosis"]).abs().max() <= 1
    for g in data.gp.values():
        assert g["bmi"].between(14, 55).all() or g["bmi"].isna().any()
        assert 25.0 < g["bmi"].mean() < 27.5 and 0.02 < g["bmi"].isna().mean() < 0.08
        assert set(g["smoking"].dropna()) == {"never", "former", "current"}
        assert set(g["geslacht"].dropna()) == {"m", "v"}
        pd.to_datetime(g["geboortedatum"], format="%d-%m-%Y")  # all parse
        assert g["postcode"].dropna().map(_postcode).str.match(r"^\d{4}[A-Z]{2}$").all()
        assert (g["medication_count"] >= 0).all() and (g["gp_visits"] >= 0).all()


def _logit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson logistic regression; returns coefficients and z-values."""
    x = np.column_stack([np.ones(len(x)), x])
    beta = np.zeros(x.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-x @ beta))
        hess = x.T @ (x * (p * (1 - p))[:, None])
        beta = beta + np.linalg.solve(hess, x.T @ (y - p))
    se = np.sqrt(np.diag(np.linalg.inv(hess)))
    return beta[1:], beta[1:] / se[1:]


def test_outcome_depends_on_both_sides(data: SynthData) -> None:
    m = _linked(data, "gp_1").dropna(subset=["who_ps", "bmi", "smoking"])
    x = np.column_stack([
        m["age_at_diagnosis"] - 70, m["stage"].isin(["III", "IV"]), m["stage"] == "IV", m["who_ps"].astype(float),
        m["surgery"], m["copd"], m["cardiovascular"], m["bmi"] - 26, m["smoking"] == "current",
    ]).astype(float)
    beta, z = _logit(x, m["death_within_2y"].to_numpy(float))
    names = ["age", "stage>=III", "stage IV", "ps", "surgery", "copd", "cvd", "bmi", "current"]
    coef = dict(zip(names, zip(beta.round(2), z.round(1), strict=True), strict=True))
    assert z[names.index("stage IV")] > 3 and z[names.index("ps")] > 3, coef
    assert z[names.index("surgery")] < -2, coef
    assert z[names.index("copd")] > 2.5 and z[names.index("cvd")] > 1.0, coef
    assert z[names.index("bmi")] < 0, coef
    # GP-side features are not just proxies of registry ones: COPD is unrelated to surgery eligibility by design.
    assert abs(np.corrcoef(m["copd"], m["stage"] == "IV")[0, 1]) < 0.1


def test_gp_stations_are_different_sources(data: SynthData) -> None:
    a, b = _linked(data, "gp_1"), _linked(data, "gp_2")
    ab = a.merge(b, on="registry_id", suffixes=("_1", "_2"))
    assert len(ab) > 1000
    both = ab.dropna(subset=["bmi_1", "bmi_2"])
    assert (both["bmi_1"] != both["bmi_2"]).mean() > 0.8
    assert abs(both["bmi_1"] - both["bmi_2"]).mean() < 2.0
    assert (ab["copd_1"] == ab["copd_2"]).mean() > 0.95


def test_write_files_and_spec(data: SynthData, tmp_path) -> None:
    paths = data.write(tmp_path)
    for key in ["registry", "gp_1", "gp_2", "truth_links", "link_spec"]:
        assert paths[key].exists()
    reg = pd.read_csv(paths["registry"], dtype=str, keep_default_na=False)
    assert len(reg) == len(data.registry) and list(reg.columns) == REGISTRY_COLUMNS
    assert (reg["who_ps"] == "").sum() == data.registry["who_ps"].isna().sum()
    truth = pd.read_csv(paths["truth_links"])
    assert len(truth) == len(data.truth)
    spec = json.loads(paths["link_spec"].read_text())
    assert set(spec["stations"]) == {"registry", "gp_1", "gp_2"}
    tables = {s: pd.read_csv(paths[s], dtype=str, keep_default_na=False) for s in spec["stations"]}
    for s, cfg in spec["stations"].items():
        assert cfg["id_column"] in tables[s].columns and tables[s][cfg["id_column"]].is_unique
    assert [f["name"] for f in spec["fields"]] == ["surname", "initials", "birth_date", "sex", "postcode"]
    for f in spec["fields"]:
        assert set(f["columns"]) == set(spec["stations"])
        for s, col in f["columns"].items():
            assert col in tables[s].columns
        for s, fmt in f.get("formats", {}).items():
            col = tables[s][f["columns"][s]]
            dt.datetime.strptime(col.iloc[0], fmt)
        for s, mapping in f.get("mapping", {}).items():
            assert set(tables[s][f["columns"][s]]) - {""} <= set(mapping)
    assert truth["station_id"].isin(pd.concat([tables["gp_1"].patient_nr, tables["gp_2"].patient_nr])).all()

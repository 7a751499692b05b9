"""lancelot's algorithms on the real vantage6 4.15 network, checked against the same references as the unit tests."""

from __future__ import annotations

import base64
import json

import pandas as pd
import pytest
from helpers import check_moments, walk_strings
from lifelines import KaplanMeierFitter

from lancelot.linkage.pseudonym import PSEUDONYM_BYTES

pytestmark = pytest.mark.network

REG, GP1, GP2 = "registry", "gp_1", "gp_2"


def link_spec(devnet) -> dict:
    return json.loads((devnet.data_dir / "link_spec.json").read_text())


def truth(devnet) -> pd.DataFrame:
    return pd.read_csv(devnet.data_dir / "truth_links.csv", dtype=str)


def subtask_results(devnet, task_id: int) -> list:
    """Every result a station's container returned during the job (encrypted for the coordinator's
    organisation: ``devnet`` must be a user of that organisation, as the ``insider`` fixture is)."""
    tasks = devnet.client.task.list(parent=task_id, per_page=200)["data"]
    out = []
    for task in tasks:
        out.extend(devnet.results(task["id"]))
    return out


def identifiers(devnet) -> set[str]:
    values = set()
    for station in (REG, GP1, GP2):
        df = devnet.read_csv(station).astype(str)
        for col in ("record_id", "surname", "birth_date", "postcode", "patient_nr", "achternaam", "geboortedatum"):
            if col in df.columns:
                values |= {v for v in df[col] if len(v) >= 5 and v != "nan"}
    return values


def test_linkage_on_the_real_network(devnet):
    run = devnet.submit_central(devnet.images["linkage"], {"stations": devnet.stations, "spec": link_spec(devnet),
                                                           "evaluate": True})
    assert run.status == "completed", run.log
    out = run.result
    assert "lancelot_error" not in out, out["lancelot_error"]
    assert out["cost"]["rounds"] == 2 and out["coordinator"]["neutral"] is True
    t = truth(devnet)
    links = pd.DataFrame(out["links"])
    for station in (GP1, GP2):
        true = set(zip(t[t.station == station].registry_id, t[t.station == station].station_id))
        got = set(zip(links[REG], links[station])) if station in links else set()
        got = {(a, b) for a, b in got if isinstance(b, str)}
        tp = len(true & got)
        precision, recall = tp / len(got), tp / len(true)
        assert 2 * precision * recall / (precision + recall) >= 0.97, (station, precision, recall)


def test_no_station_returns_anything_identifying(devnet, insider):
    """What the coordinator's organisation reads (every station result): nothing identifying."""
    run = devnet.submit_central(devnet.images["linkage"], {"stations": devnet.stations, "spec": link_spec(devnet)})
    assert run.status == "completed", run.log
    assert "links" not in run.result
    results = subtask_results(insider, run.task_id)
    assert len(results) == 2 * len(devnet.stations)  # two rounds, one subtask per station
    short, blobs = [], 0
    for text in walk_strings([results, run.result]):
        if len(text) > 200:  # packed points (32 bytes), pseudonyms (16) or Bloom filters (128): never readable text
            assert len(base64.b64decode(text, validate=True)) % PSEUDONYM_BYTES == 0
            blobs += 1
        else:
            short.append(text)
    assert blobs > 0
    joined = "\n".join(short)
    leaked = [v for v in identifiers(devnet) if v in joined]
    assert not leaked, leaked[:5]


def test_exploration_on_the_real_network_matches_pandas(devnet):
    spec = {"linkage": link_spec(devnet), "analyses": [
        {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP1, "column": "copd"}]},
        {"type": "summary", "variable": {"station": GP2, "column": "bmi"}, "by": {"station": REG, "column": "surgery"}},
        # the crosstab and the summary are shared products (explore_share, explore_share_products, and
        # explore_share_finish: the registry's partner GP 1 and GP 2's partner, the registry, differ); a GP 2
        # column no product needs: its total is a masked sum the registry adds in the same step
        {"type": "count", "variable": {"station": GP2, "column": "smoking"}},
        # counts on exponential ElGamal: GP 1 encrypts its COPD levels, the registry sums its exit columns
        {"type": "kaplan_meier", "time": {"station": REG, "column": "survival_days"},
         "event": {"station": REG, "column": "vital_status"}, "by": {"station": GP1, "column": "copd"},
         "times": [365, 730]},
    ]}
    run = devnet.submit_central(devnet.images["exploration"], {"stations": devnet.stations, "spec": spec,
                                                               "evaluate": True})
    assert run.status == "completed", run.log
    out = run.result
    assert "lancelot_error" not in out, out["lancelot_error"]
    assert out["cost"]["rounds"] == 4
    links = pd.DataFrame(out["links"])
    cohort = links[[REG, GP1]].dropna().merge(links[[REG, GP2]].dropna(), on=REG)
    data = (cohort.merge(devnet.read_csv(REG), left_on=REG, right_on="record_id")
            .merge(devnet.read_csv(GP1).add_suffix("_1"), left_on=GP1, right_on="patient_nr_1")
            .merge(devnet.read_csv(GP2).add_suffix("_2"), left_on=GP2, right_on="patient_nr_2"))
    base = out["disclosure_control"]["rounding_base"]  # the nodes' policy (default 5)

    def rounded(c: int) -> int:
        return base * int(c / base + 0.5)

    assert out["cohort"]["records"] == rounded(len(data))
    released = 0
    for row in out["analyses"][0]["table"]:
        if row["count"] is not None and "<" not in row["stage"] + row["copd"]:  # not <missing> or <other>
            mask = (data["stage"] == row["stage"]) & (data["copd_1"].astype(int).astype(str) == row["copd"])
            assert row["count"] == rounded(int(mask.sum()))
            released += 1
    assert released > 0
    check_moments(out["analyses"][1]["overall"], data["bmi_2"], base)  # on the documented grid
    counts = data["smoking_2"].value_counts()
    smoking = [r for r in out["analyses"][2]["table"] if r["count"] is not None and "<" not in r["smoking"]]
    assert smoking and all(r["count"] == rounded(int(counts[r["smoking"]])) for r in smoking)
    curves = [g for g in out["analyses"][3]["groups"] if not g["group"].startswith("<")]
    assert curves
    for g in curves:
        sub = data[data["copd_1"].map(lambda v: "" if pd.isna(v) else str(int(v))) == g["group"]]
        kmf = KaplanMeierFitter().fit(sub["survival_days"], sub["vital_status"])
        for point in g["curve"]:
            assert point["survival"] == pytest.approx(float(kmf.survival_function_at_times(point["time"]).iloc[0]),
                                                      rel=5e-4)


# Training (logistic and Cox against statsmodels and lifelines) runs through the researcher's client:
# tests/network/test_client_network.py.

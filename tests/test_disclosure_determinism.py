"""The same job run twice releases the same numbers.

Each vantage6 algorithm run is a fresh Python process with its own random hash seed. If the joint
suppression of exploration (lancelot.explore.ledger) depended on the iteration order of sets, the
same cohort sums could be released with two different suppression patterns, and a researcher who
runs a job twice could combine them: a count withheld in one run released (or derivable from the
margins) in the other. Here the same captured cohort sums are released in separate processes with
different PYTHONHASHSEED values, and the JSON outputs must be identical.

The sums are real: a one-station job (plain sums, no encryption, so it takes a second) over a
synthetic registry, with a crosstab of mostly small cells that needs secondary suppression, a
three-way crosstab, a histogram, a table_one and Kaplan-Meier curves by group.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pandas as pd
from helpers import make_study, recording_coordinator

import lancelot.explore.protocol as protocol
from lancelot.explore.steps import STEPS

REG = "registry"
SEEDS = ("1", "2", "3")
THRESHOLDS = ((10, 1), (5, 1), (10, 5))  # (k, rounding base)


def v(column):
    return {"station": REG, "column": column}


AGE = v("age_at_diagnosis")
ANALYSES = [
    {"type": "crosstab", "variables": [v("stage"), v("histology")]},
    {"type": "crosstab", "variables": [v("stage"), v("who_ps")]},
    {"type": "crosstab", "variables": [v("diagnosis_month"), v("surgery")]},  # months of 2019: small cells
    {"type": "crosstab", "variables": [v("stage"), v("surgery"), v("chemotherapy")]},
    {"type": "histogram", "variable": AGE, "edges": [40, 50, 60, 70, 80, 90]},
    {"type": "table_one", "by": v("stage"), "variables": [AGE, v("who_ps"), v("histology"), v("radiotherapy")]},
    {"type": "kaplan_meier", "time": v("survival_days"), "event": v("vital_status"), "by": v("stage")},
]

# run in a fresh interpreter: release the pickled sums at each threshold, print the results as JSON
RELEASE = """
import json, pickle, sys
import numpy as np
from lancelot.explore.spec import parse_explore_spec
from lancelot.explore.stats import release

def plain(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))

job = pickle.load(open(sys.argv[1], "rb"))
spec = parse_explore_spec({"analyses": job["analyses"]}, [job["station"]])
out = [release(spec, job["sums"], k, base) for k, base in job["thresholds"]]
print(json.dumps(out, sort_keys=True, default=plain))
"""


def _registry(tmp_path):
    paths = make_study(tmp_path / "study", patients=400, gp_stations=1, seed=5)
    reg = pd.read_csv(paths[REG])
    date = pd.to_datetime(reg["diagnosis_date"])
    reg["diagnosis_month"] = date.dt.strftime("%Y-%m").where(date.dt.year == 2019, "2015-2018")
    reg.to_csv(paths[REG], index=False)
    return paths


def _captured_sums(tmp_path, monkeypatch):
    """The cohort sums a one-station job hands to the release, captured in this process."""
    paths = _registry(tmp_path)
    captured = []
    release = protocol.release

    def capture(spec, sums, k, base, dry_run=False):
        captured.append(sums)
        return release(spec, sums, k, base, dry_run)

    monkeypatch.setattr(protocol, "release", capture)
    coordinator, _ = recording_coordinator(STEPS, {REG: paths[REG]})
    protocol.explore(coordinator, {"analyses": ANALYSES})
    (sums,) = captured
    return sums


def _release_in_process(path, seed: str) -> list:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run([sys.executable, "-c", RELEASE, str(path)], env=env, capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_same_sums_are_released_alike_under_any_hash_seed(tmp_path, monkeypatch):
    sums = _captured_sums(tmp_path, monkeypatch)
    path = tmp_path / "sums.pkl"
    path.write_bytes(pickle.dumps({"analyses": ANALYSES, "station": REG, "sums": sums, "thresholds": THRESHOLDS}))
    runs = {seed: _release_in_process(path, seed) for seed in SEEDS}

    # the job exercises what could depend on order: secondary suppression in every threshold, every family
    for analyses, report in runs[SEEDS[0]]:
        assert report["withheld_secondary"] > 0, report
        assert {a["type"] for a in analyses} == {"crosstab", "histogram", "table_one", "kaplan_meier"}
    for seed in SEEDS[1:]:
        for (k, base), first, other in zip(THRESHOLDS, runs[SEEDS[0]], runs[seed]):
            assert other == first, f"k={k}, base={base}: PYTHONHASHSEED={seed} releases other numbers than " \
                                   f"PYTHONHASHSEED={SEEDS[0]}"


def test_the_same_analyses_in_another_order_are_released_alike(tmp_path):
    """A researcher who lists the same analyses in another order gets the same numbers: the joint suppression
    walks the cells in a canonical order, not in the order the spec registered them."""
    paths = _registry(tmp_path)
    orders = [list(range(len(ANALYSES))), list(range(len(ANALYSES)))[::-1], [3, 6, 0, 5, 2, 4, 1]]
    released = []
    for order in orders:
        coordinator, _ = recording_coordinator(STEPS, {REG: paths[REG]}, policies={REG: {"rounding_base": 1}})
        out = protocol.explore(coordinator, {"analyses": [ANALYSES[i] for i in order]})
        assert out["disclosure_control"]["withheld_secondary"] > 0
        by_spec = [None] * len(order)
        for position, analysis in zip(order, out["analyses"]):
            by_spec[position] = {key: value for key, value in analysis.items() if key != "name"}
        released.append((by_spec, out["disclosure_control"]["counts_released"]))
    assert all(other == released[0] for other in released[1:])

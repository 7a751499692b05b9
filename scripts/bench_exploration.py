#!/usr/bin/env python3
"""Exploration benchmark: time and rounds of private analyses vs the same analyses in plaintext.

For a crosstab (registry stage x GP COPD), a grouped mean (GP BMI by registry surgery) and a
stratified Kaplan-Meier with log-rank (registry survival by GP COPD), on synthetic linked data:
lancelot's wall time on its real path (in-process network, linkage included, and linkage alone so
the analysis share is visible), its rounds and bytes, against pandas / lifelines on the same
linked records (the overhead ratio). tno.mpc.protocols.kaplan_meier is not run here: it needs its
own multi-party HTTP set-up; see the README's note.

    .venv/bin/python scripts/bench_exploration.py [--quick] [--sizes 10000 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from lancelot.cli import run_local
from lancelot.synth import generate

REG, GP = "registry", "gp_1"
TIMES = [91, 182, 365, 730, 1095]
ANALYSES = {
    "crosstab": {"type": "crosstab", "variables": [{"station": REG, "column": "stage"}, {"station": GP, "column": "copd"}]},
    "grouped_mean": {"type": "summary", "variable": {"station": GP, "column": "bmi"},
                     "by": {"station": REG, "column": "surgery"}},
    "kaplan_meier": {"type": "kaplan_meier", "time": {"station": REG, "column": "survival_days"},
                     "event": {"station": REG, "column": "vital_status"}, "by": {"station": GP, "column": "copd"},
                     "times": TIMES},
}


def plaintext(name: str, data: pd.DataFrame) -> float:
    t0 = time.perf_counter()
    if name == "crosstab":
        pd.crosstab(data["stage"], data["copd"], margins=True)
    elif name == "grouped_mean":
        data.groupby("surgery")["bmi"].agg(["count", "mean", "var"])
    else:
        for _, sub in data.groupby("copd"):
            KaplanMeierFitter().fit(sub["survival_days"], sub["vital_status"]).survival_function_at_times(TIMES)
        multivariate_logrank_test(data["survival_days"], data["copd"], data["vital_status"])
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 patients")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in [2000] if args.quick else args.sizes:
        paths = generate(n_patients=n, gp_stations=1, seed=21).write(Path(tempfile.mkdtemp(prefix="bench-explore-")))
        stations = {REG: paths[REG], GP: paths[GP]}
        link_spec = json.loads(Path(paths["link_spec"]).read_text())
        t0 = time.perf_counter()
        link = run_local("link", stations, {"spec": link_spec, "evaluate": True, "progress": False}, evaluate=True)
        link_seconds = time.perf_counter() - t0
        links = pd.DataFrame(link["links"])
        data = (links.merge(pd.read_csv(paths[REG]), left_on=REG, right_on="record_id")
                .merge(pd.read_csv(paths[GP]), left_on=GP, right_on="patient_nr"))
        for name, analysis in ANALYSES.items():
            t0 = time.perf_counter()
            out = run_local("explore", stations, {"spec": {"linkage": link_spec, "analyses": [analysis]},
                                                  "progress": False})
            seconds = time.perf_counter() - t0
            plain = plaintext(name, data)
            cost = out["cost"]
            row = {"patients": n, "linked": out["cohort"]["records"], "analysis": name, "lancelot_seconds": round(seconds, 2),
                   "of_which_linkage_seconds": round(link_seconds, 2), "rounds": cost["rounds"],
                   "bytes_relayed": cost["bytes_to_stations"] + cost["bytes_from_stations"],
                   "plaintext_seconds": round(plain, 4), "overhead_ratio": round(seconds / plain, 1)}
            rows.append(row)
            print(f"{n:>7} {name:<13} lancelot {seconds:7.1f}s ({cost['rounds']} rounds, "
                  f"{row['bytes_relayed'] / 1e6:6.1f} MB; linkage alone {link_seconds:5.1f}s)  plaintext {plain:8.4f}s  "
                  f"ratio x{row['overhead_ratio']}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

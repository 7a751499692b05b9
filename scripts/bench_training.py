#!/usr/bin/env python3
"""Training benchmark: private logistic regression on the linked cohort vs the pooled statsmodels fit.

On synthetic data (registry + one GP station, 20 features: 12 at the registry, 8 at the GP),
lancelot's fit on its real path (in-process network, every run through wrap_algorithm, linkage
included) against statsmodels ``Logit`` on the same linked complete cases: wall time and the
overhead ratio, rounds and bytes, the largest coefficient and standard-error difference, and
AUC. Then the accuracy/time trade-off over the convergence tolerance (the knob the researcher
has: training uses no Paillier keys, so key size does not apply; the fixed-point precision is set
by the cohort size). Peer libraries: see scripts/bench_training_peer.py and the README.

    .venv/bin/python scripts/bench_training.py [--quick] [--patients 13500] [--tolerances 1e-2 1e-4 1e-6] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.metrics import roc_auc_score

from lancelot.cli import run_local
from lancelot.synth import generate

REG, GP = "registry", "gp_1"
FEATURES = [
    {"station": REG, "column": "age_at_diagnosis"},
    {"station": REG, "column": "stage", "type": "categorical", "reference": "I"},
    {"station": REG, "column": "who_ps"},
    {"station": REG, "column": "histology", "type": "categorical"},
    {"station": REG, "column": "surgery"}, {"station": REG, "column": "chemotherapy"},
    {"station": REG, "column": "radiotherapy"}, {"station": REG, "column": "immunotherapy"},
    {"station": GP, "column": "copd"}, {"station": GP, "column": "diabetes"},
    {"station": GP, "column": "cardiovascular"}, {"station": GP, "column": "bmi"},
    {"station": GP, "column": "smoking", "type": "categorical", "reference": "never"},
    {"station": GP, "column": "medication_count"}, {"station": GP, "column": "gp_visits"},
]
OUTCOME = "death_within_2y"


def pooled(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The pooled design matrix (pandas dummies named like lancelot's, reference level dropped)."""
    cols = [f["column"] for f in FEATURES]
    data = data[cols + [OUTCOME]].dropna()
    categorical = [f for f in FEATURES if f.get("type") == "categorical"]
    x = pd.get_dummies(data[cols].astype({f["column"]: str for f in categorical}),
                       columns=[f["column"] for f in categorical], prefix_sep="=", dtype=float)
    for f in categorical:
        ref = f.get("reference", sorted(data[f["column"]].astype(str).unique())[0])
        x = x.drop(columns=f"{f['column']}={ref}")
    x.insert(0, "(intercept)", 1.0)
    return x.astype(float), data[OUTCOME].astype(float)


def run(paths: dict, tolerance: float) -> tuple[dict, float]:
    spec = {"linkage": json.loads(Path(paths["link_spec"]).read_text()), "model": "logistic",
            "outcome": {"station": REG, "column": OUTCOME}, "features": FEATURES, "tolerance": tolerance}
    t0 = time.perf_counter()
    result = run_local("train", {REG: paths[REG], GP: paths[GP]}, {"spec": spec, "evaluate": True}, evaluate=True)
    return result, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,700 patients (about 2,000 linked)")
    ap.add_argument("--patients", type=int, default=13500, help="registry size (about 74%% end up linked)")
    ap.add_argument("--tolerances", type=float, nargs="+", default=[1e-2, 1e-4, 1e-6])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    patients = 2700 if args.quick else args.patients
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(n_patients=patients, gp_stations=1, seed=21).write(Path(tmp))
        print(f"{patients} registry patients; linking and fitting {len(args.tolerances)} times ...", file=sys.stderr)
        for tol in sorted(args.tolerances, reverse=True):
            result, seconds = run(paths, tol)
            links = pd.DataFrame(result["links"])[[REG, GP]].dropna()
            data = (links.merge(pd.read_csv(paths[REG]), left_on=REG, right_on="record_id")
                    .merge(pd.read_csv(paths[GP]), left_on=GP, right_on="patient_nr"))
            x, y = pooled(data)
            t0 = time.perf_counter()
            fit = sm.Logit(y, x).fit(disp=0, tol=1e-12, maxiter=100)
            ref_seconds = time.perf_counter() - t0
            table = pd.DataFrame(result["coefficients"]).set_index("feature").loc[x.columns]
            link_s = result["cost"]["seconds_per_phase"]["linkage + set-up"]
            rows.append({
                "tolerance": tol, "linked_complete_cases": len(y), "features": x.shape[1] - 1,
                "iterations": result["convergence"]["iterations"], "rounds": result["cost"]["rounds"],
                "MB_relayed": round((result["cost"]["bytes_to_stations"] + result["cost"]["bytes_from_stations"]) / 1e6, 1),
                "lancelot_s": round(seconds, 1), "of_which_linkage_setup_s": round(link_s, 1),
                "training_s": round(seconds - link_s, 1), "statsmodels_s": round(ref_seconds, 3),
                "ratio_total": round(seconds / ref_seconds), "ratio_training": round((seconds - link_s) / ref_seconds),
                "max_coef_diff": float(np.max(np.abs(table["estimate"] - fit.params))),
                "max_se_diff": float(np.max(np.abs(table["std_error"] - fit.bse))),
                "auc": round(result["quality"]["auc"], 5), "auc_statsmodels": round(roc_auc_score(y, fit.predict(x)), 5),
            })
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"\nlogistic regression, registry + GP ({rows[0]['features']} features, "
          f"{rows[0]['linked_complete_cases']} linked complete cases); reference: pooled statsmodels Logit")
    print(f"{'tolerance':>9} {'iter':>4} {'rounds':>6} {'MB':>6} {'lancelot s':>10} {'(training s)':>12} "
          f"{'statsmodels s':>13} {'ratio':>7} {'max|coef diff|':>14} {'max|SE diff|':>12} {'AUC':>8} {'AUC pooled':>10}")
    for r in rows:
        print(f"{r['tolerance']:>9.0e} {r['iterations']:>4} {r['rounds']:>6} {r['MB_relayed']:>6} {r['lancelot_s']:>10} "
              f"{r['training_s']:>12} {r['statsmodels_s']:>13} {'x' + str(r['ratio_total']):>7} "
              f"{r['max_coef_diff']:>14.2e} {r['max_se_diff']:>12.2e} {r['auc']:>8} {r['auc_statsmodels']:>10}")
    print("ratio = lancelot wall time (linkage included) / statsmodels fit time; "
          "published peers: verticox+ Cox 500x6 in 234 s, 10,000x6 in ~9 h")
    return 0


if __name__ == "__main__":
    sys.exit(main())

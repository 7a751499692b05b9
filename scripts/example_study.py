#!/usr/bin/env python3
"""A full study through lancelot.client on the dev network: link, explore, train (logistic and Cox),
predictions and reports, and the treatment-effects model (immunotherapy x COPD across stations, an
age spline, Cox stratified by stage) with its decision-support view.

Notebook-style: each cell can be run on its own in an interactive session. ``run_study`` is what
tests/network/test_client_network.py runs on the real network. Needs the network:

    scripts/devnet.sh up                 # server + registry, gp_1, gp_2 and a neutral coordinator
    .venv/bin/python scripts/example_study.py [--out study-report/]
    scripts/devnet.sh down
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lancelot.client import Study

ROOT = Path(__file__).resolve().parents[1]


FEATURES = [{"station": "registry", "column": "age_at_diagnosis"},
            {"station": "registry", "column": "stage", "type": "categorical", "reference": "I"},
            {"station": "gp_1", "column": "copd"},
            {"station": "gp_2", "column": "bmi"}]
PROFILE = {"age_at_diagnosis": 70, "stage": "III", "copd": 1, "bmi": 24}
# Table 1 of the paper: baseline characteristics of the linked cohort by immunotherapy (a registry column),
# with rows from the registry and both GP stations.
TABLE_ONE_VARIABLES = [{"station": "registry", "column": "age_at_diagnosis"},
                       {"station": "registry", "column": "stage"},
                       {"station": "registry", "column": "who_ps"},
                       {"station": "registry", "column": "histology"},
                       {"station": "gp_1", "column": "copd"},
                       {"station": "gp_1", "column": "smoking"},
                       {"station": "gp_2", "column": "bmi", "summary": "median", "range": [10, 60]}]
EXAMPLE = ROOT / "docs" / "examples" / "nsclc_treatment_effects.json"


def treatment_effects_spec(link_spec: dict) -> dict:
    """docs/examples/nsclc_treatment_effects.json with this network's linkage spec."""
    return {**json.loads(EXAMPLE.read_text()), "linkage": link_spec}


def specs(link_spec: dict) -> dict[str, dict]:
    """The study's exploration, logistic and Cox specs (tests/v5 runs the same ones on vantage6 5.x).

    Explore: stage (registry) by COPD (GP 1), BMI (GP 2) by surgery (registry), survival by COPD, and Table 1
    (baseline characteristics by immunotherapy).
    Train: death within two years (logistic), and survival (Cox, Efron ties), on registry and GP features.
    """
    return {
        "explore": {"linkage": link_spec, "analyses": [
            {"type": "crosstab", "variables": [{"station": "registry", "column": "stage"},
                                               {"station": "gp_1", "column": "copd"}]},
            {"type": "summary", "variable": {"station": "gp_2", "column": "bmi"},
             "by": {"station": "registry", "column": "surgery"}},
            {"type": "kaplan_meier", "time": {"station": "registry", "column": "survival_days"},
             "event": {"station": "registry", "column": "vital_status"}, "by": {"station": "gp_1", "column": "copd"},
             "times": [182, 365, 730]},
            {"type": "table_one", "name": "table_1", "by": {"station": "registry", "column": "immunotherapy"},
             "variables": TABLE_ONE_VARIABLES},
        ]},
        "logistic": {"linkage": link_spec, "model": "logistic",
                     "outcome": {"station": "registry", "column": "death_within_2y"}, "features": FEATURES},
        "cox": {"linkage": link_spec, "model": "cox", "time": {"station": "registry", "column": "survival_days"},
                "event": {"station": "registry", "column": "vital_status"}, "features": FEATURES,
                "survival_times": [91, 182, 365, 730]},
    }


def run_study(study: Study, link_spec: dict, out: Path, evaluate: bool = False) -> dict:
    """Link, explore, fit both models, predict for one profile and write every report; returns the results.

    ``evaluate`` (synthetic data, nodes that opted in) also returns the links, so that a test can
    compare with pooled fits. The three parts are independent jobs (each links anew), so a test may run
    them side by side.
    """
    return {**link_and_explore(study, link_spec, out), **fit_models(study, link_spec, out, evaluate),
            **treatment_effects(study, link_spec, out, evaluate)}


def link_and_explore(study: Study, link_spec: dict, out: Path) -> dict:
    # %% 2. Link the registry with both GP stations. The links stay inside the job at the coordinator.
    link = study.link(link_spec)
    print(link.pairs()[["linked", "candidate_pairs", "em_expected_precision"]])
    print("report:", link.report(out / "link"))

    # %% 3. Explore: stage (registry) by COPD (GP 1), BMI (GP 2) by surgery (registry), survival by COPD, Table 1.
    exploration = study.explore(specs(link_spec)["explore"])
    for name, table in exploration.tables().items():
        print(name, table.head(12), sep="\n")
    print(exploration.table_one("table_1").to_string())   # Table 1 of the paper, as the tableone package lays it out
    print("report:", exploration.report(out / "explore"))
    return {"link": link, "exploration": exploration}


def fit_models(study: Study, link_spec: dict, out: Path, evaluate: bool = False) -> dict:
    # %% 4. Train: death within two years on registry and GP features (logistic regression).
    logistic = study.train(specs(link_spec)["logistic"], evaluate=evaluate)
    print(logistic.coefficients()[["station", "estimate", "std_error", "odds_ratio", "p_value"]])
    print(f"{logistic.rounds} rounds, {logistic.seconds:.0f} s")
    print("report:", logistic.report(out / "train"))

    # %% 5. Survival: Cox proportional hazards on the same features (Efron ties).
    cox = study.train(specs(link_spec)["cox"], evaluate=evaluate)
    print(cox.coefficients()[["station", "estimate", "std_error", "hazard_ratio", "p_value"]])
    print(f"concordance {cox.raw['quality']['concordance']['estimate']:.3f}; {cox.rounds} rounds, {cox.seconds:.0f} s")
    print("report:", cox.report(out / "cox"))

    # %% 6. One typed-in profile (research use only): risk of death within two years, predicted survival.
    risk, survival = logistic.predict(PROFILE), cox.predict(PROFILE)
    print(risk)
    print(survival)
    return {"logistic": logistic, "cox": cox, "risk": risk, "survival": survival}


def treatment_effects(study: Study, link_spec: dict, out: Path, evaluate: bool = False) -> dict:
    # %% 7. Which patients benefit from immunotherapy? Its hazard ratio by COPD status (a registry column
    #       times a GP column, multiplied on shares), age as a spline, a baseline hazard per stage.
    effects = study.train(treatment_effects_spec(link_spec), evaluate=evaluate)
    print(effects.effect_modification()[["interaction", "effect_of", "at", "hazard_ratio", "ci_low", "ci_high"]])
    profile = {"age_at_diagnosis": 68, "who_ps": 1, "surgery": 0, "copd": 1, "cardiovascular": 0, "bmi": 24,
               "stage": "IV"}
    decision = effects.predict(profile, treatment="immunotherapy")
    for arm in decision["arms"]:
        print(arm["treatment"], [(r["time"], round(r["survival"], 3)) for r in arm["survival"]])
    print(f"{effects.rounds} rounds, {effects.seconds:.0f} s")
    print("report:", effects.report(out / "treatment_effects", profile=profile, treatment="immunotherapy"))
    return {"effects": effects, "decision": decision}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connection", default=str(ROOT / ".v6dev" / "network" / "connection.json"))
    ap.add_argument("--out", default="study-report")
    args = ap.parse_args()

    # %% 1. Connect as the researcher; the study's stations and the neutral coordinator come from the
    #       connection file that scripts/devnet.sh writes (on another network: Study.login(...)).
    study = Study.from_connection_file(args.connection)
    connection = json.loads(Path(args.connection).read_text())
    link_spec = json.loads((Path(connection["data_dir"]) / "link_spec.json").read_text())
    print("stations:", study.stations, "coordinator organisation:", study.coordinator_org)
    run_study(study, link_spec, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``lancelot`` command: synthetic data, the three algorithms on an in-process network, the demo.

``lancelot <algorithm> --station NAME=CSV ...`` makes each station an organisation of a local
Vantage6-like network (plus a neutral coordinator organisation) and runs the algorithm's central
function there, every step in a fresh process through the container entry point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from .algorithms import ALGORITHMS
from .study import run_local  # noqa: F401 - the local transport, importable here as before


def _parse_stations(items: list[str]) -> dict[str, Path]:
    stations: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--station expects NAME=CSV, got {item!r}")
        if name in stations:
            raise SystemExit(f"station '{name}' is given twice")
        p = Path(path)
        if not p.is_file():
            raise SystemExit(f"station '{name}': no such file {p}")
        stations[name] = p
    if not stations:
        raise SystemExit("give at least one --station NAME=CSV")
    return stations


def _load_spec(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SystemExit(f"spec file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise SystemExit(f"spec file {path} is not valid JSON: {exc}") from exc


def _write_output(result: dict, output: str | None) -> None:
    text = json.dumps(result, indent=2)
    if output:
        Path(output).write_text(text)
        print(f"result written to {output}", file=sys.stderr)
    else:
        print(text)


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import generate

    data = generate(n_patients=args.patients, gp_stations=args.gp_stations, seed=args.seed,
                    error_level=args.error_level, surnames=args.surnames, gp_size=args.gp_size,
                    gp_coverage=args.gp_coverage, schema=args.schema)
    paths = data.write(args.out)
    for name, path in paths.items():
        print(f"{name:>18}: {path}")
    return 0


def cmd_algorithm(args: argparse.Namespace) -> int:
    from .runtime.errors import LancelotError
    from .study import Study

    study = Study.local(_parse_stations(args.station), check_spec=False)   # the stations check the spec
    try:
        result = study.run(args.command, _load_spec(args.spec), evaluate=args.evaluate,
                           min_cell_count=args.min_cell_count, rounding_base=getattr(args, "rounding_base", None))
    except LancelotError as exc:
        print(f"lancelot {args.command}: {exc}", file=sys.stderr)
        return 2
    _write_output(result.to_json(), args.output)
    if args.output:   # the JSON went to a file: the summary (what the demo prints) to the terminal
        result.print_summary()
    if getattr(args, "report", None):
        print(f"report written to {result.report(args.report)}", file=sys.stderr)
    return 0


def _quality(links: list[dict], truth_csv: Path, hub: str) -> dict[str, dict]:
    import pandas as pd

    truth = pd.read_csv(truth_csv, dtype=str)
    out = {}
    for station in sorted(truth["station"].unique()):
        true = set(map(tuple, truth[truth.station == station][["registry_id", "station_id"]].values))
        got = {(str(link[hub]), str(link[station])) for link in links if station in link}
        tp = len(true & got)
        precision = tp / len(got) if got else 0.0
        recall = tp / len(true) if true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        out[station] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import spec_kind, validate_spec

    spec = _load_spec(args.spec)
    kind = args.kind or (spec_kind(spec) if isinstance(spec, dict) else "link")
    problems = validate_spec(spec, kind)
    if problems:
        print(f"{args.spec}: not a valid {kind} spec:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    print(f"{args.spec}: a valid {kind} spec (the stations still check their columns when it runs)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .results.models import Model
    from .runtime.errors import LancelotError

    raw = json.loads(Path(args.model).read_text())
    profile: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects COLUMN=VALUE, got {item!r}")
        try:
            profile[name] = float(value)
        except ValueError:
            profile[name] = value
    if args.report and not args.treatment:
        raise SystemExit("--report needs --treatment (the report already shows the model; this adds a profile's view)")
    try:
        model = Model.from_json(raw)
        out = model.predict(profile, args.treatment)
        if args.report:
            page = model.report(args.report, profile=profile, treatment=args.treatment)
            print(f"report written to {page}", file=sys.stderr)
    except LancelotError as exc:
        print(f"lancelot predict: {exc}", file=sys.stderr)
        return 2
    print("\n".join(model.treatment_lines(out) if args.treatment else model.prediction_lines(out)))
    print(f"[{out['label']}]")
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .runtime.errors import LancelotError
    from .study import Study
    from .synth import generate

    out = Path(args.out or tempfile.mkdtemp(prefix="lancelot-demo-"))
    print(f"1. synthetic data: {args.patients} NSCLC patients, registry + {args.gp_stations} GP station(s) -> {out}")
    paths = generate(n_patients=args.patients, gp_stations=args.gp_stations, seed=args.seed).write(out)
    study = Study.local(demo_stations(paths, args.gp_stations), check_spec=False)
    spec = json.loads(Path(paths["link_spec"]).read_text())
    specs = _demo_specs(spec)

    print("2. private linkage (evaluation run: synthetic data, so the links are compared with the truth)")
    link = study.link(spec, evaluate=True)
    link.print_summary()
    for station, q in _quality(link.raw["links"], paths["truth_links"], "registry").items():
        print(f"  quality against the truth, registry~{station}: precision {q['precision']}, "
              f"recall {q['recall']}, F1 {q['f1']}")
    link.save(out / "link_result.json")
    print(f"  report: {link.report(out / 'link_report')}")

    steps = ((3, "explore", "exploration", "exploration:"), (4, "train", "training", "training:"),
             (5, "cox", "Cox model", "survival: Cox model,"),
             (6, "effects", "treatment effects", "which patients benefit from immunotherapy: Cox with immunotherapy x "
                                                 "COPD (registry x GP), an age spline, strata by stage;"))
    for number, key, name, head in steps:
        try:
            result = study.run("explore" if key == "explore" else "train", specs[key])
        except LancelotError as exc:
            print(f"{number}. {name} failed: {exc}")
            return 2
        result.save(out / f"{key}_result.json")
        print(f"{number}. {head} result in {out / f'{key}_result.json'}")
        result.print_summary()
        profile = {"age_at_diagnosis": 70, "stage": "III", "surgery": 0, "copd": 1, "cardiovascular": 0, "bmi": 24}
        if key == "explore":
            print(f"  report: {result.report(out / 'explore_report')}")
        elif key == "train":
            print(f"  report: {result.report(out / 'train_report')}")
            p = result.predict(profile)
            print(f"  example profile {profile}: predicted risk {p['predicted_risk']:.2f} "
                  f"(95% CI {p['ci_low']:.2f}-{p['ci_high']:.2f}) [research use only]")
        elif key == "cox":
            stage = {"stage I": {**profile, "stage": "I"}, "stage IV": {**profile, "stage": "IV"}}
            print(f"  report: {result.report(out / 'cox_report', profiles=stage)}")
            s = result.predict({**profile, "stage": "IV"})["survival"]
            pts = ", ".join(f"{r['time']:g}: {r['survival']:.2f}" for r in s if r["survival"] is not None)
            print(f"  example profile (stage IV): predicted survival {pts} [research use only]")
        else:
            patient = {"age_at_diagnosis": 68, "who_ps": 1, "surgery": 0, "copd": 1, "cardiovascular": 0, "bmi": 24,
                       "stage": "IV"}
            print(f"  report: {result.report(out / 'effects_report', profile=patient, treatment='immunotherapy')}")
            print("\n".join(result.treatment_lines(result.predict(patient, "immunotherapy"))))
    print(f"done; results in {out}")
    return 0


def demo_stations(paths: dict[str, Path], gp_stations: int) -> dict[str, Path]:
    """The demo's stations: the registry and each GP station's CSV from :func:`lancelot.synth.generate`."""
    return {"registry": paths["registry"], **{f"gp_{i + 1}": paths[f"gp_{i + 1}"] for i in range(gp_stations)}}


DEMO_FEATURES = [{"station": "registry", "column": "age_at_diagnosis"},
                 {"station": "registry", "column": "stage", "type": "categorical", "reference": "I"},
                 {"station": "registry", "column": "surgery"},
                 {"station": "gp_1", "column": "copd"},
                 {"station": "gp_1", "column": "cardiovascular"},
                 {"station": "gp_1", "column": "bmi"}]


EFFECTS_FEATURES = [  # docs/examples/nsclc_treatment_effects.json
    {"station": "registry", "column": "age_at_diagnosis", "spline": {"knots": 4}},
    {"station": "registry", "column": "who_ps"}, {"station": "registry", "column": "immunotherapy"},
    {"station": "registry", "column": "surgery"}, {"station": "gp_1", "column": "copd"},
    {"station": "gp_1", "column": "cardiovascular"}, {"station": "gp_1", "column": "bmi"},
    {"interaction": [{"station": "registry", "column": "immunotherapy"}, {"station": "gp_1", "column": "copd"}]},
    {"interaction": [{"station": "registry", "column": "immunotherapy"}, {"station": "gp_1", "column": "bmi"}],
     "at": [20, 25, 30]}]


def _demo_specs(link_spec: dict) -> dict[str, dict]:
    """The demo's exploration and training specs."""
    return {
        "effects": {"linkage": link_spec, "model": "cox", "time": {"station": "registry", "column": "survival_days"},
                    "event": {"station": "registry", "column": "vital_status"},
                    "strata": {"station": "registry", "column": "stage"}, "features": EFFECTS_FEATURES,
                    "validation": {"method": "cross-validation", "folds": 5}},
        "explore": {"linkage": link_spec, "analyses": [
            {"type": "crosstab", "variables": [{"station": "registry", "column": "stage"},
                                               {"station": "gp_1", "column": "copd"}]},
            {"type": "summary", "variable": {"station": "gp_1", "column": "bmi"},
             "by": {"station": "registry", "column": "surgery"}},
            {"type": "kaplan_meier", "time": {"station": "registry", "column": "survival_days"},
             "event": {"station": "registry", "column": "vital_status"}, "by": {"station": "gp_1", "column": "copd"},
             "times": [91, 182, 365, 730, 1095, 1826]},
            {"type": "histogram", "variable": {"station": "registry", "column": "age_at_diagnosis"},
             "edges": [30, 40, 50, 60, 70, 80, 90, 100]},
            {"type": "table_one", "name": "table_1", "by": {"station": "registry", "column": "immunotherapy"},
             "variables": [{"station": "registry", "column": "age_at_diagnosis"},
                           {"station": "registry", "column": "stage"}, {"station": "gp_1", "column": "copd"},
                           {"station": "gp_1", "column": "bmi"}, {"station": "gp_1", "column": "smoking"}]},
        ]},
        "train": {"linkage": link_spec, "model": "logistic",
                  "outcome": {"station": "registry", "column": "death_within_2y"},
                  "features": DEMO_FEATURES, "validation": {"method": "bootstrap", "repetitions": 100}},
        "cox": {"linkage": link_spec, "model": "cox",
                "time": {"station": "registry", "column": "survival_days"},
                "event": {"station": "registry", "column": "vital_status"},
                "features": DEMO_FEATURES},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lancelot", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic registry and GP CSVs, the true links and a linkage spec")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--gp-stations", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--error-level", choices=["low", "default", "high", "heavy"], default="default",
                   help="heavy: several errors per record across fields, more missing values")
    p.add_argument("--surnames", choices=["dutch", "concentrated"], default="dutch",
                   help="concentrated: 30 surnames cover 80%% of people")
    p.add_argument("--gp-size", type=int, default=None,
                   help="records per GP station (default: the covered patients plus 30%%); large = many unmatched")
    p.add_argument("--gp-coverage", type=float, default=0.85, help="share of registry patients at each GP station")
    p.add_argument("--schema", choices=["dutch", "intl"], default="dutch",
                   help="intl: full given names, addresses, suburbs, 4-digit postcodes, free-form dates, an id "
                        "number, 0-4 modified fields per GP record")
    p.set_defaults(func=cmd_synth)

    for a in ALGORITHMS.values():
        p = sub.add_parser(a.verb, help=a.help)
        p.add_argument("--station", action="append", default=[], metavar="NAME=CSV",
                       help="a station and its CSV database (repeat for each station)")
        p.add_argument("--spec", required=True, help="the JSON spec (see docs/spec.md)")
        p.add_argument("--output", help="write the JSON result here (default: stdout)")
        p.add_argument("--min-cell-count", type=int, help="raise the disclosure-control minimum (default 10)")
        p.add_argument("--rounding-base", type=int, choices=[1, 5, 10],
                       help="raise the rounding base of released counts (the nodes' policies set the floor, "
                            "default 5)")
        p.add_argument("--evaluate", action="store_true",
                       help="evaluation run: also return the links as record ids (local data or opted-in nodes only)")
        p.add_argument("--report", metavar="DIR", help="also write a readable report (HTML and PNG plots) to DIR")
        p.set_defaults(func=cmd_algorithm)

    p = sub.add_parser("validate", help="check a spec before submitting it (structure and meaning, no data)")
    p.add_argument("--spec", required=True)
    p.add_argument("--kind", choices=[a.verb for a in ALGORITHMS.values()], help="default: recognised from the spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("predict", help="apply a trained model to one patient profile (research use only)")
    p.add_argument("--model", required=True, help="the JSON result of lancelot train")
    p.add_argument("--set", action="append", default=[], metavar="COLUMN=VALUE",
                   help="a profile value, e.g. --set age_at_diagnosis=70 --set stage=IV (repeat for each feature)")
    p.add_argument("--treatment", metavar="COLUMN",
                   help="decision-support view: the prediction with each value of this 0/1 or categorical feature "
                        "side by side, and its odds or hazard ratio for the profile (interactions included)")
    p.add_argument("--report", metavar="DIR", help="also write the model's report with this profile's decision-support "
                                                   "view (needs --treatment)")
    p.add_argument("--output", help="also write the prediction as JSON here")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="synthetic data, then link, explore and train on an in-process network")
    p.add_argument("--out", help="folder for data and results (default: a new temporary folder)")
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--gp-stations", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

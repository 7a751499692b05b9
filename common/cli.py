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

ALGORITHMS = {"link": "lancelot_linkage", "explore": "lancelot_exploration", "train": "lancelot_training"}


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


def run_local(algorithm: str, stations: dict[str, Path], kwargs: dict, evaluate: bool = False,
              station_env: dict[str, dict[str, str]] | None = None) -> dict:
    """Run one algorithm on an in-process network; raise on a refusal, return the result otherwise.

    The network is the installed vantage6 major's (4.15: :mod:`lancelot.v6.local`, 5.x: :mod:`lancelot.v6.v5.local`).
    """
    from .runtime.errors import LancelotError
    from .v6.entry import local_network

    LocalNetwork = local_network()

    package = ALGORITHMS[algorithm]
    if not _algorithm_exists(package):
        raise LancelotError(f"the '{algorithm}' algorithm ({package}) is not built yet")
    env = {s: dict((station_env or {}).get(s, {})) for s in stations}
    if evaluate:  # a local run: the researcher holds every station's data and opts in for all of them
        for s in env:
            env[s]["LANCELOT_ALLOW_EVALUATE"] = "1"
    with LocalNetwork(package, stations, station_env=env) as net:
        result = net.run({"stations": net.orgs, **kwargs})
    if isinstance(result, dict) and "lancelot_error" in result:
        raise LancelotError(result["lancelot_error"])
    return result


def _algorithm_exists(package: str) -> bool:
    import importlib

    try:
        module = importlib.import_module(package)
    except ImportError:
        return False
    return hasattr(module, "central") and hasattr(module, "partial")


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

    stations = _parse_stations(args.station)
    kwargs: dict[str, Any] = {"spec": _load_spec(args.spec)}
    if args.min_cell_count is not None:
        kwargs["min_cell_count"] = args.min_cell_count
    if getattr(args, "rounding_base", None) is not None:
        kwargs["rounding_base"] = args.rounding_base
    if args.evaluate:
        kwargs["evaluate"] = True
    try:
        result = run_local(args.command, stations, kwargs, evaluate=args.evaluate)
    except LancelotError as exc:
        print(f"lancelot {args.command}: {exc}", file=sys.stderr)
        return 2
    _write_output(result, args.output)
    if getattr(args, "report", None):
        from .report import write_explore_report, write_link_report, write_train_report

        writers = {"link": write_link_report, "explore": write_explore_report, "train": write_train_report}
        print(f"report written to {writers[args.command](result, args.report)}", file=sys.stderr)
    return 0


def _print_grid(columns: list[str], rows: list[list[str]], labels: int = 1) -> None:
    """Rows of text in aligned columns, the first ``labels`` left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    for line in [columns, *rows]:
        cells = [str(x).ljust(w) if i < labels else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths))]
        print("    " + "  ".join(cells).rstrip())


def _print_explore(result: dict) -> None:
    for a in result["analyses"]:
        print(f"  {a['name']} ({', '.join(a['variables'])})")
        if a["type"] == "crosstab":
            from .explore.tables import crosstab_grids

            for title, columns, rows in crosstab_grids(a, withheld="(withheld)"):
                if title:
                    print(f"    {title}")
                _print_grid(columns, rows)
        elif a["type"] == "count" and "table" in a:
            for r in a["table"]:
                keys = [k for k in r if k != "count"]
                print(f"    {' x '.join(str(r[k]) for k in keys):<28} {r['count'] if r['count'] is not None else '(withheld)'}")
        elif a["type"] == "histogram":
            for b in a["bins"]:
                print(f"    {b['bin']:<28} {b['count'] if b['count'] is not None else '(withheld)'}")
            if "edges_dropped" in a:
                print(f"    edges {a['edges_dropped']['edges']} dropped: {a['edges_dropped']['reason']}")
        elif a["type"] == "summary":
            o = a["overall"]
            print(f"    overall: n={o.get('n')} mean={o.get('mean', float('nan')):.2f} sd={o.get('sd', float('nan')):.2f}")
            for g in a.get("by", []):
                key = [k for k in g if k not in ("n", "mean", "variance", "sd", "refused")][0]
                mean = f"{g['mean']:.2f}" if g.get("mean") is not None else (
                    "-" if g.get("n") == 0 else "(withheld)")
                print(f"    {key}={g[key]}: n={g.get('n')} mean={mean}")
        elif a["type"] == "table_one":
            from .explore.tables import table_one_grid

            _print_grid(*table_one_grid(a, withheld="(withheld)"), labels=2)
        elif a["type"] == "kaplan_meier":
            for g in a["groups"]:
                pts = ", ".join(f"{p['time']:g}:{p['survival']:.2f}" for p in g["curve"] if p["survival"] is not None)
                print(f"    group {g['group']} (n={g['n']}): S(t) {pts}")
            if "logrank" in a:
                print(f"    log-rank p = {a['logrank']['p_value']:.3g}")
    s = result["disclosure_control"]
    withheld = sum(s.get(f"withheld_{kind}", 0) for kind in ("primary", "zero", "secondary"))
    print(f"  disclosure control: minimum cell count {s['min_cell_count']}, counts rounded to {s.get('rounding_base', 1)}, "
          f"{withheld} counts withheld; cost: {result['cost']['rounds']} rounds, {result['cost']['seconds_total']} s")


def _print_cox(result: dict) -> None:
    conv, c = result["convergence"], result["quality"]["concordance"]
    print(f"  Cox proportional hazards ({result['ties']} ties) for {result['time']['column']} / "
          f"{result['event']['column']}: {result['n_used']} complete cases, {result['events']} events; "
          f"{conv['iterations']} Newton iterations, {result['cost']['rounds']} rounds")
    print(f"    {'feature':<22} {'station':<9} {'estimate':>9} {'std err':>8} {'hazard ratio (95% CI)':>24}")
    for r in result["coefficients"]:
        print(f"    {r['feature']:<22} {r['station']:<9} {r['estimate']:>9.4f} {r['std_error']:>8.4f} "
              f"{r['hazard_ratio']:>8.3f} ({r['hr_ci_low']:.3f}-{r['hr_ci_high']:.3f})")
    print(f"    concordance {c['estimate']:.3f} (exact value in [{c['lower']:.3f}, {c['upper']:.3f}])")
    base = result["baseline"]
    for block in base.get("strata", [{"stratum": None, "times": base.get("times", [])}]):
        pts = ", ".join(f"{r['time']:g}:{r['survival_at_mean']:.2f}" for r in block["times"]
                        if r["survival_at_mean"] is not None)
        where = "" if block["stratum"] is None else f" ({base['stratified_by']} {block['stratum']})"
        print(f"    survival at the mean profile{where}: {pts}")
    _print_terms(result, "hazard_ratio")


def _print_terms(result: dict, ratio: str) -> None:
    """Effect modification and spline tests, when the model has them."""
    for block in result.get("interactions", []):
        test = block["wald_test"]
        print(f"    {block['interaction']}: interaction p = {test['p_value']:.3g} (Wald, {test['df']} df)")
        for r in block["effects"]:
            print(f"      {r['effect_of']} within {r['modifier']} = {r['at']}: {ratio.replace('_', ' ')} "
                  f"{r[ratio]:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})")
    for s in result.get("splines", []):
        print(f"    spline {s['column']} (knots {', '.join(f'{k:g}' for k in s['knots'])}): overall p = "
              f"{s['overall_test']['p_value']:.3g}, non-linearity p = {s['nonlinearity_test']['p_value']:.3g}")


def _print_train(result: dict) -> None:
    if result.get("model") == "cox":
        _print_cox(result)
        return
    conv = result["convergence"]
    print(f"  logistic regression for {result['outcome']['column']}: {result['n_used']} complete cases, "
          f"{result['events']} events; {conv['iterations']} Newton iterations, {result['cost']['rounds']} rounds")
    print(f"    {'feature':<22} {'station':<9} {'estimate':>9} {'std err':>8} {'odds ratio (95% CI)':>24}")
    for r in result["coefficients"]:
        print(f"    {r['feature']:<22} {r['station']:<9} {r['estimate']:>9.4f} {r['std_error']:>8.4f} "
              f"{r['odds_ratio']:>8.3f} ({r['or_ci_low']:.3f}-{r['or_ci_high']:.3f})")
    print(f"    AUC {result['quality']['auc']:.3f}")
    _print_terms(result, "odds_ratio")


def _print_link_summary(result: dict) -> None:
    s = result["summary"]
    print(f"  records per station: {s['records_per_station']}")
    for pair, p in s["pairs"].items():
        print(f"  {pair}: {p['linked']} linked (EM-estimated precision {p['em_expected_precision']}, "
              f"recall {p['em_expected_recall']}); by the similarity step: {p.get('linked_by_similarity')}")
    print(f"  linked to all stations: {s['linked_to_all_stations']}")
    c = result["cost"]
    print(f"  cost: {c['rounds']} rounds, {c['bytes_to_stations'] + c['bytes_from_stations']:,} bytes relayed, "
          f"{c['seconds_total']} s")


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
    from .runtime.errors import LancelotError
    from .training.predict import compare_treatment, predict

    model = json.loads(Path(args.model).read_text())
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
        out = compare_treatment(model, profile, args.treatment) if args.treatment else predict(model, profile)
        if args.report:
            from .report import write_train_report

            page = write_train_report(model, args.report, decision={"profile": profile, "treatment": args.treatment})
            print(f"report written to {page}", file=sys.stderr)
    except LancelotError as exc:
        print(f"lancelot predict: {exc}", file=sys.stderr)
        return 2
    if args.treatment:
        _print_treatment(model, out)
    elif model.get("model") == "cox":
        print(f"predicted survival ({out['time_unit']}); hazard ratio {out['hazard_ratio_vs_reference']:.3f} "
              "against the reference profile:")
        for r in out["survival"]:
            print(f"  t = {r['time']:g}: {r['survival']:.3f} (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f})")
        for w in out.get("withheld", []):
            print(f"  t = {w['time']:g}: withheld ({w['reason']})")
    else:
        print(f"predicted risk of {out['outcome']}: {out['predicted_risk']:.3f} "
              f"(95% CI {out['ci_low']:.3f}-{out['ci_high']:.3f})")
    print(f"[{out['label']}]")
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=2))
    return 0


def _print_treatment(model: dict, out: dict) -> None:
    treatment = out["treatment"]
    cox = model.get("model") == "cox"
    ratio = "hazard_ratio" if cox else "odds_ratio"
    if out["arms"][0].get("stratum"):
        print(f"stratum: {out['arms'][0]['stratum']}")
    if cox:
        labels = [f"{treatment}={arm['treatment'][treatment]}" for arm in out["arms"]]
        print("predicted survival (95% CI), " + " | ".join(labels))
        for i, row in enumerate(out["arms"][0]["survival"]):
            cells = [f"{a['survival'][i]['survival']:.3f} ({a['survival'][i]['ci_low']:.3f}-{a['survival'][i]['ci_high']:.3f})"
                     for a in out["arms"]]
            print(f"  t = {row['time']:g}: " + " | ".join(cells))
    else:
        for arm in out["arms"]:
            print(f"{treatment}={arm['treatment'][treatment]}: predicted risk of {arm['outcome']} "
                  f"{arm['predicted_risk']:.3f} (95% CI {arm['ci_low']:.3f}-{arm['ci_high']:.3f})")
    for r in out["ratios"]:
        print(f"{ratio.replace('_', ' ')} for this profile, {treatment}={r['treatment'][treatment]} vs "
              f"{r['versus'][treatment]}: {r[ratio]:.3f} (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f})")


def cmd_demo(args: argparse.Namespace) -> int:
    from .runtime.errors import LancelotError
    from .synth import generate

    out = Path(args.out or tempfile.mkdtemp(prefix="lancelot-demo-"))
    print(f"1. synthetic data: {args.patients} NSCLC patients, registry + {args.gp_stations} GP station(s) -> {out}")
    paths = generate(n_patients=args.patients, gp_stations=args.gp_stations, seed=args.seed).write(out)
    stations = {"registry": paths["registry"], **{f"gp_{i + 1}": paths[f"gp_{i + 1}"] for i in range(args.gp_stations)}}
    spec = json.loads(Path(paths["link_spec"]).read_text())

    print("2. private linkage (evaluation run: synthetic data, so the links are compared with the truth)")
    link_result = run_local("link", stations, {"spec": spec, "evaluate": True}, evaluate=True)
    _print_link_summary(link_result)
    for station, q in _quality(link_result["links"], paths["truth_links"], "registry").items():
        print(f"  quality against the truth, registry~{station}: precision {q['precision']}, "
              f"recall {q['recall']}, F1 {q['f1']}")
    (out / "link_result.json").write_text(json.dumps(link_result, indent=2))
    from .report import write_link_report

    print(f"  report: {write_link_report(link_result, out / 'link_report')}")

    steps_not_built = []
    for number, algorithm, what in ((3, "explore", "exploration"), (4, "train", "training")):
        if not _algorithm_exists(ALGORITHMS[algorithm]):
            steps_not_built.append(what)
            print(f"{number}. {what}: NOT BUILT YET (the {ALGORITHMS[algorithm]} algorithm does not exist); skipped")
            continue
        try:
            demo = _demo_specs(spec)[algorithm]
            result = run_local(algorithm, stations, {"spec": demo}, evaluate=False)
        except LancelotError as exc:
            print(f"{number}. {what} failed: {exc}")
            return 2
        (out / f"{algorithm}_result.json").write_text(json.dumps(result, indent=2))
        print(f"{number}. {what}: result in {out / f'{algorithm}_result.json'}")
        from .report import write_explore_report, write_train_report

        if algorithm == "explore":
            _print_explore(result)
            print(f"  report: {write_explore_report(result, out / 'explore_report')}")
        else:
            _print_train(result)
            print(f"  report: {write_train_report(result, out / 'train_report')}")
            from .training.predict import compare_treatment, predict

            profile = {"age_at_diagnosis": 70, "stage": "III", "surgery": 0, "copd": 1, "cardiovascular": 0, "bmi": 24}
            p = predict(result, profile)
            print(f"  example profile {profile}: predicted risk {p['predicted_risk']:.2f} "
                  f"(95% CI {p['ci_low']:.2f}-{p['ci_high']:.2f}) [research use only]")
            try:
                cox = run_local("train", stations, {"spec": _demo_specs(spec)["cox"]}, evaluate=False)
            except LancelotError as exc:
                print(f"5. Cox model failed: {exc}")
                return 2
            (out / "cox_result.json").write_text(json.dumps(cox, indent=2))
            print(f"5. survival: Cox model, result in {out / 'cox_result.json'}")
            _print_cox(cox)
            from .report import write_cox_report

            stage = {"stage I": {**profile, "stage": "I"}, "stage IV": {**profile, "stage": "IV"}}
            print(f"  report: {write_cox_report(cox, out / 'cox_report', stage)}")
            s = predict(cox, {**profile, "stage": "IV"})["survival"]
            pts = ", ".join(f"{r['time']:g}: {r['survival']:.2f}" for r in s if r["survival"] is not None)
            print(f"  example profile (stage IV): predicted survival {pts} [research use only]")
            try:
                effects = run_local("train", stations, {"spec": _demo_specs(spec)["effects"]}, evaluate=False)
            except LancelotError as exc:
                print(f"6. treatment effects failed: {exc}")
                return 2
            (out / "effects_result.json").write_text(json.dumps(effects, indent=2))
            print("6. which patients benefit from immunotherapy: Cox with immunotherapy x COPD (registry x GP), an "
                  f"age spline, strata by stage; result in {out / 'effects_result.json'}")
            _print_cox(effects)
            patient = {"age_at_diagnosis": 68, "who_ps": 1, "surgery": 0, "copd": 1, "cardiovascular": 0, "bmi": 24,
                       "stage": "IV"}
            decision = {"profile": patient, "treatment": "immunotherapy"}
            print(f"  report: {write_train_report(effects, out / 'effects_report', decision=decision)}")
            _print_treatment(effects, compare_treatment(effects, patient, "immunotherapy"))
    print(f"done; results in {out}" + (f" (not built yet: {', '.join(steps_not_built)})" if steps_not_built else ""))
    return 0


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
                    "strata": {"station": "registry", "column": "stage"}, "features": EFFECTS_FEATURES},
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
                  "features": DEMO_FEATURES},
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

    for name, what in (("link", "link patients across stations"), ("explore", "statistics on the linked cohort"),
                       ("train", "train a model on the linked cohort")):
        p = sub.add_parser(name, help=what)
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
    p.add_argument("--kind", choices=["link", "explore", "train"], help="default: recognised from the spec")
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

#!/usr/bin/env python3
"""Linkage benchmark: lancelot's private linkage side by side with a non-private Splink run.

On synthetic data with ground truth, at two error levels: precision, recall and F1 of both, the
wall time of both, and lancelot's rounds. lancelot runs its real path (the in-process Vantage6
network, every step in a fresh process); Splink (DuckDB) links the same records in the clear,
after the same normalisation, with a standard Fellegi-Sunter set-up and the same one-to-one rule.

    .venv/bin/pip install -e ".[bench]"     # Splink, for this script only
    .venv/bin/python scripts/bench_linkage.py [--quick] [--sizes 10000 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from lancelot.cli import run_local
from lancelot.linkage.normalise import normalise
from lancelot.linkage.spec import parse_linkage_spec
from lancelot.synth import generate


def quality(pairs: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float]:
    tp = len(pairs & truth)
    p = tp / len(pairs) if pairs else 0.0
    r = tp / len(truth) if truth else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if tp else 0.0}


def run_lancelot(paths: dict[str, Path]) -> tuple[set, float, int]:
    spec = json.loads(Path(paths["link_spec"]).read_text())
    stations = {"registry": paths["registry"], "gp_1": paths["gp_1"]}
    t0 = time.perf_counter()
    result = run_local("link", stations, {"spec": spec, "evaluate": True, "progress": False}, evaluate=True)
    seconds = time.perf_counter() - t0
    pairs = {(str(x["registry"]), str(x["gp_1"])) for x in result["links"]}
    return pairs, seconds, result["cost"]["rounds"]


def _clean(spec, station: str, df: pd.DataFrame) -> pd.DataFrame:
    comps = normalise(spec, station, df)
    out = pd.DataFrame({
        "unique_id": df[spec.stations[station]].astype(str).to_numpy(),
        "surname": comps["surname"].to_numpy(), "initials": comps["initials"].to_numpy(),
        "birth_date": [None if v is None else f"{v[:4]}-{v[4:6]}-{v[6:]}" for v in comps["birth_date"]],
        "sex": comps["sex"].to_numpy(), "postcode": comps["postcode"].to_numpy(),
    })
    return out


def run_splink(paths: dict[str, Path]) -> tuple[set, float]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    spec = parse_linkage_spec(json.loads(Path(paths["link_spec"]).read_text()))
    left = _clean(spec, "registry", pd.read_csv(paths["registry"]))
    right = _clean(spec, "gp_1", pd.read_csv(paths["gp_1"]))
    t0 = time.perf_counter()
    db = DuckDBAPI()
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.JaroWinklerAtThresholds("surname", [0.95, 0.88]),
            cl.ExactMatch("initials"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("postcode", [1, 2]),
        ],
        blocking_rules_to_generate_predictions=[block_on("birth_date"), block_on("surname"),
                                                block_on("postcode"), block_on("initials", "sex")],
    )
    linker = Linker([db.register(left, table_name="registry"), db.register(right, table_name="gp")], settings,
                    log_level=40)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    pred = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    # the same one-to-one rule as lancelot: greedy by match probability
    pred = pred.sort_values("match_probability", ascending=False)
    swap = pred["source_dataset_l"] != "registry"  # Splink orders the two tables its own way
    reg_ids = pred["unique_id_l"].where(~swap, pred["unique_id_r"])
    gp_ids = pred["unique_id_r"].where(~swap, pred["unique_id_l"])
    used_l, used_r, pairs = set(), set(), set()
    for a, b in zip(reg_ids, gp_ids):
        if a in used_l or b in used_r:
            continue
        used_l.add(a)
        used_r.add(b)
        pairs.add((str(a), str(b)))
    return pairs, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 patients only")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000], help="registry sizes (GP stations are ~20%% larger)")
    ap.add_argument("--levels", nargs="+", default=["default", "high"])
    ap.add_argument("--no-splink", action="store_true", help="skip the Splink comparison")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [2000] if args.quick else args.sizes
    rows = []
    for n in sizes:
        for level in args.levels:
            folder = Path(tempfile.mkdtemp(prefix="bench-link-"))
            paths = generate(n_patients=n, gp_stations=1, seed=11, error_level=level).write(folder)
            truth_df = pd.read_csv(paths["truth_links"], dtype=str)
            truth = set(zip(truth_df["registry_id"], truth_df["station_id"]))
            n_gp = len(pd.read_csv(paths["gp_1"]))
            pairs, seconds, rounds = run_lancelot(paths)
            row = {"registry": n, "gp": n_gp, "error_level": level, "lancelot": {**quality(pairs, truth),
                   "seconds": round(seconds, 1), "rounds": rounds}}
            if not args.no_splink:
                try:
                    sp_pairs, sp_seconds = run_splink(paths)
                    row["splink"] = {**quality(sp_pairs, truth), "seconds": round(sp_seconds, 1)}
                    row["f1_points_vs_splink"] = round(100 * (row["lancelot"]["f1"] - row["splink"]["f1"]), 2)
                    row["time_ratio_lancelot_over_splink"] = round(seconds / sp_seconds, 1)
                except ImportError:
                    row["splink"] = "not installed (pip install -e '.[bench]')"
            rows.append(row)
            print(_line(row), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"runs": rows}, indent=1))
    return 0


def _line(row: dict) -> str:
    lc = row["lancelot"]
    text = (f"{row['registry']:>7} x {row['gp']:<7} {row['error_level']:<8} lancelot P {lc['precision']:.4f} "
            f"R {lc['recall']:.4f} F1 {lc['f1']:.4f} {lc['seconds']:>6.1f}s {lc['rounds']} rounds")
    if isinstance(row.get("splink"), dict):
        sp = row["splink"]
        text += (f" | splink P {sp['precision']:.4f} R {sp['recall']:.4f} F1 {sp['f1']:.4f} {sp['seconds']:>6.1f}s"
                 f" | F1 {row['f1_points_vs_splink']:+.2f} points, time x{row['time_ratio_lancelot_over_splink']}")
    return text


if __name__ == "__main__":
    sys.exit(main())

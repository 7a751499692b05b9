#!/usr/bin/env python3
"""Linkage benchmark: lancelot's private linkage side by side with a non-private Splink run.

Scenarios (synthetic data with ground truth, ``lancelot synth`` options):

    10k        10,000 registry x ~12,000 GP records, default errors
    conc50k    50,000 x 80,000, 30,000 true pairs, 30 surnames cover 80% of people
    heavy10k   10,000 x ~12,000, several errors per record across fields (error level "heavy")
    large      100,000 x 1,000,000 (85,000 true pairs, 915,000 unmatched GP records)
    intl10k    10,000 x ~12,000 in another schema (full given names, street addresses, suburbs,
               4-digit postcodes, free-form dates, an id number), 0-4 modified fields per GP record
    lean10k, large-lean   the same with six match keys instead of twelve (half the hashing, and half the
               curve work with blinded pseudonyms)

For each: precision, recall and F1 of both, wall time, CPU time (of the whole process tree, sampled:
on a shared machine wall time grows with the other users' load, CPU time much less)
and peak memory (resident set of the whole
process tree, sampled every 0.2 s) of both, lancelot's rounds; and a calibration table of
lancelot's links (predicted vs observed precision per band of match probability). lancelot runs
its real path (the in-process Vantage6 network, every step in a fresh process, stations in
parallel); Splink (DuckDB) links the same records in the clear, after the same normalisation,
with a standard Fellegi-Sunter set-up and the same one-to-one rule.

    .venv/bin/pip install -e ".[bench]"     # Splink, for this script only
    .venv/bin/python scripts/bench_linkage.py [--quick] [--scenarios 10k conc50k heavy10k large] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lancelot.cli import run_local
from lancelot.linkage.keys import key_recipes
from lancelot.linkage.normalise import normalise
from lancelot.linkage.spec import parse_linkage_spec
from lancelot.synth import generate

# Six of the twelve default keys (the ones whose removal costs most F1): with blinded pseudonyms each key
# costs two curve operations per record, the bulk of the time. Set in the spec's "keys".
LEAN_KEYS = [["surname", "initials.first", "birth_date"], ["surname", "birth_date.sorted", "sex"],
             ["surname", "initials.first", "birth_date.md", "sex"], ["initials", "birth_date.y", "sex", "postcode"],
             ["surname.first", "birth_date", "sex", "postcode.pc4"], ["initials", "birth_date", "sex"]]
SCENARIOS = {
    "10k": {"n_patients": 10_000},
    "conc50k": {"n_patients": 50_000, "surnames": "concentrated", "gp_size": 80_000, "gp_coverage": 0.6},
    "heavy10k": {"n_patients": 10_000, "error_level": "heavy"},
    "large": {"n_patients": 100_000, "gp_size": 1_000_000},
    "intl10k": {"n_patients": 10_000, "schema": "intl"},
    "lean10k": {"n_patients": 10_000, "keys": LEAN_KEYS},
    "large-lean": {"n_patients": 100_000, "gp_size": 1_000_000, "keys": LEAN_KEYS},
}
BANDS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0]


class PeakMemory:
    """Peak resident memory and CPU time of this process and all its descendants (Linux /proc),
    sampled every ``interval`` seconds (a process's last fraction of an interval is missed)."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._cpu: dict[int, float] = {}
        self._cpu0: dict[int, float] = {}
        self._first = True          # the first sample sets the baseline of the processes already running

    def _tree_rss(self) -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        cpu: dict[int, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
                cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
                with open(f"/proc/{entry}/statm") as f:
                    rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid == parent and pid not in tree:
                    tree.add(pid)
                    frontier.append(pid)
        for pid in tree:
            if pid in cpu:
                self._cpu0.setdefault(pid, cpu[pid] if self._first else 0.0)
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu[pid])
        self._first = False
        return sum(rss.get(pid, 0) for pid in tree)

    @property
    def cpu_seconds(self) -> float:
        """CPU time the tree used while sampled (processes already running at the start count from then)."""
        return sum(v - self._cpu0.get(pid, 0.0) for pid, v in self._cpu.items())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = max(self.peak, self._tree_rss())    # baseline CPU of the processes already running
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def gb(self) -> float:
        return round(self.peak / 1e9, 2)


def quality(pairs: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float]:
    tp = len(pairs & truth)
    p = tp / len(pairs) if pairs else 0.0
    r = tp / len(truth) if truth else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if tp else 0.0}


def run_lancelot(paths: dict[str, Path], keys: list | None = None) -> tuple[list[dict], float, float, int, float, dict]:
    spec = json.loads(Path(paths["link_spec"]).read_text())
    if keys:
        spec["keys"] = keys
    stations = {"registry": paths["registry"], "gp_1": paths["gp_1"]}
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = run_local("link", stations, {"spec": spec, "evaluate": True, "progress": False,
                                              "subtask_timeout": 14400}, evaluate=True)
        seconds = time.perf_counter() - t0
    cpu = mem.cpu_seconds
    return (result["links"], seconds, cpu, result["cost"]["rounds"], mem.gb,
            result["summary"]["pairs"]["registry~gp_1"])


def calibration(links: list[dict], truth: set[tuple[str, str]]) -> list[dict]:
    df = pd.DataFrame({"p": [x["probability"] for x in links],
                       "ok": [(str(x["registry"]), str(x["gp_1"])) in truth for x in links]})
    df["band"] = pd.cut(df["p"], BANDS, include_lowest=True)
    out = []
    for band, g in df.groupby("band", observed=True):
        out.append({"band": f"{band.left:.3f}-{band.right:.3f}", "links": len(g),
                    "predicted_precision": round(float(g["p"].mean()), 4),
                    "observed_precision": round(float(g["ok"].mean()), 4)})
    return out


def _clean(spec, station: str, df: pd.DataFrame) -> pd.DataFrame:
    comps = normalise(spec, station, df)
    return pd.DataFrame({
        "unique_id": df[spec.stations[station]].astype(str).to_numpy(),
        "surname": comps["surname"].to_numpy(), "initials": comps["initials"].to_numpy(),
        "birth_date": [None if v is None else f"{v[:4]}-{v[4:6]}-{v[6:]}" for v in comps["birth_date"]],
        "sex": comps["sex"].to_numpy(), "postcode": comps["postcode"].to_numpy(),
    })


def _clean_intl(spec, station: str, df: pd.DataFrame) -> pd.DataFrame:
    comps = normalise(spec, station, df)
    return pd.DataFrame({
        "unique_id": df[spec.stations[station]].astype(str).to_numpy(),
        **{c: comps[c].to_numpy() for c in ("given_name", "surname", "sex", "postcode", "suburb", "id_number")},
        "street": comps["address.street"].to_numpy(), "number": comps["address.number"].to_numpy(),
        "date_of_birth": [None if v is None else f"{v[:4]}-{v[4:6]}-{v[6:]}" for v in comps["date_of_birth"]],
    })


def _splink_intl_settings(cl, SettingsCreator, block_on):
    return SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.JaroWinklerAtThresholds("given_name", [0.95, 0.88]),
            cl.JaroWinklerAtThresholds("surname", [0.95, 0.88]),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("postcode", [1]),
            cl.JaroWinklerAtThresholds("street", [0.95, 0.88]),
            cl.ExactMatch("number"),
            cl.JaroWinklerAtThresholds("suburb", [0.95, 0.88]),
            cl.LevenshteinAtThresholds("id_number", [1, 2]),
        ],
        blocking_rules_to_generate_predictions=[block_on("date_of_birth"), block_on("surname", "given_name"),
                                                block_on("id_number"), block_on("postcode", "street"),
                                                block_on("given_name", "substr(date_of_birth, 1, 4)")],
    )


def run_splink(paths: dict[str, Path]) -> tuple[set, float, float]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    spec = parse_linkage_spec(json.loads(Path(paths["link_spec"]).read_text()))
    intl = any(f.kind == "id" for f in spec.fields)
    clean = _clean_intl if intl else _clean
    left = clean(spec, "registry", pd.read_csv(paths["registry"], dtype=str))
    right = clean(spec, "gp_1", pd.read_csv(paths["gp_1"], dtype=str))
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        db = DuckDBAPI()
        settings = _splink_intl_settings(cl, SettingsCreator, block_on) if intl else SettingsCreator(
            link_type="link_only",
            comparisons=[
                cl.JaroWinklerAtThresholds("surname", [0.95, 0.88]),
                cl.ExactMatch("initials"),
                cl.DateOfBirthComparison("birth_date", input_is_string=True),
                cl.ExactMatch("sex"),
                cl.LevenshteinAtThresholds("postcode", [1, 2]),
            ],
            # blocking on surname alone would make ~10^8 comparisons where a few surnames dominate:
            # surname goes with initials, postcode alone, and a last rule for errors in both date and postcode
            blocking_rules_to_generate_predictions=[block_on("birth_date"), block_on("surname", "initials"),
                                                    block_on("postcode"),
                                                    block_on("initials", "sex", "substr(birth_date, 1, 4)")],
        )
        linker = Linker([db.register(left, table_name="registry"), db.register(right, table_name="gp")], settings,
                        log_level=40)
        linker.training.estimate_u_using_random_sampling(max_pairs=2e6)
        if intl:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname", "given_name"))
        else:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname", "initials"))
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
        seconds = time.perf_counter() - t0
    cpu = mem.cpu_seconds
    return pairs, seconds, cpu, mem.gb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 patients, default and heavy errors")
    ap.add_argument("--scenarios", nargs="+", default=["10k", "conc50k", "heavy10k"], choices=list(SCENARIOS))
    ap.add_argument("--no-splink", action="store_true", help="skip the Splink comparison")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--data", metavar="DIR", help="use the synthetic data already in DIR (one scenario)")
    ap.add_argument("--json", metavar="FILE", help="write every number (and the calibration tables) here")
    args = ap.parse_args()
    scenarios = ({"quick": {"n_patients": 2000}, "quick-heavy": {"n_patients": 2000, "error_level": "heavy"}}
                 if args.quick else {name: SCENARIOS[name] for name in args.scenarios})
    rows = []
    for name, options in scenarios.items():
        folder = Path(tempfile.mkdtemp(prefix=f"bench-link-{name}-"))
        t0 = time.perf_counter()
        keys = options.get("keys")
        if args.data:
            folder = Path(args.data)
            paths = {p.stem: p for p in folder.iterdir()}
        else:
            paths = generate(gp_stations=1, seed=args.seed, **{k: v for k, v in options.items() if k != "keys"}).write(folder)
        print(f"[{name}] synthetic data in {time.perf_counter() - t0:.0f}s: {folder}", file=sys.stderr, flush=True)
        truth_df = pd.read_csv(paths["truth_links"], dtype=str)
        truth = set(zip(truth_df["registry_id"], truth_df["station_id"]))
        n_gp = sum(1 for _ in open(paths["gp_1"])) - 1
        load = os.getloadavg()[0]
        links, seconds, cpu, rounds, gb, summary = run_lancelot(paths, keys)
        pairs = {(str(x["registry"]), str(x["gp_1"])) for x in links}
        row = {"scenario": name, "registry": options["n_patients"], "gp": n_gp, "true_pairs": len(truth),
               "options": options,
               "load_average_before": round(load, 1),
               "lancelot": {**quality(pairs, truth), "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                            "peak_memory_gb": gb, "keys": len(keys) if keys else len(key_recipes(parse_linkage_spec(
                                json.loads(Path(paths["link_spec"]).read_text())))),
                            "rounds": rounds, "em_expected_precision": summary["em_expected_precision"],
                            "em_expected_recall": summary["em_expected_recall"]},
               "calibration": calibration(links, truth)}
        print(_line(row), file=sys.stderr, flush=True)
        if not args.no_splink:
            try:
                sp_pairs, sp_seconds, sp_cpu, sp_gb = run_splink(paths)
                row["splink"] = {**quality(sp_pairs, truth), "seconds": round(sp_seconds, 1),
                                 "cpu_seconds": round(sp_cpu, 1), "peak_memory_gb": sp_gb}
                row["f1_points_vs_splink"] = round(100 * (row["lancelot"]["f1"] - row["splink"]["f1"]), 2)
                row["time_ratio_lancelot_over_splink"] = round(seconds / sp_seconds, 2)
            except ImportError:
                row["splink"] = "not installed (pip install -e '.[bench]')"
        rows.append(row)
        print(_line(row), file=sys.stderr, flush=True)
        print(_calibration_table(row), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "cpus": os.cpu_count()}, indent=1) + "\n")
    return 0


def _line(row: dict) -> str:
    lc = row["lancelot"]
    text = (f"{row['scenario']:>10} load {row['load_average_before']:>4}  {row['registry']:>7} x {row['gp']:<8} lancelot P {lc['precision']:.4f} "
            f"R {lc['recall']:.4f} F1 {lc['f1']:.4f} {lc['seconds']:>6.1f}s (cpu {lc['cpu_seconds']:.0f}s) "
            f"{lc['peak_memory_gb']:.2f}GB {lc['keys']} keys "
            f"{lc['rounds']} rounds (EM: P {lc['em_expected_precision']}, R {lc['em_expected_recall']})")
    if isinstance(row.get("splink"), dict):
        sp = row["splink"]
        text += (f" | splink P {sp['precision']:.4f} R {sp['recall']:.4f} F1 {sp['f1']:.4f} {sp['seconds']:>6.1f}s "
                 f"(cpu {sp['cpu_seconds']:.0f}s) "
                 f"{sp['peak_memory_gb']:.2f}GB | F1 {row['f1_points_vs_splink']:+.2f} points, "
                 f"time x{row['time_ratio_lancelot_over_splink']}")
    return text


def _calibration_table(row: dict) -> str:
    lines = [f"  calibration ({row['scenario']}): band, links, predicted precision, observed precision"]
    for c in row["calibration"]:
        lines.append(f"    {c['band']:>12} {c['links']:>8} {c['predicted_precision']:.4f} {c['observed_precision']:.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())

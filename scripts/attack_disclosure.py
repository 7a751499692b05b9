#!/usr/bin/env python3
"""Attacks on exploration's disclosure control: what a researcher recovers from released numbers.

Runs the attacks of the disclosure-control issue against local runs on a synthetic study and
prints, per attack, what is released, what the attacker computes from it, and what that recovers
(checked against the pooled linked records). Exit code 1 when any attack recovers something about
fewer than k patients (LEAK).

* labels: identifiers and linkage fields as analysis variables (surname x copd, surname x
  birth_date); a high-cardinality column (diagnosis_date); a column made from it whose months of
  2019 mostly hold fewer than k patients: their labels must not appear anywhere;
* extreme quantiles: quantiles [0.000001, 0.999999] read from a narrow range near the top;
* tables against each other: a two-way table and the layers of a three-way table of the same
  cohort (the independent auditor, tests/disclosure_audit.py, bounds every withheld count);
* shifted histogram edges: [0, 60, 96, 200] and [0, 60, 200] in one spec;
* Kaplan-Meier: group events/censored, at-risk at adjacent days (365, 366), and that the default
  times are the fixed grid, never a data-derived time such as the last follow-up;
* across runs: the same summary on a station table and on that table with one record appended
  (one station, rounding on): the difference of the released n * mean.

    .venv/bin/python scripts/attack_disclosure.py [--patients 1000] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from disclosure_audit import MISSING, ReleasedSystem, rounding_interval  # noqa: E402
from helpers import make_study, station_paths, walk_strings  # noqa: E402

from lancelot.cli import run_local  # noqa: E402
from lancelot.runtime.errors import LancelotError  # noqa: E402

REG, GP = "registry", "gp_1"
DEFAULT_GRID = {91.0, 182.0, 365.0, 730.0, 1095.0, 1826.0}  # documented default survival times (days)


def v(station: str, column: str) -> dict:
    return {"station": station, "column": column}


AGE, TIME, EVENT = v(REG, "age_at_diagnosis"), v(REG, "survival_days"), v(REG, "vital_status")
MAIN = [
    {"type": "count", "variable": v(REG, "diagnosis_month"), "name": "months"},
    {"type": "crosstab", "variables": [v(REG, "diagnosis_month"), v(GP, "copd")], "name": "months x copd"},
    {"type": "summary", "variable": AGE, "quantiles": [0.000001, 0.5, 0.999999], "range": [85, 100],
     "name": "extreme quantiles"},
    {"type": "crosstab", "variables": [v(REG, "stage"), v(REG, "surgery")], "name": "stage x surgery"},
    {"type": "crosstab", "variables": [v(REG, "stage"), v(REG, "surgery"), v(GP, "copd")],
     "name": "stage x surgery x copd"},
    {"type": "histogram", "variable": AGE, "edges": [0, 60, 96, 200], "name": "edges with 96"},
    {"type": "histogram", "variable": AGE, "edges": [0, 60, 200], "name": "edges without 96"},
    {"type": "kaplan_meier", "time": TIME, "event": EVENT, "by": v(GP, "copd"), "times": [365, 366],
     "name": "km adjacent days"},
    {"type": "kaplan_meier", "time": TIME, "event": EVENT, "name": "km default times"},
]


@dataclass
class Finding:
    attack: str
    released: str
    computes: str
    recovered: str
    leak: bool


def label(value) -> str:
    return MISSING if pd.isna(value) else str(int(value)) if isinstance(value, float) else str(value)


def progress(text: str) -> None:
    print(f"[attack] {text}", file=sys.stderr, flush=True)


def grid_interval(value: float, sd: float, n: int, base: int, digits: int = 4) -> tuple[float, float]:
    """The values a released mean can stand for: the documented grid (docs/leakage/disclosure.md) of step
    base x SD / n rounded up to 1, 2 or 5 times a power of ten, or ``digits`` significant digits if coarser."""
    grid = base * sd / n if n else 0.0
    step = min((m * 10.0 ** e for e in range(-15, 8) for m in (1, 2, 5) if m * 10.0 ** e >= grid * (1 - 1e-12)),
               default=0.0) if grid else 0.0
    if value:
        step = max(step, 10 ** (math.floor(math.log10(abs(value))) - digits + 1))
    return value - step / 2, value + step / 2


# -------------------------------------------------------------------------------------------------
# the attacks
# -------------------------------------------------------------------------------------------------
def attack_refusals(study: dict, link: dict) -> list[Finding]:
    out = []
    for what, analysis in [
        ("surname x copd", {"type": "crosstab", "variables": [v(REG, "surname"), v(GP, "copd")]}),
        ("surname x birth_date", {"type": "crosstab", "variables": [v(REG, "surname"), v(REG, "birth_date")]}),
        ("count of diagnosis_date", {"type": "count", "variable": v(REG, "diagnosis_date")}),
    ]:
        progress(f"labels: {what}")
        try:
            result = run_local("explore", station_paths(study), {"spec": {"linkage": link, "analyses": [analysis]}})
        except LancelotError as exc:
            reason = str(exc).split(": ", 2)[-1]
            out.append(Finding(f"labels: {what}", f"refused ({reason})", "the labels of every record", "nothing",
                               False))
            continue
        labels = {s for s in walk_strings(result["analyses"])}
        out.append(Finding(f"labels: {what}", "a table", "the labels of every record",
                           f"{len(labels)} distinct strings, e.g. {sorted(labels)[:3]}", True))
    return out


def attack_labels(result: dict, linked: pd.DataFrame, k: int) -> Finding:
    counts = linked["diagnosis_month"].map(label).value_counts()
    small = sorted(lab for lab, n in counts.items() if n < k)
    text = list(walk_strings({key: value for key, value in result.items() if key != "links"}))
    found = [lab for lab in small if any(lab in s for s in text)]
    shown = [row["diagnosis_month"] for row in result["analyses"][0]["table"]]
    return Finding("labels: a column made from diagnosis_date (2019 months)", f"levels {shown}",
                   f"which of the {len(small)} labels held by fewer than {k} patients appear",
                   f"{found}" if found else "nothing", bool(found))


def attack_quantiles(result: dict, linked: pd.DataFrame, k: int) -> Finding:
    (a, out) = next((a, o) for a, o in zip(MAIN, result["analyses"]) if a["name"] == "extreme quantiles")
    ages = linked["age_at_diagnosis"].dropna().to_numpy()
    n = len(ages)
    leaked = {q: val for q, val in out["overall"]["quantiles"].items()
              if val is not None and not k / n <= float(q) <= 1 - k / n}
    released = {q: val for q, val in out["overall"]["quantiles"].items()}
    coarse = out["overall"].get("coarse_max")
    width = (a["range"][1] - a["range"][0]) / 200
    coarse_bad = coarse is not None and (ages > coarse - width - 1e-9).sum() < k
    return Finding("extreme quantiles (narrow range [85, 100])", f"quantiles {released}, coarse_max {coarse}",
                   f"the oldest patient's age (true max {ages.max():g}, {k}-th largest "
                   f"{np.sort(ages)[-k]:g})",
                   f"quantiles outside [k/n, 1-k/n]: {leaked}" if leaked or coarse_bad else "nothing",
                   bool(leaked) or coarse_bad)


def attack_tables(result: dict, spec: dict, k: int) -> Finding:
    system = ReleasedSystem({key: value for key, value in result.items() if key != "links"}, spec)
    intervals = system.withheld()
    mine = [w for w in intervals if w.analysis in ("stage x surgery", "stage x surgery x copd")]
    narrow = [w for w in mine if w.width < k and not w.empty_margin]
    released = sum(1 for c in system.counts if c.value is not None and c.analysis in
                   ("stage x surgery", "stage x surgery x copd"))
    everywhere = [w for w in intervals if w.width < k and not w.empty_margin]
    worst = min((w.width for w in mine if not w.empty_margin), default=None)
    text = "; ".join(f"{w.analysis} {w.cell} in [{w.lo:g}, {w.hi:g}]" for w in narrow + everywhere)
    return Finding("tables against each other (2-way minus 3-way layers)",
                   f"{released} counts of the two tables, {len(mine)} withheld",
                   "the interval of every withheld count over all tables consistent with the whole release "
                   f"(LP; narrowest here: {worst:g})" if worst is not None else "the withheld counts (LP)",
                   text or "nothing", bool(narrow or everywhere))


def attack_edges(result: dict, spec: dict, linked: pd.DataFrame, k: int) -> Finding:
    ages = linked["age_at_diagnosis"]
    true = int((ages >= 96).sum())
    hist = next(o for a, o in zip(MAIN, result["analyses"]) if a["name"] == "edges with 96")
    system = ReleasedSystem({key: value for key, value in result.items() if key != "links"}, spec)
    var = "registry.age_at_diagnosis"
    released = f"edges {hist['edges']}, dropped {hist.get('edges_dropped', {}).get('edges', [])}"
    if 96.0 not in system.edges.get(var, []):
        return Finding("shifted histogram edges", released, f"[60, 200] - [60, 96): ages >= 96 (true {true})",
                       "nothing (96 is not a released edge)", False)
    lo, hi = system.interval({var: system.atoms_between(var, 96.0, float("inf"))})
    leak = hi - lo < k and lo < k
    return Finding("shifted histogram edges", released, f"[60, 200] - [60, 96): ages >= 96 (true {true})",
                   f"between {lo:g} and {hi:g}", leak)


def attack_km(result: dict, linked: pd.DataFrame, k: int) -> list[Finding]:
    out = []
    adjacent = next(o for a, o in zip(MAIN, result["analyses"]) if a["name"] == "km adjacent days")
    counts, leaks = [], []
    for g in adjacent["groups"]:
        data = linked[linked["copd"].map(label) == g["group"]]
        e = data["vital_status"].to_numpy(float)
        for what, true in (("events", int(e.sum())), ("censored", int((1 - e).sum()))):
            counts.append(f"{g['group']}: {what} {g[what]}")
            if g[what] is not None and 0 < true < k:
                leaks.append(f"group {g['group']} {what} = {true}")
    out.append(Finding("Kaplan-Meier group counts", "; ".join(counts) or "every group refused",
                       "events and censorings of each group", ", ".join(leaks) or "nothing", bool(leaks)))
    pairs, leaks = [], []
    for g in adjacent["groups"]:
        data = linked[linked["copd"].map(label) == g["group"]]
        t, e = data["survival_days"].to_numpy(float), data["vital_status"].to_numpy(float)
        times = [p["time"] for p in g["curve"]]
        pairs.append(f"{g['group']}: times {times}, at risk {[p['at_risk'] for p in g['curve']]}")
        if 365.0 in times and 366.0 in times:
            died = int(((t == 366) & (e == 1)).sum())
            if died < k:
                leaks.append(f"group {g['group']}: {died} events on day 366")
    out.append(Finding("Kaplan-Meier at adjacent days 365, 366", "; ".join(pairs) or "every group refused",
                       "S(366)/S(365) and at-risk(365) - at-risk(366): events and exits on day 365/366",
                       ", ".join(leaks) or "nothing (366 withheld: fewer than k events since 365)", bool(leaks)))
    default = next(o for a, o in zip(MAIN, result["analyses"]) if a["name"] == "km default times")
    times = sorted({p["time"] for g in default["groups"] for p in g["curve"]})
    derived = [t for t in times if t not in DEFAULT_GRID]
    last = linked["survival_days"].max()
    out.append(Finding("Kaplan-Meier default times", f"times {times}",
                       f"a data-derived time, e.g. the last follow-up ({last:g} days)",
                       f"{derived}" if derived else "nothing (the fixed 3-60 month grid)", bool(derived)))
    return out


def attack_across_runs(study: dict, workdir: Path, seed: int) -> list[Finding]:
    """Two one-station jobs whose tables differ by one appended record: the released n and mean of each."""
    reg = pd.read_csv(study[REG])
    rng = np.random.default_rng(seed)
    extra = reg.iloc[[int(rng.integers(len(reg)))]].copy()
    extra["record_id"] = "NKR-APPENDED"
    extra["age_at_diagnosis"] = int(reg["age_at_diagnosis"].max()) + 3  # the oldest patient so far
    extra["surgery"] = 1
    before, after = workdir / "registry_before.csv", workdir / "registry_after.csv"
    reg.to_csv(before, index=False)
    pd.concat([reg, extra]).to_csv(after, index=False)
    spec = {"analyses": [{"type": "summary", "variable": AGE}, {"type": "summary", "variable": v(REG, "surgery")}]}
    progress("across runs: the same summaries before and after one record is appended (one station each)")
    one = run_local("explore", {REG: before}, {"spec": spec})
    two = run_local("explore", {REG: after}, {"spec": spec})
    base = one["disclosure_control"]["rounding_base"]
    out = []
    for i, column in enumerate(["age_at_diagnosis", "surgery"]):
        r1, r2 = one["analyses"][i]["overall"], two["analyses"][i]["overall"]
        true = float(extra[column].iloc[0])
        # the attacker knows exactly one record was added: n2 = n1 + 1, with both n rounded to the base
        lo1, hi1 = rounding_interval(r1["n"], base)
        lo2, hi2 = rounding_interval(r2["n"], base)
        ns = [n for n in range(lo1, hi1 + 1) if lo2 <= n + 1 <= hi2]
        m1, m2 = grid_interval(r1["mean"], r1["sd"], r1["n"], base), grid_interval(r2["mean"], r2["sd"], r2["n"], base)
        values = [(n + 1) * b - n * a for n in ns for a in m1 for b in m2]
        lo, hi = min(values), max(values)
        possible = sorted(set(reg[column].dropna().astype(float)) | {true})
        candidates = [x for x in possible if lo - 1e-9 <= x <= hi + 1e-9]
        leak = candidates == [true]
        out.append(Finding(f"across runs: {column}", f"n {r1['n']} -> {r2['n']} (base {base}), "
                                                     f"mean {r1['mean']} -> {r2['mean']} (grid base x SD / n)",
                           "(n1 + 1) * mean2 - n1 * mean1 over every n1 the rounding allows",
                           f"[{lo:.3g}, {hi:.3g}] (true {true:g}; possible values in it: "
                           f"{len(candidates)})", leak))
    return out


# -------------------------------------------------------------------------------------------------
def print_table(findings: list[Finding]) -> None:
    widths = (30, 38, 38, 34, 5)
    head = ("attack", "released", "attacker computes", "recovered", "")
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells):
        wrapped = [textwrap.wrap(str(c), w) or [""] for c, w in zip(cells, widths)]
        for i in range(max(len(x) for x in wrapped)):
            print("| " + " | ".join((x[i] if i < len(x) else "").ljust(w) for x, w in zip(wrapped, widths)) + " |")

    print(rule)
    line(head)
    print(rule)
    for f in findings:
        line((f.attack, f.released, f.computes, f.recovered, "LEAK" if f.leak else "OK"))
        print(rule)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", type=Path, help="a folder to keep the main job's spec and result in")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="attack-disclosure-") as tmp:
        workdir = Path(tmp)
        progress(f"synthetic study: {args.patients} patients, seed {args.seed}")
        study = make_study(workdir / "study", patients=args.patients, seed=args.seed)
        reg = pd.read_csv(study[REG])
        date = pd.to_datetime(reg["diagnosis_date"])
        reg["diagnosis_month"] = date.dt.strftime("%Y-%m").where(date.dt.year == 2019, "2015-2018")
        reg.to_csv(study[REG], index=False)
        link = json.loads(study["link_spec"].read_text())
        findings = attack_refusals(study, link)
        spec = {"linkage": link, "analyses": MAIN}
        progress("the main job (linkage + every in-job attack, node default rounding); a few minutes")
        result = run_local("explore", station_paths(study), {"spec": spec, "evaluate": True}, evaluate=True)
        if args.output:
            args.output.mkdir(parents=True, exist_ok=True)
            (args.output / "spec.json").write_text(json.dumps(spec, indent=1))
            (args.output / "result.json").write_text(json.dumps(result, indent=1))
            for name in (REG, GP):
                (args.output / f"{name}.csv").write_text(Path(study[name]).read_text())
        k = result["disclosure_control"]["min_cell_count"]
        links = pd.DataFrame(result["links"])[[REG, GP]]
        linked = (links.merge(pd.read_csv(study[REG]), left_on=REG, right_on="record_id")
                  .merge(pd.read_csv(study[GP]), left_on=GP, right_on="patient_nr"))
        progress(f"linked cohort {len(linked)}; k = {k}, rounding base {result['disclosure_control']['rounding_base']}")
        findings.append(attack_labels(result, linked, k))
        findings.append(attack_quantiles(result, linked, k))
        progress("tables against each other: the auditor's linear programs")
        findings.append(attack_tables(result, spec, k))
        findings.append(attack_edges(result, spec, linked, k))
        findings.extend(attack_km(result, linked, k))
        findings.extend(attack_across_runs(study, workdir, args.seed))
    print_table(findings)
    leaks = [f.attack for f in findings if f.leak]
    print(f"{len(findings)} attacks, {len(leaks)} leak(s){': ' + ', '.join(leaks) if leaks else ''} "
          f"({time.time() - started:.0f} s)")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())

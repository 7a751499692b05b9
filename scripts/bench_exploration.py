#!/usr/bin/env python3
"""Exploration benchmark: time and rounds of private analyses vs the same analyses in plaintext.

Each analysis alone, then one spec holding all of them (every analysis type): a count (GP smoking),
a crosstab (registry stage x GP COPD), a grouped mean (GP BMI by registry surgery), a stratified
Kaplan-Meier with log-rank (registry survival by GP COPD), a summary with quantiles, a histogram, a
correlation across stations and missingness, on synthetic linked data. For each: lancelot's wall time on its real path (in-process network, every
step in a fresh process, linkage included; linkage alone is timed once so that the share beyond it
is visible), the CPU time of the whole process tree (more robust than wall time on a shared
machine), rounds, bytes relayed and the peak resident memory per station (sampled from /proc),
against pandas / lifelines on the same linked records (the time ratio). The load average is
printed with every line: on a loaded machine the seconds are inflated. tno.mpc.protocols.kaplan_meier
is not run here: it needs its own multi-party HTTP set-up; see the README's note.

    .venv/bin/python scripts/bench_exploration.py [--quick] [--sizes 10000 100000] [--analyses all] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from lancelot.cli import run_local
from lancelot.synth import generate

REG, GP = "registry", "gp_1"
TIMES = [91, 182, 365, 730, 1095]


def _v(station: str, column: str) -> dict:
    return {"station": station, "column": column}


ANALYSES = {
    "count": {"type": "count", "variable": _v(GP, "smoking")},
    "crosstab": {"type": "crosstab", "variables": [_v(REG, "stage"), _v(GP, "copd")]},
    "grouped_mean": {"type": "summary", "variable": _v(GP, "bmi"), "by": _v(REG, "surgery")},
    "kaplan_meier": {"type": "kaplan_meier", "time": _v(REG, "survival_days"), "event": _v(REG, "vital_status"),
                     "by": _v(GP, "copd"), "times": TIMES},
    "quantiles": {"type": "summary", "variable": _v(GP, "bmi"), "by": _v(REG, "stage"), "quantiles": [0.25, 0.5, 0.75],
                  "range": [10, 50]},
    "histogram": {"type": "histogram", "variable": _v(REG, "age_at_diagnosis"), "edges": [40, 50, 60, 70, 80, 90]},
    "correlation": {"type": "correlation", "variables": [_v(REG, "age_at_diagnosis"), _v(GP, "bmi"),
                                                         _v(GP, "medication_count")]},
    "missingness": {"type": "missingness", "variables": [_v(REG, "who_ps"), _v(GP, "bmi"), _v(GP, "smoking")]},
}
DEFAULT = ["crosstab", "grouped_mean", "kaplan_meier", "all"]


def plaintext(name: str, data: pd.DataFrame) -> float:
    t0 = time.perf_counter()
    if name in ("count", "all"):
        data["smoking"].value_counts(dropna=False)
    if name in ("crosstab", "all"):
        pd.crosstab(data["stage"], data["copd"], margins=True)
    if name in ("grouped_mean", "all"):
        data.groupby("surgery")["bmi"].agg(["count", "mean", "var"])
    if name in ("quantiles", "all"):
        data.groupby("stage")["bmi"].quantile([0.25, 0.5, 0.75])
        data.groupby("stage")["bmi"].agg(["count", "mean", "var"])
    if name in ("histogram", "all"):
        np.histogram(data["age_at_diagnosis"].dropna(), bins=[40, 50, 60, 70, 80, 90])
    if name in ("correlation", "all"):
        data[["age_at_diagnosis", "bmi", "medication_count"]].corr()
    if name in ("missingness", "all"):
        data[["who_ps", "bmi", "smoking"]].isna().sum()
    if name in ("kaplan_meier", "all"):
        for _, sub in data.groupby("copd"):
            KaplanMeierFitter().fit(sub["survival_days"], sub["vital_status"]).survival_function_at_times(TIMES)
        multivariate_logrank_test(data["survival_days"], data["copd"], data["vital_status"])
    return time.perf_counter() - t0


class StationMeter:
    """Peak resident memory per station and CPU time of the whole process tree, sampled from /proc.

    A run process of the in-process network writes to ``.../task<N>-org<id>/log.txt`` (its standard
    output), and the worker processes it starts inherit that; organisation 1 is the coordinator's,
    the stations' are 2, 3, ... in the order of ``stations``.
    """

    _LOG = re.compile(r"/task\d+-org(\d+)/log\.txt$")

    def __init__(self, stations: dict[str, Path], interval: float = 0.2):
        self.by_org = {1: "coordinator", **{2 + i: s for i, s in enumerate(stations)}}
        self.interval, self._stop = interval, threading.Event()
        self.peak: dict[str, int] = {}
        self._cpu: dict[int, float] = {}
        self._cpu0: dict[int, float] = {}
        self._first = True
        self._owner: dict[int, str | None] = {}

    def _station_of(self, pid: int) -> str | None:
        if self._owner.get(pid) is None:
            try:
                match = self._LOG.search(os.readlink(f"/proc/{pid}/fd/1"))
            except OSError:
                return None
            self._owner[pid] = self.by_org.get(int(match.group(1)), "?") if match else None
        return self._owner[pid]

    def _sample(self) -> None:
        parents, rss, cpu = {}, {}, {}
        tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/statm") as f:
                    rss[int(entry)] = int(f.read().split()[1]) * page
                parents[int(entry)] = int(fields[1])
                cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                continue
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid == parent and pid not in tree:
                    tree.add(pid)
                    frontier.append(pid)
        now: dict[str, int] = {}
        for pid in tree:
            if pid in cpu:
                self._cpu0.setdefault(pid, cpu[pid] if self._first else 0.0)
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu[pid])
            owner = self._station_of(pid)
            if owner:
                now[owner] = now.get(owner, 0) + rss.get(pid, 0)
        self._first = False
        for owner, value in now.items():
            self.peak[owner] = max(self.peak.get(owner, 0), value)

    @property
    def cpu_seconds(self) -> float:
        return sum(v - self._cpu0.get(pid, 0.0) for pid, v in self._cpu.items())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> StationMeter:
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def load() -> float:
    return os.getloadavg()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 patients")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000])
    ap.add_argument("--analyses", nargs="+", default=DEFAULT, choices=[*ANALYSES, "all"],
                    help="analyses to run one by one; 'all': one spec holding every analysis above")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in [2000] if args.quick else args.sizes:
        paths = generate(n_patients=n, gp_stations=1, seed=21).write(Path(tempfile.mkdtemp(prefix="bench-explore-")))
        stations = {REG: paths[REG], GP: paths[GP]}
        link_spec = json.loads(Path(paths["link_spec"]).read_text())
        t0 = time.perf_counter()
        with StationMeter(stations) as meter:
            link = run_local("link", stations, {"spec": link_spec, "evaluate": True, "progress": False}, evaluate=True)
        link_seconds, link_cpu = time.perf_counter() - t0, meter.cpu_seconds
        print(f"{n:>7} linkage alone {link_seconds:6.1f}s (CPU {link_cpu:6.1f}s, load {load():4.1f})",
              file=sys.stderr, flush=True)
        links = pd.DataFrame(link["links"])
        data = (links.merge(pd.read_csv(paths[REG]), left_on=REG, right_on="record_id")
                .merge(pd.read_csv(paths[GP]), left_on=GP, right_on="patient_nr"))
        for name in args.analyses:
            analyses = list(ANALYSES.values()) if name == "all" else [ANALYSES[name]]
            load0 = load()
            t0 = time.perf_counter()
            with StationMeter(stations) as meter:
                out = run_local("explore", stations, {"spec": {"linkage": link_spec, "analyses": analyses},
                                                      "progress": False})
            seconds, cpu = time.perf_counter() - t0, meter.cpu_seconds
            plain = plaintext(name, data)
            cost = out["cost"]
            row = {"patients": n, "linked": out["cohort"]["records"], "analysis": name,
                   "lancelot_seconds": round(seconds, 2), "beyond_linkage_seconds": round(seconds - link_seconds, 2),
                   "cpu_seconds": round(cpu, 1), "linkage_seconds": round(link_seconds, 2),
                   "linkage_cpu_seconds": round(link_cpu, 1), "rounds": cost["rounds"],
                   "bytes_relayed": cost["bytes_to_stations"] + cost["bytes_from_stations"],
                   "peak_mb": {s: round(v / 1e6) for s, v in sorted(meter.peak.items())},
                   "plaintext_seconds": round(plain, 4), "time_ratio": round(seconds / plain, 1),
                   "load_average": [round(load0, 1), round(load(), 1)]}
            rows.append(row)
            peaks = " ".join(f"{s} {v}" for s, v in row["peak_mb"].items())
            print(f"{n:>7} {name:<13} lancelot {seconds:6.1f}s (beyond linkage {seconds - link_seconds:5.1f}s; "
                  f"CPU {cpu:6.1f}s) {cost['rounds']} rounds {row['bytes_relayed'] / 1e6:6.1f} MB, peak MB {peaks} | "
                  f"plaintext {plain:7.4f}s ratio x{row['time_ratio']} | load {load0:4.1f}-{load():4.1f}",
                  file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

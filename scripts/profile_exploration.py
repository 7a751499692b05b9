#!/usr/bin/env python3
"""Where exploration's time goes: every step in this process, timed per step, optionally under cProfile.

Runs the coordinator and every station step in one process (a direct transport: each station its
own per-job state folder, JSON round trips as on the wire), prints wall seconds per step and per
coordinator phase, and with ``--profile`` the top functions by cumulative time. Worker processes
(``LANCELOT_WORKERS``) are outside the profile; set ``LANCELOT_WORKERS=1`` to see everything.

    .venv/bin/python scripts/profile_exploration.py [--patients 10000] [--analysis all] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from lancelot.explore.protocol import STEPS as EXPLORE_STEPS
from lancelot.explore.protocol import explore
from lancelot.linkage.protocol import STEPS as LINK_STEPS
from lancelot.policy import NodePolicy
from lancelot.runtime.coordinator import Coordinator
from lancelot.runtime.state import JobState
from lancelot.runtime.station import StationContext, run_step
from lancelot.synth import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_exploration import ANALYSES, GP, REG  # noqa: E402


class TimingTransport:
    """Every step in this process, in turn; wall time per (round, station, step)."""

    def __init__(self, data: dict[str, pd.DataFrame]):
        self.data = data
        self.folders = {s: tempfile.mkdtemp(prefix=f"profile-{s}-") for s in data}
        self.policy = NodePolicy(allow_evaluate=True)
        self.times: list[tuple[int, str, str, float, int, int]] = []
        self.round = 0

    def run_round(self, calls, wait=True):
        self.round += 1
        out = {}
        for station, call in calls.items():
            sent = json.dumps(call.payload)
            ctx = StationContext(station, self.data[station], JobState(self.folders[station]), self.policy)
            subs = call.payload["calls"] if call.step == "multi" else [{"step": call.step, "payload": call.payload}]
            results = []
            for sub in subs:
                t0 = time.perf_counter()
                res = run_step({**LINK_STEPS, **EXPLORE_STEPS}, ctx, sub["step"], json.loads(json.dumps(sub["payload"])))
                text = json.dumps(res)
                self.times.append((self.round, station, sub["step"], time.perf_counter() - t0,
                                   len(json.dumps(sub["payload"])), len(text)))
                results.append(json.loads(text))
            out[station] = results[0] if len(results) == 1 else {"results": results}
            del sent
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--analysis", default="all", choices=["all", *ANALYSES])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=35)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(n_patients=args.patients, gp_stations=1, seed=21).write(Path(tmp))
        data = {REG: pd.read_csv(paths[REG]), GP: pd.read_csv(paths[GP])}
        link_spec = json.loads(Path(paths["link_spec"]).read_text())
    analyses = list(ANALYSES.values()) if args.analysis == "all" else [ANALYSES[args.analysis]]
    transport = TimingTransport(data)
    coord = Coordinator(transport, [REG, GP], progress=False)
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    result = explore(coord, {"linkage": link_spec, "analyses": analyses})
    if prof:
        prof.disable()
    total = time.perf_counter() - t0
    station_time = sum(t for *_, t, _a, _b in transport.times)
    print(f"{args.patients} patients ({len(data[REG])} registry rows, {len(data[GP])} GP rows), "
          f"{result['cohort']['records']} linked; analyses: {args.analysis}; total {total:.1f}s, "
          f"stations {station_time:.1f}s, coordinator {total - station_time:.1f}s")
    print(f"{'round':>5} {'station':<9} {'step':<24} {'seconds':>8} {'in MB':>7} {'out MB':>7}")
    for rnd, station, step, sec, sin, sout in transport.times:
        print(f"{rnd:>5} {station:<9} {step:<24} {sec:8.2f} {sin / 1e6:7.2f} {sout / 1e6:7.2f}")
    print("coordinator phases (stations included):", coord.cost.as_dict()["seconds_per_phase"])
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

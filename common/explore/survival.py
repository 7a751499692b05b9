"""Released Kaplan-Meier curves by group, with the log-rank test across the groups.

One family of the analyses :func:`lancelot.explore.stats.release` runs: the per-time exit counts are
registered as event / censored counts in the job's ledger, and a curve is released only at times k events
apart with k at risk (lancelot.disclosure.spaced_times). The estimator and the test are in :mod:`.km`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..disclosure import SURVIVAL_GRID_DAYS, round_count, round_magnitude, spaced_times, step_counts
from .columns import MISSING
from .job import CohortSums, Job, Level, Render
from .km import curve_at, km_curve, logrank
from .spec import Analysis


def kaplan_meier(a: Analysis, job: Job) -> Render:
    hub, sums, k = a.time.station, job.sums, job.k
    times = np.asarray(sums.meta[hub]["km_times"][a.tag], dtype=float)
    tag = f"{a.tag}|km"
    status = job.status_dim(a)

    def getter(lv: Level | None):
        if lv is None:
            return lambda i, e: sums.total(hub, f"{tag}|{i}|{e}")
        if a.by.station == hub:
            return lambda i, e: sum(_km_total(sums, hub, f"{tag}|{i}|{e}|{lab}") for lab in lv.raw)
        return lambda i, e: sum(sums.cross(hub, f"{tag}|{i}|{e}", a.by.station, f"c|{a.by.column}|{lab}")
                                for lab in lv.raw)

    groups = [("all", None)] if a.by is None else [(lv.label, lv) for lv in job.levels[a.by] if lv.label != MISSING]
    entries = []
    for label, lv in groups:
        get = getter(lv)
        events = np.array([get(i, 1) for i in range(len(times))])
        censored = np.array([get(i, 0) for i in range(len(times))])
        where = {} if lv is None else {a.by.key(): lv.label}
        c_ev = job.ledger.add(events.sum(), {**where, status: "event"}, a.name)
        c_ce = job.ledger.add(censored.sum(), {**where, status: "censored"}, a.name)
        c_n = job.ledger.add(events.sum() + censored.sum(), {**where, status: ["event", "censored"]}, a.name)
        entries.append((label, events, censored, c_n, c_ev, c_ce))
    when = np.asarray(a.times if a.times else SURVIVAL_GRID_DAYS, dtype=float)
    risk_base = max(5, job.base)

    def render() -> dict:
        rel = job.ledger.released
        released, refused, ev_rows, risk_rows = [], [], [], []
        for label, events, censored, c_n, c_ev, c_ce in entries:
            n = events.sum() + censored.sum()
            if rel(c_n) is None or n < k:
                refused.append({"group": label, "reason": f"fewer than {k} records" if n < k else job.ledger.reason(c_n)})
                continue
            curve = km_curve(times, events, censored)
            ev_rows.append(events)
            risk_rows.append(curve["at_risk"])
            keep, withheld = spaced_times(when, step_counts(times, events), _at_risk_fn(curve), k)
            at = curve_at(curve, np.asarray(keep, dtype=float)) if keep else None
            points = []
            for idx, t in enumerate(keep):
                points.append({"time": t, "survival": round_magnitude(float(at["survival"][idx])),
                               "ci_lower": round_magnitude(float(at["lower"][idx])),
                               "ci_upper": round_magnitude(float(at["upper"][idx])),
                               "at_risk": round_count(at["at_risk"][idx], risk_base)})
            released.append({"group": label, "n": rel(c_n), "events": rel(c_ev), "censored": rel(c_ce),
                             "curve": points, "times_withheld": withheld})
        asked = ("the requested times" if a.times else
                 "the default times 91, 182, 365, 730, 1095 and 1826 (3 to 60 months when the time column is in days)")
        note = (f"released at {asked} where at least {k} events separate adjacent times and at least {k} are at "
                f"risk; at-risk counts rounded to {risk_base}")
        if not a.times and released and not any(g["curve"] for g in released):
            note += ("; no default time could be released: if the time column is not in days, set 'times' in its "
                     "unit")
        named = [(({"group": label, "status": what}), c) for label, _, _, c_n, c_ev, c_ce in entries
                 for what, c in (("all", c_n), ("event", c_ev), ("censored", c_ce))]
        out = {"groups": released, "refused": refused, "note": note, "suppressed": job.reasons(named)}
        if len(ev_rows) > 1:
            test = logrank(np.array(ev_rows), np.array(risk_rows))
            out["logrank"] = {**test, "statistic": round_magnitude(test["statistic"]),
                              "p_value": round_magnitude(test["p_value"])}
        return out

    return render


def _at_risk_fn(curve: dict) -> Callable[[float], float]:
    times, at_risk = curve["times"], curve["at_risk"]

    def f(t: float) -> float:
        i = int(np.searchsorted(times, t, side="left"))
        return float(at_risk[i]) if i < len(at_risk) else 0.0

    return f


def _km_total(sums: CohortSums, station: str, col: str) -> float:
    try:
        return sums.total(station, col)
    except KeyError:
        return 0.0

"""Released statistics, assembled at the coordinator from cohort sums, with disclosure control.

Every number comes from ``CohortSums``: sums over the linked cohort of one station's column, or
of the product of two stations' columns. Nothing here sees a record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..runtime.errors import InputError
from .columns import CONST, MISSING
from .km import curve_at, km_curve, logrank
from .spec import Analysis, Var
from .suppression import suppress_table, suppress_vector


@dataclass
class CohortSums:
    """Sums over the cohort: ``totals[station][col]`` and ``cross[(s1, s2)][(c1, c2)]``."""

    totals: dict[str, dict[str, float]]
    crosses: dict[tuple[str, str], dict[tuple[str, str], float]] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    triples: dict[int, np.ndarray] = field(default_factory=dict)  # analysis index -> |A| x |B| x |C| counts

    def triple(self, index: int) -> np.ndarray:
        return self.triples[index]

    def total(self, station: str, col: str) -> float:
        try:
            return self.totals[station][col]
        except KeyError as exc:
            raise KeyError(f"no cohort total for {station}:{col}") from exc

    def cross(self, s1: str, c1: str, s2: str, c2: str) -> float:
        if s1 == s2:
            raise ValueError("cross() is for two stations; same-station combinations are station columns")
        if (s1, s2) in self.crosses:
            return self.crosses[(s1, s2)][(c1, c2)]
        return self.crosses[(s2, s1)][(c2, c1)]

    @property
    def n(self) -> float:
        return next(iter(self.totals.values()))[CONST]

    def categories(self, v: Var) -> list[str]:
        return self.meta[v.station]["categories"][v.column]


class NeedsRecorder(CohortSums):
    """A dry run of the analyses on placeholder sums, recording which sums they read.

    Running the real statistics code keeps the request list from drifting away from what the
    statistics need.
    """

    def __init__(self, meta: dict[str, dict]):
        super().__init__(totals={}, meta=meta)
        self.total_requests: set[tuple[str, str]] = set()
        self.cross_requests: set[tuple[str, str, str, str]] = set()
        self.triple_requests: set[int] = set()

    def total(self, station: str, col: str) -> float:
        self.total_requests.add((station, col))
        return 100.0

    def cross(self, s1: str, c1: str, s2: str, c2: str) -> float:
        if s1 == s2:
            raise ValueError("cross() is for two stations")
        self.cross_requests.add((s1, c1, s2, c2))
        return 20.0

    def triple(self, index: int) -> np.ndarray:
        self.triple_requests.add(index)
        return np.full((64, 64, 64), 20.0)

    @property
    def n(self) -> float:
        return 100.0


def needed_sums(spec_analyses, meta: dict[str, dict], k: int) -> NeedsRecorder:
    recorder = NeedsRecorder(meta)
    for a in spec_analyses:
        try:
            ANALYSES[a.type](a, recorder, k)
        except InputError:
            raise
        except Exception:  # noqa: BLE001 - placeholder values may upset a later computation; requests are recorded
            pass
    return recorder


def _count(value: float) -> int:
    return int(round(value))


def _signed(sums, station_a, col_a, station_b=None, col_b=None) -> float:
    """sum(x) from the +/- parts (optionally times another station's column)."""
    if station_b is None:
        return sums.total(station_a, f"{col_a}|+") - sums.total(station_a, f"{col_a}|-")
    return sums.cross(station_a, f"{col_a}|+", station_b, col_b) - sums.cross(station_a, f"{col_a}|-", station_b, col_b)


def _moments(n: float, s1: float, s2: float) -> dict:
    mean = s1 / n if n else float("nan")
    var = (s2 - s1 * s1 / n) / (n - 1) if n > 1 else float("nan")
    var = max(var, 0.0) if not np.isnan(var) else var
    return {"n": _count(n), "mean": mean, "variance": var, "sd": float(np.sqrt(var)) if not np.isnan(var) else var}


def _table_records(names: list[str], rows: list[str], cols: list[str], counts: np.ndarray, k: int) -> dict:
    hidden, reasons = suppress_table(counts, k)
    records = []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            records.append({names[0]: r, names[1]: c, "count": None if hidden[i, j] else _count(counts[i, j])})
    row_totals = [{names[0]: r, "count": None if hidden[i, -1] else _count(counts[i].sum())} for i, r in enumerate(rows)]
    col_totals = [{names[1]: c, "count": None if hidden[-1, j] else _count(counts[:, j].sum())} for j, c in enumerate(cols)]
    for reason in reasons:
        i, j = reason["cell"]
        reason["cell"] = {names[0]: rows[i] if i < len(rows) else "(total)",
                          names[1]: cols[j] if j < len(cols) else "(total)"}
    return {"table": records, "row_totals": row_totals, "column_totals": col_totals,
            "total": None if hidden[-1, -1] else _count(counts.sum()), "suppressed": reasons}


def count(a: Analysis, sums: CohortSums, k: int) -> dict:
    (v,) = a.variables
    labels = sums.categories(v)
    counts = np.array([sums.total(v.station, f"c|{v.column}|{label}") for label in labels])
    hidden, reasons = suppress_vector(counts, k)
    table = [{v.column: label, "count": None if hidden[i] else _count(c)} for i, (label, c) in enumerate(zip(labels, counts))]
    for r in reasons:
        r["cell"] = labels[r["cell"]] if r["cell"] < len(labels) else "(total)"
    return {"table": table, "total": None if hidden[-1] else _count(counts.sum()), "suppressed": reasons}


def crosstab(a: Analysis, sums: CohortSums, k: int) -> dict:
    vs = list(a.variables)
    if len(vs) == 2:
        return _crosstab2(a, vs, sums, k)
    # three variables: one two-way table (first x second) per category of the third, each with its own
    # suppression
    layer_var = vs[2]
    layers = []
    for layer in sums.categories(layer_var):
        rows, cols, counts = _crosstab_cells(a, vs, sums, fixed={layer_var: layer})
        entry = _table_records([vs[0].column, vs[1].column], rows, cols, counts, k)
        entry[layer_var.column] = layer
        layers.append(entry)
    return {"layers": layers, "layer_variable": layer_var.column}


def _crosstab_cells(a: Analysis, vs: list[Var], sums: CohortSums, fixed: dict[Var, str] | None = None):
    fixed = fixed or {}
    free = [v for v in vs if v not in fixed]
    rows, cols = sums.categories(free[0]), sums.categories(free[1])
    counts = np.zeros((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            labels = {free[0]: r, free[1]: c, **fixed}
            counts[i, j] = _joint_count(a, vs, labels, sums)
    return rows, cols, counts


def _joint_count(a: Analysis, vs: list[Var], labels: dict[Var, str], sums: CohortSums) -> float:
    if len({v.station for v in vs}) == 3:  # one variable at each of three stations: the chained count
        idx = tuple(sums.categories(v).index(labels[v]) for v in vs)
        return float(sums.triple(a.index)[idx])
    groups: dict[str, list[Var]] = {}
    for v in vs:
        groups.setdefault(v.station, []).append(v)
    cols = {}
    for station, lst in groups.items():
        if len(lst) == 1:
            cols[station] = f"c|{lst[0].column}|{labels[lst[0]]}"
        else:
            combo = json.dumps([None if labels[v] == MISSING else labels[v] for v in lst])
            cols[station] = f"a{a.index}|joint|{combo}"
    stations = list(cols)
    try:
        if len(stations) == 1:
            return sums.total(stations[0], cols[stations[0]])
        return sums.cross(stations[0], cols[stations[0]], stations[1], cols[stations[1]])
    except KeyError:
        return 0.0  # a joint combination that no record at the station has


def _crosstab2(a: Analysis, vs: list[Var], sums: CohortSums, k: int) -> dict:
    rows, cols, counts = _crosstab_cells(a, vs, sums)
    return _table_records([vs[0].column, vs[1].column], rows, cols, counts, k)


def summary(a: Analysis, sums: CohortSums, k: int) -> dict:
    (x,) = a.variables
    n_cohort = sums.n
    out: dict = {}
    n = sums.total(x.station, f"n|{x.column}|n")
    s1 = _signed(sums, x.station, f"n|{x.column}")
    s2 = sums.total(x.station, f"n|{x.column}|q")
    if n < k:
        out["overall"] = {"n": None, "refused": f"fewer than {k} non-missing values"}
    else:
        out["overall"] = {**_moments(n, s1, s2), "missing": _count(n_cohort - n)}
    if a.quantiles and n >= k:
        edges = np.linspace(a.edges[0], a.edges[1], 201)
        grid = np.array([sums.total(x.station, f"a{a.index}|grid|{i}") for i in range(len(edges) + 1)])
        out["overall"].update(_quantiles(edges, grid, a.quantiles, k))
    if a.by is not None:
        groups = []
        for label in sums.categories(a.by):
            if a.by.station == x.station:
                base = f"a{a.index}|by|{label}"
                gn, g1, g2 = (sums.total(x.station, f"{base}|n"), _signed(sums, x.station, base),
                              sums.total(x.station, f"{base}|q"))
            else:
                col = f"c|{a.by.column}|{label}"
                gn = sums.cross(x.station, f"n|{x.column}|n", a.by.station, col)
                g1 = _signed(sums, x.station, f"n|{x.column}", a.by.station, col)
                g2 = sums.cross(x.station, f"n|{x.column}|q", a.by.station, col)
            entry = {a.by.column: label}
            if gn == 0:
                entry.update({"n": 0})  # an empty group discloses nothing
            elif gn < k:
                entry.update({"n": None, "refused": f"fewer than {k} non-missing values in this group"})
            else:
                entry.update(_moments(gn, g1, g2))
            groups.append(entry)
        out["by"] = groups
        hidden = [g for g in groups if g.get("n") is None]
        if len(hidden) == 1 and out["overall"].get("n") is not None:
            # the one refused group's n could be recomputed from the overall n: hide the smallest other group too
            others = [g for g in groups if g.get("n") is not None]
            if others:
                smallest = min(others, key=lambda g: g["n"])
                for key in ("n", "mean", "variance", "sd"):
                    smallest[key] = None
                smallest["refused"] = "secondary: would reveal the refused group through the overall count"
    return out


def _quantiles(edges: np.ndarray, grid: np.ndarray, qs: tuple[float, ...], k: int) -> dict:
    """Quantiles read from a 200-bin private histogram (exact to one bin width), and coarse bounds."""
    inside = grid[1:-1]
    below, above = grid[0], grid[-1]
    total = grid.sum()
    cum = below + np.cumsum(inside)
    result = {"quantile_method": f"linear interpolation in a 200-bin histogram over [{edges[0]}, {edges[-1]}] "
                                 f"(accurate to one bin width, {edges[1] - edges[0]:g})"}
    qv = {}
    for q in qs:
        target = q * total
        i = int(np.searchsorted(cum, target))
        if target <= below or i >= len(inside):
            qv[str(q)] = None
            continue
        prev = cum[i - 1] if i > 0 else below
        frac = (target - prev) / inside[i] if inside[i] else 0.0
        qv[str(q)] = float(edges[i] + frac * (edges[i + 1] - edges[i]))
    result["quantiles"] = qv
    # disclosure-safe bounds: the bins that hold the k-th smallest and the k-th largest value
    lo_i = int(np.searchsorted(cum, k)) if below < k else None
    hi_cum = above + np.cumsum(inside[::-1])
    hi_i = int(np.searchsorted(hi_cum, k)) if above < k else None
    result["coarse_min"] = float(edges[lo_i]) if lo_i is not None and lo_i < len(inside) else None
    result["coarse_max"] = float(edges[len(inside) - hi_i]) if hi_i is not None and hi_i < len(inside) else None
    result["bounds_note"] = (f"coarse_min/max: the bin edges below the {k}-th smallest and above the {k}-th largest "
                             "value; the extremes themselves are not released")
    return result


def histogram(a: Analysis, sums: CohortSums, k: int) -> dict:
    (x,) = a.variables
    edges = list(a.edges)
    counts = np.array([sums.total(x.station, f"a{a.index}|bin|{i}") for i in range(len(edges) + 1)]
                      + [sums.total(x.station, f"a{a.index}|bin|na")])
    hidden, reasons = suppress_vector(counts, k, with_total=True)
    labels = [f"< {edges[0]:g}"] + [f"[{lo:g}, {hi:g}{']' if i == len(edges) - 2 else ')'}"
                                     for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))] + \
             [f"> {edges[-1]:g}", "missing"]
    bins = [{"bin": lab, "count": None if hidden[i] else _count(c)} for i, (lab, c) in enumerate(zip(labels, counts))]
    for r in reasons:
        r["cell"] = labels[r["cell"]] if r["cell"] < len(labels) else "(total)"
    return {"edges": edges, "bins": bins, "suppressed": reasons}


def correlation(a: Analysis, sums: CohortSums, k: int) -> dict:
    vs = list(a.variables)
    m = len(vs)
    r = np.full((m, m), np.nan)
    ns = np.zeros((m, m), dtype=int)
    for i in range(m):
        r[i, i] = 1.0
        ns[i, i] = _count(sums.total(vs[i].station, f"n|{vs[i].column}|n"))
        for j in range(i + 1, m):
            x, y = vs[i], vs[j]
            if x.station == y.station:
                base = f"a{a.index}|pair|{x.column}|{y.column}"
                n = sums.total(x.station, f"{base}|x|n")
                sx, sy = _signed(sums, x.station, f"{base}|x"), _signed(sums, x.station, f"{base}|y")
                sxx, syy = sums.total(x.station, f"{base}|x|q"), sums.total(x.station, f"{base}|y|q")
                sxy = sums.total(x.station, f"{base}|xy+") - sums.total(x.station, f"{base}|xy-")
            else:
                xs, ys = x.station, y.station
                xc, yc = f"n|{x.column}", f"n|{y.column}"
                n = sums.cross(xs, f"{xc}|n", ys, f"{yc}|n")
                sx = _signed(sums, xs, xc, ys, f"{yc}|n")
                sy = _signed(sums, ys, yc, xs, f"{xc}|n")
                sxx = sums.cross(xs, f"{xc}|q", ys, f"{yc}|n")
                syy = sums.cross(xs, f"{xc}|n", ys, f"{yc}|q")
                sxy = sum(sign * sums.cross(xs, f"{xc}|{p}", ys, f"{yc}|{q}")
                          for p, q, sign in (("+", "+", 1), ("+", "-", -1), ("-", "+", -1), ("-", "-", 1)))
            ns[i, j] = ns[j, i] = _count(n)
            if n >= k and n > 2:
                cov = n * sxy - sx * sy
                denom = np.sqrt(max(n * sxx - sx * sx, 0.0) * max(n * syy - sy * sy, 0.0))
                r[i, j] = r[j, i] = cov / denom if denom > 0 else np.nan
    names = [v.key() for v in vs]
    return {"variables": names, "pearson_r": [[None if np.isnan(v) else float(v) for v in row] for row in r],
            "n": [[int(v) if v >= k else None for v in row] for row in ns],
            "note": f"pairwise complete cases; pairs with fewer than {k} records are withheld"}


def missingness(a: Analysis, sums: CohortSums, k: int) -> dict:
    n = sums.n
    rows = []
    for v in a.variables:
        missing = sums.total(v.station, f"m|{v.column}")
        rows.append({"station": v.station, "variable": v.column,
                     "missing": _count(missing) if missing == 0 or missing >= k else None,
                     "share_missing": round(missing / n, 4) if missing == 0 or missing >= k else None})
    return {"table": rows, "cohort": _count(n) if n >= k else None}


def kaplan_meier(a: Analysis, sums: CohortSums, k: int) -> dict:
    hub = a.time.station
    times = np.asarray(sums.meta[hub]["km_times"][f"a{a.index}"], dtype=float)
    tag = f"a{a.index}|km"
    if a.by is None:
        groups = [("all", lambda i, e: sums.total(hub, f"{tag}|{i}|{e}"))]
    elif a.by.station == hub:
        groups = [(label, (lambda lab: lambda i, e: _km_total(sums, hub, f"{tag}|{i}|{e}|{lab}"))(label))
                  for label in sums.categories(a.by) if label != MISSING]
    else:
        groups = [(label, (lambda lab: lambda i, e: sums.cross(hub, f"{tag}|{i}|{e}", a.by.station,
                                                               f"c|{a.by.column}|{lab}"))(label))
                  for label in sums.categories(a.by) if label != MISSING]
    curves, released, refused = {}, [], []
    ev_rows, risk_rows = [], []
    for label, get in groups:
        events = np.array([get(i, 1) for i in range(len(times))])
        censored = np.array([get(i, 0) for i in range(len(times))])
        n = events.sum() + censored.sum()
        if n < k:
            refused.append({"group": label, "reason": f"fewer than {k} records"})
            continue
        curve = km_curve(times, events, censored)
        curves[label] = curve
        ev_rows.append(events)
        risk_rows.append(curve["at_risk"])
    when = np.asarray(a.times, dtype=float) if a.times else _default_times(times)
    for label, curve in curves.items():
        at = curve_at(curve, when)
        points = []
        for t, s, lo, hi, nr in zip(when, at["survival"], at["lower"], at["upper"], at["at_risk"]):
            ok = nr >= k
            points.append({"time": float(t), "survival": float(s) if ok else None,
                           "ci_lower": float(lo) if ok else None, "ci_upper": float(hi) if ok else None,
                           "at_risk": _count(nr) if ok else None})
        released.append({"group": label, "n": _count(curve["at_risk"][0]), "events": _count(curve["events"].sum()),
                         "curve": points})
    out = {"groups": released, "refused": refused,
           "note": f"the curve is released at the listed times; points with fewer than {k} at risk are withheld"}
    if len(ev_rows) > 1:
        out["logrank"] = logrank(np.array(ev_rows), np.array(risk_rows))
    return out


def _km_total(sums: CohortSums, station: str, col: str) -> float:
    try:
        return sums.total(station, col)
    except KeyError:
        return 0.0


def _default_times(times: np.ndarray) -> np.ndarray:
    if len(times) == 0:
        return np.array([])
    return np.unique(np.round(np.linspace(0, times.max(), 11)[1:], 6))


ANALYSES = {"count": count, "crosstab": crosstab, "summary": summary, "histogram": histogram,
            "correlation": correlation, "missingness": missingness, "kaplan_meier": kaplan_meier}

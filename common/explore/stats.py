"""Released statistics, assembled at the coordinator from cohort sums, with disclosure control.

Every number comes from ``CohortSums``: sums over the linked cohort of one station's column, or
of the product of two stations' columns. Nothing here sees a record.

Disclosure control is decided for the whole job at once (:func:`release`): every analysis first
registers its counts in one :class:`~lancelot.explore.ledger.Ledger` (over the job's dimensions:
each categorical variable's levels, each numeric variable's histogram atoms or present/missing,
each survival status), the ledger suppresses jointly, and only then is each analysis written out.
Categories with fewer than k linked patients are merged into ``<other>`` (their labels never
appear), histogram bins into neighbours until each holds k, quantiles are released only with k
records on either side, survival curves only at times k events apart, and means and SDs to four
significant digits. Rules and reference points: docs/leakage/disclosure.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..disclosure import (
    SURVIVAL_GRID_DAYS,
    quantile_allowed,
    round_count,
    round_magnitude,
    round_mean,
    spaced_times,
    step_counts,
)
from ..runtime.errors import InputError
from .columns import CONST, MISSING, histogram_edges
from .km import curve_at, km_curve, logrank
from .ledger import Ledger
from .significance import chi_square, kruskal_binned, mean_difference_test
from .spec import Analysis, ExploreSpec, Var

OTHER = "<other>"          # the merged level of every category with fewer than k linked patients
PRESENT = "<present>"      # a numeric variable's only level besides missing, when it has no histogram
STATUS = ("event", "censored", "unusable")


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


def needed_sums(spec: ExploreSpec, meta: dict[str, dict], k: int) -> NeedsRecorder:
    recorder = NeedsRecorder(meta)
    release(spec, recorder, k, base=1, dry_run=True)
    return recorder


# -------------------------------------------------------------------------------------------------
# the job's dimensions
# -------------------------------------------------------------------------------------------------
CATEGORICAL_ROLES = {"count": "variables", "crosstab": "variables"}


def expanded(a: Analysis, meta: dict[str, dict]) -> list[Analysis]:
    """An analysis, or a table_one's rows as the analyses that count them (kinds as the stations decided)."""
    if a.type != "table_one":
        return [a]
    return a.parts(lambda j, v: meta.get(v.station, {}).get("kinds", {}).get(a.part_tag(j), "numeric"))


def _categorical_vars(spec: ExploreSpec, meta: dict[str, dict]) -> set[Var]:
    out: set[Var] = set()
    for a in (part for analysis in spec.analyses for part in expanded(analysis, meta)):
        if a.type in CATEGORICAL_ROLES:
            out.update(a.variables)
        if a.by is not None:
            out.add(a.by)
    return out


@dataclass
class Level:
    label: str
    raw: list[str]          # the station's own labels counted in this level


class Job:
    """One release: the sums, the thresholds, the job's dimensions and its ledger."""

    def __init__(self, spec: ExploreSpec, sums: CohortSums, k: int, base: int, dry_run: bool):
        self.spec, self.sums, self.k, self.base, self.dry_run = spec, sums, k, base, dry_run
        self.ledger = Ledger(k, base, strict=not dry_run)
        self.levels: dict[Var, list[Level]] = {}
        self.atoms: dict[Var, list[tuple[int, int]]] = {}   # numeric var -> merged atoms as [first, last] atom index
        self.atom_edges: dict[Var, np.ndarray] = histogram_edges(spec)
        self.n = sums.n
        categorical = _categorical_vars(spec, sums.meta)
        for v in sorted(categorical, key=lambda x: x.key()):
            if v in self.atom_edges:
                raise InputError(f"'{v.column}' is used both as a category and in a histogram in one job: "
                                 "use one or the other", station=v.station, column=v.column)
            self._categorical_dim(v)
        for v, edges in sorted(self.atom_edges.items(), key=lambda kv: kv[0].key()):
            self._histogram_dim(v, edges)
        self.cohort = self.ledger.add(self.n, {}, "cohort")

    # categorical variables: levels with at least k linked patients; the rest merged into <other>
    def _categorical_dim(self, v: Var) -> None:
        raw = [lab for lab in self.sums.categories(v) if lab != MISSING]
        counts = {lab: self.sums.total(v.station, f"c|{v.column}|{lab}") for lab in raw}
        levels = [Level(lab, [lab]) for lab in raw if counts[lab] >= self.k]
        small = [lab for lab in raw if 0 < counts[lab] < self.k]
        if small:
            levels.append(Level(OTHER, small))
        if self.sums.total(v.station, f"c|{v.column}|{MISSING}") > 0 or self.dry_run:
            levels.append(Level(MISSING, [MISSING]))  # a level nobody in the cohort has is no level at all
        self.levels[v] = levels
        self.ledger.dim(v.key(), [lv.label for lv in levels])

    # numeric variables with histograms: atoms between the union of edges, merged until each holds k
    def _histogram_dim(self, v: Var, edges: np.ndarray) -> None:
        counts = [self.sums.total(v.station, f"h|{v.column}|{i}") for i in range(len(edges) + 1)]
        groups, start, acc = [], 0, 0.0
        for i, c in enumerate(counts):
            acc += c
            if acc >= self.k:
                groups.append((start, i))
                start, acc = i + 1, 0.0
        if start < len(counts):
            if groups:
                groups[-1] = (groups[-1][0], len(counts) - 1)  # a small remainder joins the last group
            else:
                groups.append((0, len(counts) - 1))
        self.atoms[v] = groups
        self.ledger.dim(v.key(), [self._atom_label(v, g) for g in groups] + [MISSING])

    def _atom_label(self, v: Var, group: tuple[int, int]) -> str:
        edges = self.atom_edges[v]
        lo = "-inf" if group[0] == 0 else f"{edges[group[0] - 1]:g}"
        hi = "inf" if group[1] == len(edges) else f"{edges[group[1]]:g}"
        return f"[{lo}, {hi})"

    def numeric_dim(self, v: Var) -> str:
        """A numeric variable's dimension: its histogram atoms, else present/missing."""
        if v in self.levels:
            return v.key()
        if v not in self.atoms:
            self.ledger.dim(v.key(), [PRESENT, MISSING])
        return v.key()

    def present(self, v: Var) -> list[str]:
        return [lab for lab in self.ledger.dims[self.numeric_dim(v)] if lab != MISSING]

    def status_dim(self, a: Analysis) -> str:
        return self.ledger.dim(f"{a.time.key()}~{a.event.column}:status", STATUS)

    # counting over merged levels
    def joint(self, a: Analysis, vs: list[Var], levels: dict[Var, Level]) -> float:
        """The cohort count of a combination of (merged) levels of categorical variables."""
        total = 0.0
        for combo in _product([levels[v].raw for v in vs]):
            total += _joint_count(a, vs, dict(zip(vs, combo)), self.sums)
        return total


def _product(lists: list[list[str]]):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for rest in _product(lists[1:]):
            yield (head, *rest)


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
            cols[station] = f"{a.tag}|joint|{combo}"
    stations = list(cols)
    try:
        if len(stations) == 1:
            return sums.total(stations[0], cols[stations[0]])
        return sums.cross(stations[0], cols[stations[0]], stations[1], cols[stations[1]])
    except KeyError:
        return 0.0  # a joint combination that no record at the station has


def _signed(sums, station_a, col_a, station_b=None, col_b=None) -> float:
    """sum(x) from the +/- parts (optionally times another station's column)."""
    if station_b is None:
        return sums.total(station_a, f"{col_a}|+") - sums.total(station_a, f"{col_a}|-")
    return sums.cross(station_a, f"{col_a}|+", station_b, col_b) - sums.cross(station_a, f"{col_a}|-", station_b, col_b)


def _moments(n: float, s1: float, s2: float, base: int) -> dict:
    """Mean and SD on a grid of step base * SD / n at least (lancelot.disclosure.round_mean); the variance
    is the square of the released SD."""
    mean = s1 / n if n else float("nan")
    var = (s2 - s1 * s1 / n) / (n - 1) if n > 1 else float("nan")
    var = max(var, 0.0) if not np.isnan(var) else var
    sd = float(np.sqrt(var)) if not np.isnan(var) else var
    sd_out = round_mean(sd, sd, n, base)
    return {"mean": round_mean(mean, sd, n, base), "variance": round_magnitude(sd_out * sd_out), "sd": sd_out}


Render = Callable[[], dict]


# -------------------------------------------------------------------------------------------------
# the analyses: each registers its counts, then renders after the joint suppression
# -------------------------------------------------------------------------------------------------
def count(a: Analysis, job: Job) -> Render:
    (v,) = a.variables
    cells = [(lv, job.ledger.add(job.joint(a, [v], {v: lv}), {v.key(): lv.label}, a.name)) for lv in job.levels[v]]
    cells = [(lv, c) for lv, c in cells if job.ledger.cells[c].value > 0 or lv.label != MISSING]
    job.ledger.add(job.n, {}, a.name)

    def render() -> dict:
        table = [{v.column: lv.label, "count": job.ledger.released(c)} for lv, c in cells]
        return {"table": table, "total": job.ledger.released(job.cohort),
                "suppressed": _reasons(job, [({v.column: lv.label}, c) for lv, c in cells])}

    return render


def crosstab(a: Analysis, job: Job) -> Render:
    vs = list(a.variables)
    if len(vs) == 2:
        return _table2(a, job, vs, fixed={})
    layer_var = vs[2]
    layers = [(lv, _table2(a, job, vs[:2], fixed={layer_var: lv})) for lv in job.levels[layer_var]]

    def render() -> dict:
        out = []
        for lv, r in layers:
            entry = r()
            entry[layer_var.column] = lv.label
            out.append(entry)
        return {"layers": out, "layer_variable": layer_var.column}

    return render


@dataclass
class _Grid:
    """A two-way table's registered counts: cells, margins and total (ledger conditions), and which rows and
    columns are shown (a level nobody in the cohort has, <missing> mostly, is left out)."""

    rows: list[Level]
    cols: list[Level]
    counts: np.ndarray
    cell: list[list[object]]
    row_tot: list[object]
    col_tot: list[object]
    total: object
    keep_r: list[int]
    keep_c: list[int]


def _grid(a: Analysis, job: Job, vs: list[Var], fixed: dict[Var, Level]) -> _Grid:
    """Register a two-way table of the first two variables (within one level of a third) with its margins."""
    rv, cv = vs
    rows, cols = job.levels[rv], job.levels[cv]
    all_vs = vs + list(fixed)
    base_where = {v.key(): lv.label for v, lv in fixed.items()}
    counts = np.array([[job.joint(a, all_vs, {rv: r, cv: c, **fixed}) for c in cols] for r in rows])
    add = job.ledger.add
    cell = [[add(counts[i, j], {**base_where, rv.key(): r.label, cv.key(): c.label}, a.name)
             for j, c in enumerate(cols)] for i, r in enumerate(rows)]
    row_tot = [add(counts[i].sum(), {**base_where, rv.key(): r.label}, a.name) for i, r in enumerate(rows)]
    col_tot = [add(counts[:, j].sum(), {**base_where, cv.key(): c.label}, a.name) for j, c in enumerate(cols)]
    total = add(counts.sum(), base_where, a.name)
    keep_r = [i for i, r in enumerate(rows) if counts[i].sum() > 0 or r.label != MISSING]
    keep_c = [j for j, c in enumerate(cols) if counts[:, j].sum() > 0 or c.label != MISSING]
    return _Grid(rows, cols, counts, cell, row_tot, col_tot, total, keep_r, keep_c)


def _table2(a: Analysis, job: Job, vs: list[Var], fixed: dict[Var, Level]) -> Render:
    """A two-way table of the first two variables (within one level of a third), with its margins."""
    rv, cv = vs
    g = _grid(a, job, vs, fixed)
    rows, cols, cell, row_tot, col_tot, total, keep_r, keep_c = (g.rows, g.cols, g.cell, g.row_tot, g.col_tot,
                                                                  g.total, g.keep_r, g.keep_c)

    def render() -> dict:
        rel = job.ledger.released
        records = [{rv.column: rows[i].label, cv.column: cols[j].label, "count": rel(cell[i][j])}
                   for i in keep_r for j in keep_c]
        named = [({rv.column: rows[i].label, cv.column: cols[j].label}, cell[i][j]) for i in keep_r for j in keep_c]
        named += [({rv.column: rows[i].label, cv.column: "(total)"}, row_tot[i]) for i in keep_r]
        named += [({rv.column: "(total)", cv.column: cols[j].label}, col_tot[j]) for j in keep_c]
        named += [({rv.column: "(total)", cv.column: "(total)"}, total)]
        return {"table": records,
                "row_totals": [{rv.column: rows[i].label, "count": rel(row_tot[i])} for i in keep_r],
                "column_totals": [{cv.column: cols[j].label, "count": rel(col_tot[j])} for j in keep_c],
                "total": rel(total), "suppressed": _reasons(job, named)}

    return render


def summary(a: Analysis, job: Job) -> Render:
    (x,) = a.variables
    sums, k, dim = job.sums, job.k, job.numeric_dim(x)
    n = sums.total(x.station, f"n|{x.column}|n")
    s1, s2 = _signed(sums, x.station, f"n|{x.column}"), sums.total(x.station, f"n|{x.column}|q")
    present = job.ledger.add(n, {dim: job.present(x)}, a.name)
    missing = job.ledger.add(job.n - n, {dim: MISSING}, a.name)
    groups = []
    if a.by is not None:
        for lv in job.levels[a.by]:
            gn = g1 = g2 = 0.0
            for label in lv.raw:
                if a.by.station == x.station:
                    base = f"{a.tag}|by|{label}"
                    gn += sums.total(x.station, f"{base}|n")
                    g1 += _signed(sums, x.station, base)
                    g2 += sums.total(x.station, f"{base}|q")
                else:
                    col = f"c|{a.by.column}|{label}"
                    gn += sums.cross(x.station, f"n|{x.column}|n", a.by.station, col)
                    g1 += _signed(sums, x.station, f"n|{x.column}", a.by.station, col)
                    g2 += sums.cross(x.station, f"n|{x.column}|q", a.by.station, col)
            if gn == 0 and lv.label == MISSING:
                continue
            groups.append((lv, gn, g1, g2, job.ledger.add(gn, {dim: job.present(x), a.by.key(): lv.label}, a.name)))
    quantiles, group_grids = None, {}
    if a.quantiles:
        edges = np.linspace(a.edges[0], a.edges[1], 201)
        grid = np.array([sums.total(x.station, f"{a.tag}|grid|{i}") for i in range(len(edges) + 1)])
        quantiles = _quantiles(edges, grid, a.quantiles, k)
        if a.options.get("group_quantiles") and a.by is not None:  # a table_one's median [IQR] per group
            for lv, *_ in groups:
                group_grids[lv.label] = np.array([sum(_group_bin(a, x, label, i, sums) for label in lv.raw)
                                                  for i in range(len(edges) + 1)])

    def render() -> dict:
        rel = job.ledger.released
        out: dict = {}
        if rel(present) is None or n < k:
            out["overall"] = {"n": None, "refused": f"fewer than {k} non-missing values" if n < k
                              else job.ledger.reason(present)}
        else:
            out["overall"] = {"n": rel(present), **_moments(n, s1, s2, job.base), "missing": rel(missing)}
            if quantiles is not None:
                out["overall"].update(quantiles)
        if a.by is not None:
            rows = []
            for lv, gn, g1, g2, c in groups:
                entry = {a.by.column: lv.label}
                if rel(c) is None:
                    entry.update({"n": None, "refused": job.ledger.reason(c)})
                elif gn < k:
                    entry.update({"n": rel(c)})  # zero: an empty group discloses nothing
                else:
                    entry.update({"n": rel(c), **_moments(gn, g1, g2, job.base)})
                    if lv.label in group_grids:
                        entry.update(_quantiles(edges, group_grids[lv.label], a.quantiles, k, bounds=False))
                rows.append(entry)
            out["by"] = rows
            if group_grids:
                out["kruskal_wallis"] = _kruskal_release(job, [(lv, gn, c, group_grids[lv.label])
                                                               for lv, gn, _, _, c in groups if lv.label != MISSING])
        return out

    return render


def _group_bin(a: Analysis, x: Var, label: str, i: int, sums: CohortSums) -> float:
    """The cohort count of one group (a station label of ``a.by``) in bin i of the private histogram of x."""
    if a.by.station == x.station:
        return sums.total(x.station, f"{a.tag}|ggrid|{label}|{i}")
    return sums.cross(x.station, f"{a.tag}|grid|{i}", a.by.station, f"c|{a.by.column}|{label}")


def _kruskal_release(job: Job, groups: list) -> dict:
    """The Kruskal-Wallis test across the groups' private histograms (values in one bin are ties), released
    only when every group has a released size of at least k, p to 2 significant digits (it is a function of
    counts that are not released: docs/leakage/disclosure.md)."""
    out = {"test": "Kruskal-Wallis", "df": len(groups) - 1}
    small = [lv.label for lv, gn, c, _ in groups if job.ledger.released(c) is None or gn < job.k]
    if len(groups) < 2 or small:
        reason = "fewer than two groups" if len(groups) < 2 else \
            f"group(s) {small} withheld or with fewer than {job.k} values"
        return {**out, "p_value": None, "withheld": reason}
    test = kruskal_binned(np.array([grid for *_, grid in groups]))
    return {**out, "p_value": round_magnitude(test["p_value"], 2)}


def _quantiles(edges: np.ndarray, grid: np.ndarray, qs: tuple[float, ...], k: int, bounds: bool = True) -> dict:
    """Quantiles read from a 200-bin private histogram (exact to one bin width), only where at least
    k values lie on either side (k/n <= q <= 1 - k/n), and coarse bounds instead of the extremes."""
    inside = grid[1:-1]
    below, above = grid[0], grid[-1]
    total = grid.sum()
    cum = below + np.cumsum(inside)
    result = {"quantile_method": f"linear interpolation in a 200-bin histogram over [{edges[0]}, {edges[-1]}] "
                                 f"(accurate to one bin width, {edges[1] - edges[0]:g})"}
    qv, withheld = {}, {}
    for q in qs:
        target = q * total
        i = int(np.searchsorted(cum, target))
        if not quantile_allowed(q, total, k):
            qv[str(q)] = None
            withheld[str(q)] = f"fewer than {k} values on one side (allowed: {k}/n <= q <= 1 - {k}/n)"
            continue
        if target <= below or i >= len(inside):
            qv[str(q)] = None
            withheld[str(q)] = "outside the range of the private histogram"
            continue
        prev = cum[i - 1] if i > 0 else below
        frac = (target - prev) / inside[i] if inside[i] else 0.0
        qv[str(q)] = round_magnitude(float(edges[i] + frac * (edges[i + 1] - edges[i])))
    result["quantiles"] = qv
    if withheld:
        result["quantiles_withheld"] = withheld
    if not bounds:
        return {key: value for key, value in result.items() if key != "quantile_method"}
    # disclosure-safe bounds: the bins that hold the k-th smallest and the k-th largest value
    lo_i = int(np.searchsorted(cum, k)) if below < k else None
    hi_cum = above + np.cumsum(inside[::-1])
    hi_i = int(np.searchsorted(hi_cum, k)) if above < k else None
    result["coarse_min"] = float(edges[lo_i]) if lo_i is not None and lo_i < len(inside) else None
    result["coarse_max"] = float(edges[len(inside) - hi_i]) if hi_i is not None and hi_i < len(inside) else None
    result["bounds_note"] = (f"coarse_min/max: the bin edges below the {k}-th smallest and above the {k}-th largest "
                             "value; the extremes themselves are not released")
    return result


def histogram(a: Analysis, job: Job) -> Render:
    """Bins of the requested edges, over the job's merged atoms: an edge inside a merged atom is dropped."""
    (x,) = a.variables
    union, groups, dim = job.atom_edges[x], job.atoms[x], job.numeric_dim(x)
    boundaries = {g[1] for g in groups}  # atom index after which a merged atom ends
    atom_of_edge = {float(e): i for i, e in enumerate(union)}  # edge e ends atom i (the atom below it)
    requested = sorted(float(e) for e in a.edges)
    kept = [e for e in requested if atom_of_edge[e] in boundaries]
    dropped = [e for e in requested if e not in kept]
    cut = [-1] + [atom_of_edge[e] for e in kept] + [len(union)]
    labels = [job.ledger.dims[dim][i] for i in range(len(groups))]
    bins = []
    for lo_atom, hi_atom in zip(cut[:-1], cut[1:]):
        members = [labels[i] for i, g in enumerate(groups) if lo_atom < g[0] and g[1] <= hi_atom]
        if not members:
            continue
        last = len(union) - 1  # values equal to the job's largest edge count in the bin below it
        lo = "(-inf" if lo_atom == -1 else f"{'(' if lo_atom == last else '['}{union[lo_atom]:g}"
        hi = "inf)" if hi_atom == len(union) else f"{union[hi_atom]:g}{']' if hi_atom == last else ')'}"
        value = sum(job.sums.total(x.station, f"h|{x.column}|{i}") for i in range(lo_atom + 1, hi_atom + 1))
        bins.append((f"{lo}, {hi}", job.ledger.add(value, {dim: members}, a.name)))
    missing = job.ledger.add(job.sums.total(x.station, f"h|{x.column}|na"), {dim: MISSING}, a.name)
    job.ledger.add(job.n, {}, a.name)

    def render() -> dict:
        rel = job.ledger.released
        out = {"edges": kept, "bins": [{"bin": lab, "count": rel(c)} for lab, c in bins]
               + [{"bin": "missing", "count": rel(missing)}],
               "suppressed": _reasons(job, [({"bin": lab}, c) for lab, c in bins] + [({"bin": "missing"}, missing)])}
        if dropped:
            out["edges_dropped"] = {"edges": dropped, "reason": f"a bin on either side held fewer than {job.k} values "
                                                                 "(bins are merged until each holds at least k)"}
        return out

    return render


def correlation(a: Analysis, job: Job) -> Render:
    vs = list(a.variables)
    m, sums, k = len(vs), job.sums, job.k
    r = np.full((m, m), np.nan)
    cells: dict[tuple[int, int], object] = {}
    for i in range(m):
        r[i, i] = 1.0
        cells[(i, i)] = job.ledger.add(sums.total(vs[i].station, f"n|{vs[i].column}|n"),
                                       {job.numeric_dim(vs[i]): job.present(vs[i])}, a.name)
        for j in range(i + 1, m):
            x, y = vs[i], vs[j]
            if x.station == y.station:
                base = f"{a.tag}|pair|{x.column}|{y.column}"
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
            cells[(i, j)] = cells[(j, i)] = job.ledger.add(
                n, {job.numeric_dim(x): job.present(x), job.numeric_dim(y): job.present(y)}, a.name)
            if n >= k and n > 2:
                cov = n * sxy - sx * sy
                denom = np.sqrt(max(n * sxx - sx * sx, 0.0) * max(n * syy - sy * sy, 0.0))
                r[i, j] = r[j, i] = cov / denom if denom > 0 else np.nan

    def render() -> dict:
        rel = job.ledger.released
        ns = [[rel(cells[(i, j)]) for j in range(m)] for i in range(m)]
        rs = [[None if ns[i][j] is None or np.isnan(r[i, j]) else round_magnitude(float(r[i, j])) for j in range(m)]
              for i in range(m)]
        return {"variables": [v.key() for v in vs], "pearson_r": rs, "n": ns,
                "note": f"pairwise complete cases; pairs with fewer than {k} records are withheld"}

    return render


def missingness(a: Analysis, job: Job) -> Render:
    rows = []
    for v in a.variables:
        rows.append((v, job.ledger.add(job.sums.total(v.station, f"m|{v.column}"), {job.numeric_dim(v): MISSING},
                                       a.name)))
    job.ledger.add(job.n, {}, a.name)

    def render() -> dict:
        rel = job.ledger.released
        n = rel(job.cohort)
        table = [{"station": v.station, "variable": v.column, "missing": rel(c),
                  "share_missing": round(rel(c) / n, 3) if rel(c) is not None and n else None} for v, c in rows]
        return {"table": table, "cohort": n}

    return render


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
        out = {"groups": released, "refused": refused,
               "note": (f"released at the requested times (default: 3, 6, 12, 24, 36 and 60 months) where at least "
                        f"{k} events separate adjacent times and at least {k} are at risk; at-risk counts rounded to "
                        f"{risk_base}")}
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


def table_one(a: Analysis, job: Job) -> Render:
    """The baseline table of a paper: per variable, by the stratifier's levels and overall, n (%) per level
    (categorical) or mean (SD) / median [IQR] (numeric), the missing count and a test across the groups.

    The counts are a crosstab's (variable x stratifier, with margins) and a summary's (group sizes, missing),
    registered in the job's one ledger. Tests are computed from the released numbers only (rounded counts,
    means and SDs on their grid), so they add nothing to the table, and are withheld when one of their inputs
    is; Kruskal-Wallis (medians) needs the private histograms: p to 2 significant digits, only for groups of
    at least k values.
    """
    by = a.by
    levels = job.levels[by]
    if not job.dry_run and len([lv for lv in levels if lv.label != MISSING]) < 2:
        raise InputError(f"analysis '{a.name}': a table_one stratifier needs at least two levels among the linked "
                         "cohort", station=by.station, column=by.column)
    group_cells = [(lv, job.ledger.add(job.joint(a, [by], {by: lv}), {by.key(): lv.label}, a.name)) for lv in levels]
    group_cells = [(lv, c) for lv, c in group_cells if lv.label != MISSING or job.ledger.cells[c].value > 0]
    job.ledger.add(job.n, {}, a.name)
    rows = []
    for part in expanded(a, job.sums.meta):
        if part.type == "crosstab":
            rows.append((part, _grid(part, job, [part.variables[0], by], fixed={})))
        else:
            rows.append((part, summary(part, job)))

    def render() -> dict:
        rel = job.ledger.released
        groups = [{"level": lv.label, "n": rel(c)} for lv, c in group_cells]
        out_rows, suppressed = [], []
        for part, made in rows:
            v = part.variables[0]
            head = {"variable": v.column, "station": v.station}
            if isinstance(made, _Grid):
                row, withheld = _table_one_categorical(job, made, [lv.label for lv, _ in group_cells])
                suppressed += [{"cell": {"variable": v.key(), **where}, "reason": reason} for where, reason in withheld]
                out_rows.append({**head, **row})
            else:
                out_rows.append({**head, **_table_one_numeric(part, made(), [lv.label for lv, _ in group_cells],
                                                              by.column)})
        return {"by": {"station": by.station, "column": by.column}, "groups": groups,
                "overall": {"n": rel(job.cohort)}, "rows": out_rows, "suppressed": suppressed,
                "note": (f"percentages of each column's n, from the released counts (each count rounded to "
                         f"{job.base} on its own, so a column need not add up); means and SDs on the grid of "
                         f"docs/leakage/disclosure.md; medians and quartiles from a private 200-bin histogram over "
                         f"the variable's range, released only with {job.k} values on either side; tests across the "
                         f"groups (without <missing>) from the released numbers, withheld when one of them is "
                         f"(Kruskal-Wallis: from the private histograms, p to 2 significant digits)")}

    return render


def _table_one_categorical(job: Job, g: _Grid, group_labels: list[str]) -> tuple[dict, list]:
    """n (%) per level and group (percent of the column's n, from the released counts); chi-square test on the
    released counts of the levels and groups other than <missing>."""
    rel = job.ledger.released

    def share(top, bottom):
        return None if top is None or not bottom else round(100.0 * top / bottom, 1)

    col_of = {g.cols[j].label: j for j in g.keep_c}
    total = rel(g.total)
    levels, missing, withheld = [], 0, []
    for i in g.keep_r:
        label = g.rows[i].label
        n_all = rel(g.row_tot[i])
        entry = {"level": label, "overall": {"n": n_all, "percent": share(n_all, total)}, "groups": []}
        for group in group_labels:
            j = col_of.get(group)
            n = rel(g.cell[i][j]) if j is not None else 0
            entry["groups"].append({"level": group, "n": n,
                                    "percent": share(n, rel(g.col_tot[j]) if j is not None else None)})
            if j is not None and job.ledger.is_withheld(g.cell[i][j]):
                withheld.append(({"level": label, "group": group}, job.ledger.reason(g.cell[i][j])))
        if job.ledger.is_withheld(g.row_tot[i]):
            withheld.append(({"level": label, "group": "(overall)"}, job.ledger.reason(g.row_tot[i])))
        levels.append(entry)
        if label == MISSING:
            missing = n_all
    test_rows = [i for i in g.keep_r if g.rows[i].label != MISSING]
    test_cols = [col_of[group] for group in group_labels if group != MISSING and group in col_of]
    table = [[rel(g.cell[i][j]) for j in test_cols] for i in test_rows]
    test: dict = {"test": "chi-square" + (" (Yates' correction)" if len(test_rows) == 2 and len(test_cols) == 2
                                          else "")}
    if any(x is None for r in table for x in r):
        test.update({"p_value": None, "withheld": "a count of the table is withheld: a test on the exact counts "
                                                  "could reveal it"})
    elif len(test_rows) < 2:
        test.update({"p_value": None, "withheld": "fewer than two levels"})
    else:
        result = chi_square(np.array(table, dtype=float))
        test.update({"statistic": round_magnitude(result["statistic"]), "df": result["df"],
                     "p_value": round_magnitude(result["p_value"])})
    return {"kind": "categorical", "statistic": "n (%)", "missing": missing, "levels": levels, "test": test}, withheld


def _table_one_numeric(part: Analysis, out: dict, group_labels: list[str], by_column: str) -> dict:
    """mean (SD) or median [Q1, Q3] per group and overall; Welch / ANOVA on the released moments, or
    Kruskal-Wallis from the private histograms."""
    median = bool(part.quantiles)
    keys = ("n", "mean", "sd", "quantiles", "quantiles_withheld", "refused")

    def cell(entry: dict) -> dict:
        return {key: entry[key] for key in keys if key in entry}

    overall = out["overall"]
    by_label = {entry[by_column]: entry for entry in out.get("by", [])}
    groups = [{"level": label, **cell(by_label.get(label, {"n": 0}))} for label in group_labels]
    row = {"kind": "numeric", "statistic": "median [Q1, Q3]" if median else "mean (SD)", "n": overall.get("n"),
           "missing": overall.get("missing"), "overall": cell(overall), "groups": groups}
    if median:
        row["range"] = [float(part.edges[0]), float(part.edges[1])]
        row["test"] = out["kruskal_wallis"]
        return row
    tested = [grp for grp in groups if grp["level"] != MISSING]
    absent = [grp["level"] for grp in tested if grp.get("mean") is None or grp.get("sd") is None]
    test: dict = {"test": "Welch's t-test" if len(tested) == 2 else "one-way ANOVA"}
    if absent:
        test.update({"p_value": None, "withheld": f"no released mean and SD for group(s) {absent}"})
    else:
        result = mean_difference_test([grp["n"] for grp in tested], [grp["mean"] for grp in tested],
                                      [grp["sd"] for grp in tested])
        df = result["df"]
        test.update({"statistic": round_magnitude(result["statistic"]),
                     "df": [round_magnitude(d) for d in df] if isinstance(df, list) else round_magnitude(df),
                     "p_value": round_magnitude(result["p_value"])})
    row["test"] = test
    return row


def _reasons(job: Job, named: list[tuple[dict, object]]) -> list[dict]:
    """Why each withheld count of an analysis is withheld."""
    return [{"cell": where, "reason": job.ledger.reason(c)} for where, c in named if job.ledger.is_withheld(c)]


ANALYSES = {"count": count, "crosstab": crosstab, "summary": summary, "histogram": histogram,
            "correlation": correlation, "missingness": missingness, "kaplan_meier": kaplan_meier,
            "table_one": table_one}


def release(spec: ExploreSpec, sums: CohortSums, k: int, base: int, dry_run: bool = False) -> tuple[list[dict], dict]:
    """Every analysis of the job, its counts suppressed jointly, then written out (in spec order),
    and the suppression's summary."""
    job = Job(spec, sums, k, base, dry_run)
    renders = []
    for a in spec.analyses:
        try:
            renders.append(ANALYSES[a.type](a, job))
        except InputError:
            raise
        except Exception:  # noqa: BLE001 - in a dry run placeholder values may upset a computation
            if not dry_run:
                raise
    if dry_run:
        return [], {}
    job.ledger.suppress()
    out = []
    for a, render in zip(spec.analyses, renders):
        entry = {"name": a.name, "type": a.type, "variables": [v.key() for v in a.all_vars()]}
        entry.update(render())
        out.append(entry)
    return out, job.ledger.report()

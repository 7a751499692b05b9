"""Released statistics of numeric variables: summaries, histograms and correlations.

One family of the analyses :func:`lancelot.explore.stats.release` runs. Means and SDs from the +/- parts
and squares of a column (on the grid of lancelot.disclosure.round_mean); quantiles read from a private
200-bin histogram, only with k values on either side; histogram bins over the job's merged atoms;
Pearson correlations on pairwise complete cases. A summary is also a table_one's numeric row.
"""

from __future__ import annotations

import numpy as np

from ..disclosure import DOMINANCE, may_be_dominated, quantile_allowed, round_magnitude, round_mean
from .columns import MISSING
from .job import CohortSums, Job, Render
from .significance import kruskal_binned
from .spec import Analysis, Var


def _parts(sums, station_a, col_a, station_b=None, col_b=None) -> tuple[float, float]:
    """The sums of a column's + and - parts (optionally times another station's column)."""
    if station_b is None:
        return sums.total(station_a, f"{col_a}|+"), sums.total(station_a, f"{col_a}|-")
    return sums.cross(station_a, f"{col_a}|+", station_b, col_b), sums.cross(station_a, f"{col_a}|-", station_b, col_b)


def _signed(sums, station_a, col_a, station_b=None, col_b=None) -> float:
    """sum(x) from the +/- parts."""
    plus, minus = _parts(sums, station_a, col_a, station_b, col_b)
    return plus - minus


def _absolute(sums, station_a, col_a, station_b=None, col_b=None) -> float:
    """sum(|x|) from the +/- parts: for the dominance rule."""
    plus, minus = _parts(sums, station_a, col_a, station_b, col_b)
    return plus + minus


WITHHELD_MOMENTS = {"mean": None, "variance": None, "sd": None, "withheld": DOMINANCE}


def _moments(n: float, s1: float, s2: float, base: int) -> dict:
    """Mean and SD on a grid of step base * SD / n at least (lancelot.disclosure.round_mean); the variance
    is the square of the released SD."""
    mean = s1 / n if n else float("nan")
    var = (s2 - s1 * s1 / n) / (n - 1) if n > 1 else float("nan")
    var = max(var, 0.0) if not np.isnan(var) else var
    sd = float(np.sqrt(var)) if not np.isnan(var) else var
    sd_out = round_mean(sd, sd, n, base)
    return {"mean": round_mean(mean, sd, n, base), "variance": round_magnitude(sd_out * sd_out), "sd": sd_out}


def summary(a: Analysis, job: Job) -> Render:
    (x,) = a.variables
    sums, k, dim = job.sums, job.k, job.numeric_dim(x)
    n = sums.total(x.station, f"n|{x.column}|n")
    s1, s2 = _signed(sums, x.station, f"n|{x.column}"), sums.total(x.station, f"n|{x.column}|q")
    magnitudes = [(n, _absolute(sums, x.station, f"n|{x.column}"), s2)]   # (n, sum |x|, sum x^2) per cell
    present = job.ledger.add(n, {dim: job.present(x)}, a.name)
    missing = job.missing_cell(x, job.n - n, a.name)
    groups = []
    if a.by is not None:
        for lv in job.levels[a.by]:
            gn = g1 = g2 = ga = 0.0
            for label in lv.raw:
                if a.by.station == x.station:
                    base = f"{a.tag}|by|{label}"
                    gn += sums.total(x.station, f"{base}|n")
                    g1 += _signed(sums, x.station, base)
                    g2 += sums.total(x.station, f"{base}|q")
                    ga += _absolute(sums, x.station, base)
                else:
                    col = f"c|{a.by.column}|{label}"
                    gn += sums.cross(x.station, f"n|{x.column}|n", a.by.station, col)
                    g1 += _signed(sums, x.station, f"n|{x.column}", a.by.station, col)
                    g2 += sums.cross(x.station, f"n|{x.column}|q", a.by.station, col)
                    ga += _absolute(sums, x.station, f"n|{x.column}", a.by.station, col)
            if gn == 0 and lv.label == MISSING:
                continue
            magnitudes.append((gn, ga, g2))
            groups.append((lv, gn, g1, g2, job.ledger.add(gn, {dim: job.present(x), a.by.key(): lv.label}, a.name)))
    # a mean of any cell that one or two values could dominate is withheld with every mean and SD of the
    # variable in the job: with the others' sums it would come back by differencing
    if any(cn >= k and may_be_dominated(ca, c2) for cn, ca, c2 in magnitudes):
        job.dominated.add(x)
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
            out["overall"] = {"n": rel(present), **(WITHHELD_MOMENTS if x in job.dominated else
                                                    _moments(n, s1, s2, job.base)),
                              "missing": 0 if missing is None else rel(missing)}
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
                    entry.update({"n": rel(c), **(WITHHELD_MOMENTS if x in job.dominated else
                                                  _moments(gn, g1, g2, job.base))})
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
               "suppressed": job.reasons([({"bin": lab}, c) for lab, c in bins] + [({"bin": "missing"}, missing)])}
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
    dominated: set[tuple[int, int]] = set()   # pairs whose r one or two records could make (dominance)
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
                ax, ay = _absolute(sums, x.station, f"{base}|x"), _absolute(sums, x.station, f"{base}|y")
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
                ax, ay = _absolute(sums, xs, xc, ys, f"{yc}|n"), _absolute(sums, ys, yc, xs, f"{xc}|n")
            if may_be_dominated(ax, sxx) or may_be_dominated(ay, syy):
                dominated |= {(i, j), (j, i)}
            cells[(i, j)] = cells[(j, i)] = job.ledger.add(
                n, {job.numeric_dim(x): job.present(x), job.numeric_dim(y): job.present(y)}, a.name)
            if n >= k and n > 2:
                cov = n * sxy - sx * sy
                denom = np.sqrt(max(n * sxx - sx * sx, 0.0) * max(n * syy - sy * sy, 0.0))
                r[i, j] = r[j, i] = cov / denom if denom > 0 else np.nan

    def render() -> dict:
        rel = job.ledger.released
        ns = [[rel(cells[(i, j)]) for j in range(m)] for i in range(m)]
        # an extreme value of x makes r about that record's standardised y: withheld like its mean
        held = {(i, j) for i in range(m) for j in range(m) if i != j and ((i, j) in dominated or vs[i] in job.dominated
                                                                          or vs[j] in job.dominated)}
        rs = [[None if ns[i][j] is None or (i, j) in held or np.isnan(r[i, j]) else round_magnitude(float(r[i, j]))
               for j in range(m)] for i in range(m)]
        out = {"variables": [v.key() for v in vs], "pearson_r": rs, "n": ns,
               "note": f"pairwise complete cases; pairs with fewer than {k} records are withheld"}
        if held:
            out["withheld"] = [{"pair": [vs[i].key(), vs[j].key()], "reason": DOMINANCE} for i, j in sorted(held) if i < j]
        return out

    return render

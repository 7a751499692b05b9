"""Released counts: one-way counts, two- and three-way crosstabs with their margins, and missingness.

One family of the analyses :func:`lancelot.explore.stats.release` runs; a crosstab's two-way :func:`grid`
is also a table_one's categorical row (:mod:`.table_one`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import MISSING
from .job import Job, Level, Render
from .spec import Analysis, Var


def count(a: Analysis, job: Job) -> Render:
    (v,) = a.variables
    cells = [(lv, job.ledger.add(job.joint(a, [v], {v: lv}), {v.key(): lv.label}, a.name)) for lv in job.levels[v]]
    cells = [(lv, c) for lv, c in cells if job.ledger.cells[c].value > 0 or lv.label != MISSING]
    job.ledger.add(job.n, {}, a.name)

    def render() -> dict:
        table = [{v.column: lv.label, "count": job.ledger.released(c)} for lv, c in cells]
        return {"table": table, "total": job.ledger.released(job.cohort),
                "suppressed": job.reasons([({v.column: lv.label}, c) for lv, c in cells])}

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
class Grid:
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


def grid(a: Analysis, job: Job, vs: list[Var], fixed: dict[Var, Level]) -> Grid:
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
    return Grid(rows, cols, counts, cell, row_tot, col_tot, total, keep_r, keep_c)


def _table2(a: Analysis, job: Job, vs: list[Var], fixed: dict[Var, Level]) -> Render:
    """A two-way table of the first two variables (within one level of a third), with its margins."""
    rv, cv = vs
    g = grid(a, job, vs, fixed)
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
                "total": rel(total), "suppressed": job.reasons(named)}

    return render


def missingness(a: Analysis, job: Job) -> Render:
    rows = []
    for v in a.variables:
        rows.append((v, job.missing_cell(v, job.sums.total(v.station, f"m|{v.column}"), a.name)))
    job.ledger.add(job.n, {}, a.name)

    def render() -> dict:
        rel = job.ledger.released
        n = rel(job.cohort)
        missing = [0 if c is None else rel(c) for _, c in rows]   # None: no missing level in the cohort
        table = [{"station": v.station, "variable": v.column, "missing": m,
                  "share_missing": round(m / n, 3) if m is not None and n else None} for (v, _), m in zip(rows, missing)]
        return {"table": table, "cohort": n}

    return render

"""A paper's Table 1: each variable by a stratifier, as a crosstab's and a summary's counts, with tests.

One family of the analyses :func:`lancelot.explore.stats.release` runs, built on the other two: a
categorical row is a :func:`.counts.grid`, a numeric row a :func:`.numeric.summary`. The tests
(:mod:`.significance`) read only released numbers, except Kruskal-Wallis (see :func:`table_one`).
"""

from __future__ import annotations

import numpy as np

from ..disclosure import round_magnitude
from ..runtime.errors import InputError
from .columns import MISSING
from .counts import Grid, grid
from .job import Job, Render, expanded
from .numeric import summary
from .significance import chi_square, mean_difference_test
from .spec import Analysis


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
            rows.append((part, grid(part, job, [part.variables[0], by], fixed={})))
        else:
            rows.append((part, summary(part, job)))

    def render() -> dict:
        rel = job.ledger.released
        groups = [{"level": lv.label, "n": rel(c)} for lv, c in group_cells]
        out_rows, suppressed = [], []
        for part, made in rows:
            v = part.variables[0]
            head = {"variable": v.column, "station": v.station}
            if isinstance(made, Grid):
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


def _table_one_categorical(job: Job, g: Grid, group_labels: list[str]) -> tuple[dict, list]:
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
    keys = ("n", "mean", "sd", "quantiles", "quantiles_withheld", "refused", "withheld")

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

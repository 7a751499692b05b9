"""An independent disclosure auditor for a released exploration result.

It reads only what the researcher gets (the result JSON) and the spec that asked for it, builds
the released linear system itself, and for every withheld count solves for the smallest and the
largest value consistent with everything released (two linear programs, HiGHS through its
Python interface ``highspy``): the "protection interval" statistical agencies audit (tau-Argus). A
withheld count is protected when that interval is at least k wide. Nothing of lancelot's ledger or
statistics code is imported or reused: the model below is rebuilt from the release format.

The model
---------
Variables: the non-negative number of cohort members in each atom of the full product of the
job's dimensions:

* a categorical variable (a variable of a count or crosstab, a summary's, Kaplan-Meier's or
  table one's ``by``, a table one row the result marks categorical): its labels as released
  anywhere in the result (``<other>`` included), plus ``<missing>``;
* a numeric variable (summary, histogram, correlation, missingness, a numeric table one row):
  present / missing, or, when
  the job has histograms of it, the atoms between the union of the finite edges of every released
  bin of it (bins with shifted edges in one job split each other), plus missing; a categorical
  variable used numerically (correlation, missingness, summary) is present when it has any
  non-missing label;
* one survival status {event, censored, unusable} per (time, event) pair of the Kaplan-Meier
  analyses.

Constraints: every released count is the sum of the atoms it counts, and lies in the interval of
integers that round to the released value (:func:`rounding_interval`, half-up rounding to the
job's ``rounding_base``) and that the suppression rule lets through (a released count is 0 or at
least k: ``use_release_rule``). Counts of the same cell in several analyses are the same linear
form, so they are one number. Rows and groups that the release format leaves out only when they
are empty (a ``<missing>`` row or column of a crosstab layer, the ``<missing>`` level of a count,
a summary's ``<missing>`` group) are exact zeros. The linkage summary's
``linked_to_all_stations`` is the cohort size once more (a released count like the others).

Three exact reductions keep the programs small (tests/test_disclosure.py checks them against the
plain full-product program): levels and atoms that every count treats alike are merged (two equal
columns of the system can be replaced by their sum); dimensions that no count links are
independent blocks with tied totals (tables of two blocks with equal totals always have a joint
table with those margins); and the program is solved over the groups of atoms that lie in the
same counts, released or withheld (one model per system, re-solved per target from the last basis).

A withheld count is protected when its interval is at least k wide (``assert_protected``;
``strict=False`` only asks it of intervals that reach below k). A withheld count pinned to zero
counts as protected when it concerns one variable, or when a margin of it without one of its
variables is pinned to zero too: a zero inside an empty margin says nothing the margin does not.

Not modelled (checked separately, in tests/test_disclosure.py and scripts/attack_disclosure.py):

* Kaplan-Meier at-risk counts, survival estimates and confidence bands, and the log-rank test: at
  risk counts are over time, which is not a dimension here, and the rest is nonlinear; the rules
  for them (released times at least k events apart, at-risk rounded to 5) are checked on the
  pooled records;
* means, variances, SDs, correlations, quantiles and the coarse min/max: magnitudes, not counts
  (quantiles only within [k/n, 1 - k/n] is checked separately);
* structural relations between dimensions that the release does not state, for example that a
  record with a missing survival time has status "unusable": the auditor's system is the
  relaxation without them (as the usual audit is);
* integer feasibility: the bounds are those of the real-valued relaxation (the usual audit);
* the linkage summary's other counts (records per station, match-probability histogram): they
  concern all records of a station, not the cohort's dimensions;
* differencing across jobs: one result at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

MISSING = "<missing>"
PRESENT = "present"                         # the auditor's own level for a numeric variable's values
STATUS = ("event", "censored", "unusable")
MAX_ATOMS = 2_000_000                        # after merging: beyond this the system is too large to audit


class AuditError(Exception):
    """The result cannot be read as a release of the spec, or its counts contradict each other."""


def rounding_interval(released: int, base: int) -> tuple[int, int]:
    """The integers c >= 0 that round to ``released``: ``base * floor(c / base + 1/2) == released``.

    base * floor(c/b + 1/2) = r  <=>  r/b <= c/b + 1/2 < r/b + 1  <=>  r - b/2 <= c < r + b/2, so for
    integers c: r - floor(b/2) <= c <= r + ceil(b/2) - 1 (base 5: r-2..r+2; base 10: r-5..r+4).
    Base 1 (or less): no rounding, the count itself.
    """
    r, b = int(released), int(base)
    if b <= 1:
        return r, r
    return max(0, r - b // 2), r + (b + 1) // 2 - 1


def release_interval(released: int, base: int, k: int) -> tuple[int, int] | None:
    """Also using the suppression rule: a released count is 0 or at least k (else it is withheld).

    None when no such count rounds to ``released``: the release itself broke the rule.
    """
    lo, hi = rounding_interval(released, base)
    if released == 0:
        return (0, 0) if lo == 0 else None
    lo = max(lo, k)
    return (lo, hi) if lo <= hi else None


Condition = dict[str, frozenset]          # dimension -> the levels counted (absent: every level)


@dataclass
class Count:
    """One count of the result: where it is, what it counts, and its released value (None: withheld)."""

    analysis: str
    cell: dict
    condition: Condition
    value: int | None
    exact: bool = False                   # an exact zero implied by the layout (not rounded)


@dataclass
class Withheld:
    analysis: str
    cell: dict
    lo: float
    hi: float
    condition: Condition = field(default_factory=dict, repr=False)
    empty_margin: bool = False            # pinned to zero inside an empty margin: nothing disclosed

    @property
    def width(self) -> float:
        return self.hi - self.lo


@dataclass
class Violation:
    """A released count that no count allowed by the rules rounds to (0 < count < k was released)."""

    analysis: str
    cell: dict
    value: int


def _key(var: Mapping) -> str:
    return f"{var['station']}.{var['column']}"


def _bin_bounds(label: str) -> tuple[float, float]:
    """'(-inf, 60)', '[60, 70)', '[80, 90]', '(90, inf)' -> (lo, hi)."""
    text = label.strip()
    if text[0] not in "([" or text[-1] not in ")]" or "," not in text:
        raise AuditError(f"unreadable histogram bin label {label!r}")
    lo, hi = (float(part.strip()) for part in text[1:-1].split(","))
    return lo, hi


class _Infeasible(Exception):
    pass


class _Program:
    """The released counts as a linear program over atom classes, solved per target with HiGHS.

    Atoms that lie in the same counts (released or not) and the same block are interchangeable for
    every target (only their sum enters any row or objective), so the program is built once over
    those groups; each target changes only the objective, and HiGHS re-solves from the last basis.
    """

    def __init__(self, member: np.ndarray, block_of: np.ndarray, rows: list[tuple[int, int, int]]):
        self.member = member
        self.block_of = block_of
        self.rows = rows
        released = member[[i for i, _, _ in rows]] if rows else np.zeros((0, member.shape[1]), bool)
        self.released = released
        blocks = block_of.astype(np.int64).view(np.uint8).reshape(len(block_of), -1)
        key = np.column_stack([np.packbits(released, axis=0).T if rows else np.zeros((member.shape[1], 0), np.uint8),
                               blocks])
        _, self.group = np.unique(key, axis=0, return_inverse=True)   # for the elastic repair (conflicts)
        self.group = self.group.ravel()
        _, self.columns = np.unique(np.column_stack([np.packbits(member, axis=0).T, blocks]), axis=0, return_index=True)
        self._highs = None

    def _model(self):
        """The HiGHS model over the atom groups: x >= 0, the blocks' totals tied, each released count in its interval."""
        import highspy

        cols = self.columns
        released, block = self.released[:, cols].astype(float), self.block_of[cols]
        rows = [((block == 0).astype(float) - (block == b), 0.0, 0.0) for b in range(1, int(self.block_of.max()) + 1)]
        rows += [(row, float(lo), float(hi)) for row, (_, lo, hi) in zip(released, self.rows)]
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.addVars(len(cols), np.zeros(len(cols)), np.full(len(cols), highspy.kHighsInf))
        if rows:
            a = sparse.csr_matrix(np.array([r for r, _, _ in rows]))
            h.addRows(len(rows), np.array([lo for _, lo, _ in rows]), np.array([hi for _, _, hi in rows]), a.nnz,
                      a.indptr[:-1].astype(np.int32), a.indices.astype(np.int32), a.data)
        return h

    def solve(self, target: np.ndarray) -> tuple[float, float]:
        """The smallest and largest value of the target count over every table consistent with the release."""
        import highspy

        status = highspy.HighsModelStatus
        if self._highs is None:
            self._highs = self._model()
        h, n = self._highs, len(self.columns)
        cost = target[self.columns].astype(float)
        out = []
        for sign in (1.0, -1.0):
            h.changeColsCost(n, np.arange(n, dtype=np.int32), sign * cost)
            h.run()
            got = h.getModelStatus()
            if got == status.kUnboundedOrInfeasible:   # presolve could not tell which: ask the simplex
                h.setOptionValue("presolve", "off")
                h.run()
                got = h.getModelStatus()
            if got == status.kUnbounded:   # only the maximum can be (no released total caps the count)
                out.append(-math.inf * sign)
            elif got == status.kInfeasible:
                raise _Infeasible()
            elif got != status.kOptimal:
                raise AuditError(f"linear program failed: {h.modelStatusToString(got)}")
            else:
                out.append(sign * h.getInfo().objective_function_value + 0.0)
        return out[0], out[1]

    def conflicts(self) -> list[tuple[int, float]]:
        """(row index, change) of the released counts that must move, and by how much, for a consistent table.

        An elastic program: each released count may leave its interval at a cost of one per unit;
        the cheapest repair names the counts that contradict the rest.
        """
        n_rows = len(self.rows)
        if not n_rows:
            return []
        _, cols = np.unique(self.group, return_index=True)
        released = self.released[:, cols].astype(float)
        block = self.block_of[cols]
        width = len(cols)
        eye = np.eye(n_rows)
        a_ub = np.vstack([np.hstack([released, -eye, eye]), np.hstack([-released, eye, -eye])])
        b_ub = np.concatenate([[hi for _, _, hi in self.rows], [-lo for _, lo, _ in self.rows]]).astype(float)
        ties = [np.concatenate([(block == 0).astype(float) - (block == b), np.zeros(2 * n_rows)])
                for b in range(1, int(self.block_of.max()) + 1)]
        kw = {"A_eq": np.array(ties), "b_eq": np.zeros(len(ties))} if ties else {}
        cost = np.concatenate([np.zeros(width), np.ones(2 * n_rows)])
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs", **kw)
        if res.status != 0:
            return []
        moved = res.x[width:width + n_rows] - res.x[width + n_rows:]
        return [(self.rows[i][0], float(m)) for i, m in enumerate(moved) if abs(m) > 1e-6]


class ReleasedSystem:
    """The linear system an attacker can write down from one released result."""

    def __init__(self, result: Mapping, spec: Mapping, use_release_rule: bool = True):
        control = result.get("disclosure_control") or {}
        self.k = int(control["min_cell_count"])
        self.base = int(control.get("rounding_base", 1))
        self.use_release_rule = use_release_rule
        analyses = list(spec["analyses"])
        released = list(result["analyses"])
        if len(analyses) != len(released):
            raise AuditError(f"the spec has {len(analyses)} analyses, the result {len(released)}")
        for a, r in zip(analyses, released):
            if a["type"] != r["type"]:
                raise AuditError(f"analysis {r.get('name')}: spec type {a['type']}, result type {r['type']}")
        self.pairs = list(zip(analyses, released))
        self.categorical = self._categorical_vars()
        self.dims: dict[str, list[str]] = {}
        self._build_dims()
        self.counts: list[Count] = []
        self._read_counts(result)

    # -- dimensions ---------------------------------------------------------------------------------
    def _categorical_vars(self) -> set[str]:
        out = set()
        for a, r in self.pairs:
            if a["type"] == "count":
                out.add(_key(a["variable"]))
            elif a["type"] == "crosstab":
                out.update(_key(v) for v in a["variables"])
            if a["type"] in ("summary", "kaplan_meier", "table_one") and a.get("by") is not None:
                out.add(_key(a["by"]))
            if a["type"] == "table_one":  # the result says which rows it counted per level
                out.update(_key(v) for v, row in zip(a["variables"], r["rows"]) if row["kind"] == "categorical")
        return out

    @staticmethod
    def _status_key(a: Mapping) -> str:
        return f"{_key(a['time'])}~{_key(a['event'])}:status"

    def _build_dims(self) -> None:
        labels: dict[str, list[str]] = {v: [] for v in sorted(self.categorical)}

        def seen(var: str, label) -> None:
            if label is None:
                raise AuditError(f"a level of {var} without a label")
            if str(label) not in labels[var]:
                labels[var].append(str(label))

        edges: dict[str, set[float]] = {}
        numeric: list[str] = []
        for a, r in self.pairs:
            t = a["type"]
            if t == "count":
                var = _key(a["variable"])
                for row in r["table"]:
                    seen(var, row[a["variable"]["column"]])
            elif t == "crosstab":
                vs = a["variables"]
                names = [v["column"] for v in vs[:2]]
                if names[0] == names[1]:
                    raise AuditError(f"analysis {r['name']}: two variables named {names[0]}: the table's keys are ambiguous")
                for layer in r.get("layers") or [r]:
                    for row in layer["table"]:
                        seen(_key(vs[0]), row[names[0]])
                        seen(_key(vs[1]), row[names[1]])
                    for row in layer["row_totals"]:
                        seen(_key(vs[0]), row[names[0]])
                    for row in layer["column_totals"]:
                        seen(_key(vs[1]), row[names[1]])
                    if len(vs) == 3:
                        seen(_key(vs[2]), layer[vs[2]["column"]])
            elif t == "summary":
                numeric.append(_key(a["variable"]))
                if a.get("by") is not None:
                    for row in r.get("by", []):
                        seen(_key(a["by"]), row[a["by"]["column"]])
            elif t == "histogram":
                var = _key(a["variable"])
                numeric.append(var)
                for b in r["bins"]:
                    if b["bin"] != "missing":
                        edges.setdefault(var, set()).update(e for e in _bin_bounds(b["bin"]) if math.isfinite(e))
            elif t in ("correlation", "missingness"):
                numeric.extend(_key(v) for v in a["variables"])
            elif t == "table_one":
                by = _key(a["by"])
                for g in r["groups"]:
                    seen(by, g["level"])
                for v, row in zip(a["variables"], r["rows"]):
                    if row["kind"] == "categorical":
                        for lv in row["levels"]:
                            seen(_key(v), lv["level"])
                    else:
                        numeric.append(_key(v))
            elif t == "kaplan_meier":
                self.dims[self._status_key(a)] = list(STATUS)
                if a.get("by") is not None:
                    for g in list(r.get("groups", [])) + list(r.get("refused", [])):
                        seen(_key(a["by"]), g["group"])
        for var, levels in labels.items():
            self.dims[var] = [lv for lv in levels if lv != MISSING] + [MISSING]
        self.edges: dict[str, list[float]] = {}
        for var in dict.fromkeys(numeric):
            if var in self.categorical:
                if var in edges:
                    raise AuditError(f"{var} is both categorical and in a histogram")
                continue
            if var in edges:
                cuts = sorted(edges[var])
                self.edges[var] = cuts
                self.dims[var] = [f"atom{i}" for i in range(len(cuts) + 1)] + [MISSING]
            else:
                self.dims[var] = [PRESENT, MISSING]

    def present(self, var: str) -> frozenset:
        return frozenset(lv for lv in self.dims[var] if lv != MISSING)

    def atoms_between(self, var: str, lo: float, hi: float) -> frozenset:
        """The atoms of a numeric variable between two of its released edges (or +-inf)."""
        cuts = [-math.inf, *self.edges[var], math.inf]
        if lo not in cuts or hi not in cuts:
            raise AuditError(f"{var}: [{lo}, {hi}] does not lie on released edges {self.edges[var]}")
        i, j = cuts.index(lo), cuts.index(hi)
        if j <= i:
            raise AuditError(f"{var}: empty bin [{lo}, {hi}]")
        return frozenset(f"atom{a}" for a in range(i, j))

    def condition(self, where: Mapping[str, str | Iterable[str]]) -> Condition:
        out: Condition = {}
        for var, levels in where.items():
            chosen = frozenset([levels] if isinstance(levels, str) else levels)
            unknown = chosen - set(self.dims[var])
            if unknown:
                raise AuditError(f"levels {sorted(unknown)} are not levels of {var}")
            if chosen != frozenset(self.dims[var]):
                out[var] = chosen
        return out

    # -- counts -------------------------------------------------------------------------------------
    def _add(self, analysis: str, cell: dict, where: Mapping, value, exact: bool = False) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value != int(value) or value < 0):
            raise AuditError(f"{analysis} {cell}: {value!r} is not a count")
        self.counts.append(Count(analysis, cell, self.condition(where), None if value is None else int(value), exact))

    def _read_counts(self, result: Mapping) -> None:
        for a, r in self.pairs:
            getattr(self, f"_read_{a['type']}")(a, r, r["name"])
        cohort = (result.get("cohort") or {}).get("records")
        if cohort is not None:
            self._add("cohort", {"cohort": "records"}, {}, cohort)
        linked = (result.get("linkage") or {}).get("linked_to_all_stations")
        if isinstance(linked, int) and not isinstance(linked, bool):
            self._add("linkage", {"linkage": "linked_to_all_stations"}, {}, linked)

    def _read_count(self, a, r, name) -> None:
        var, col = _key(a["variable"]), a["variable"]["column"]
        shown = set()
        for row in r["table"]:
            shown.add(str(row[col]))
            self._add(name, {var: row[col]}, {var: str(row[col])}, row["count"])
        self._add(name, {var: "(total)"}, {}, r["total"])
        if MISSING not in shown:  # the table leaves out <missing> only when nobody is missing
            self._add(name, {var: MISSING, "implied": "left out: zero"}, {var: MISSING}, 0, exact=True)

    def _read_crosstab(self, a, r, name) -> None:
        vs = a["variables"]
        rv, cv = _key(vs[0]), _key(vs[1])
        rc, cc = vs[0]["column"], vs[1]["column"]
        for layer in r.get("layers") or [r]:
            base = {} if len(vs) == 2 else {_key(vs[2]): str(layer[vs[2]["column"]])}
            rows, cols = set(), set()
            for row in layer["table"]:
                rows.add(str(row[rc]))
                cols.add(str(row[cc]))
                self._add(name, {**base, rv: row[rc], cv: row[cc]}, {**base, rv: str(row[rc]), cv: str(row[cc])},
                          row["count"])
            for row in layer["row_totals"]:
                self._add(name, {**base, rv: row[rc], cv: "(total)"}, {**base, rv: str(row[rc])}, row["count"])
            for row in layer["column_totals"]:
                self._add(name, {**base, rv: "(total)", cv: row[cc]}, {**base, cv: str(row[cc])}, row["count"])
            self._add(name, {**base, rv: "(total)", cv: "(total)"}, base, layer["total"])
            for var, shown in ((rv, rows), (cv, cols)):  # a <missing> row or column is left out only when empty
                if MISSING not in shown:
                    self._add(name, {**base, var: MISSING, "implied": "left out: zero"}, {**base, var: MISSING}, 0,
                              exact=True)

    def _read_summary(self, a, r, name) -> None:
        x = _key(a["variable"])
        overall = r.get("overall") or {}
        self._add(name, {x: "n"}, {x: self.present(x)}, overall.get("n"))
        if overall.get("n") is not None and "missing" in overall:
            self._add(name, {x: "missing"}, {x: MISSING}, overall["missing"])
        if a.get("by") is not None:
            by, col = _key(a["by"]), a["by"]["column"]
            shown = set()
            for row in r.get("by", []):
                shown.add(str(row[col]))
                self._add(name, {x: "n", by: row[col]}, {x: self.present(x), by: str(row[col])}, row.get("n"))
            if MISSING not in shown:  # the <missing> group is left out only when it is empty
                self._add(name, {x: "n", by: MISSING, "implied": "left out: zero"},
                          {x: self.present(x), by: MISSING}, 0, exact=True)

    def _read_histogram(self, a, r, name) -> None:
        x = _key(a["variable"])
        for b in r["bins"]:
            if b["bin"] == "missing":
                self._add(name, {x: "missing"}, {x: MISSING}, b["count"])
            else:
                self._add(name, {x: b["bin"]}, {x: self.atoms_between(x, *_bin_bounds(b["bin"]))}, b["count"])

    def _read_correlation(self, a, r, name) -> None:
        vs = [_key(v) for v in a["variables"]]
        for i, x in enumerate(vs):
            for j in range(i, len(vs)):
                y = vs[j]
                where = {x: self.present(x)} if i == j else {x: self.present(x), y: self.present(y)}
                self._add(name, {"n": [x, y]}, where, r["n"][i][j])

    def _read_missingness(self, a, r, name) -> None:
        for row in r["table"]:
            var = f"{row['station']}.{row['variable']}"
            self._add(name, {var: "missing"}, {var: MISSING}, row["missing"])
        if r.get("cohort") is not None:
            self._add(name, {"cohort": "records"}, {}, r["cohort"])

    def _read_table_one(self, a, r, name) -> None:
        """Group sizes, the cohort; per categorical row its cells and overall counts per level, per numeric row
        the present count overall and per group and the missing count. A <missing> group or level is left
        out only when it is empty; a numeric row's group of nobody with a value shows n = 0."""
        by = _key(a["by"])
        groups = {str(g["level"]) for g in r["groups"]}
        for g in r["groups"]:
            self._add(name, {by: g["level"]}, {by: str(g["level"])}, g["n"])
        if MISSING not in groups:
            self._add(name, {by: MISSING, "implied": "left out: zero"}, {by: MISSING}, 0, exact=True)
        self._add(name, {"cohort": "records"}, {}, r["overall"]["n"])
        for v, row in zip(a["variables"], r["rows"]):
            x = _key(v)
            if row["kind"] == "categorical":
                shown = set()
                for lv in row["levels"]:
                    level = str(lv["level"])
                    shown.add(level)
                    self._add(name, {x: level}, {x: level}, lv["overall"]["n"])
                    for g in lv["groups"]:
                        self._add(name, {x: level, by: g["level"]}, {x: level, by: str(g["level"])}, g["n"])
                if MISSING not in shown:
                    self._add(name, {x: MISSING, "implied": "left out: zero"}, {x: MISSING}, 0, exact=True)
                continue
            self._add(name, {x: "n"}, {x: self.present(x)}, row["n"])
            if row["n"] is not None and row.get("missing") is not None:
                self._add(name, {x: "missing"}, {x: MISSING}, row["missing"])
            for g in row["groups"]:
                self._add(name, {x: "n", by: g["level"]}, {x: self.present(x), by: str(g["level"])}, g.get("n"))

    def _read_kaplan_meier(self, a, r, name) -> None:
        status = self._status_key(a)
        by = _key(a["by"]) if a.get("by") is not None else None
        counts = (("n", ["event", "censored"]), ("events", ["event"]), ("censored", ["censored"]))
        for g in r.get("groups", []):
            base = {} if by is None else {by: str(g["group"])}
            for what, levels in counts:
                self._add(name, {"group": g["group"], "count": what}, {**base, status: levels}, g.get(what))
        for g in r.get("refused", []):  # a refused group's counts are all withheld
            base = {} if by is None else {by: str(g["group"])}
            for what, levels in counts:
                self._add(name, {"group": g["group"], "count": what, "refused": True}, {**base, status: levels}, None)

    # -- the linear programs ------------------------------------------------------------------------
    def violations(self) -> list[Violation]:
        return [Violation(c.analysis, c.cell, c.value) for c in self.counts
                if c.value is not None and not c.exact and release_interval(c.value, self.base, self.k) is None]

    def _bounds(self, c: Count) -> tuple[int, int]:
        if c.exact:
            return c.value, c.value
        if self.use_release_rule:
            both = release_interval(c.value, self.base, self.k)
            if both is not None:
                return both
        return rounding_interval(c.value, self.base)

    def _components(self, conditions: list[Condition]) -> list[list[str]]:
        """Groups of dimensions that some count links (connected components; every other dimension alone)."""
        parent = {d: d for d in self.dims}

        def find(d: str) -> str:
            while parent[d] != d:
                parent[d] = parent[parent[d]]
                d = parent[d]
            return d

        for cond in conditions:
            ds = list(cond)
            for d in ds[1:]:
                parent[find(d)] = find(ds[0])
        groups: dict[str, list[str]] = {}
        for d in self.dims:
            groups.setdefault(find(d), []).append(d)
        return list(groups.values())

    def _block(self, dims: list[str], conditions: list[Condition]) -> np.ndarray:
        """Membership (conditions x atom classes) over the full product of ``dims``.

        Levels of a dimension that every count treats alike are one class, and atoms that lie in
        exactly the same counts are one column: both exact (such columns only ever appear summed).
        """
        n = len(conditions)
        columns = np.ones((n, 1), dtype=bool)
        for dim in dims:
            sig = {}
            for lv in self.dims[dim]:
                sig.setdefault(tuple(dim not in cond or lv in cond[dim] for cond in conditions), lv)
            classes = np.array(list(sig), dtype=bool).T.reshape(n, -1)
            columns = (columns[:, :, None] & classes[:, None, :]).reshape(n, -1)
            _, keep = np.unique(np.packbits(columns, axis=0).T, axis=0, return_index=True)
            columns = columns[:, np.sort(keep)]
            if columns.shape[1] > MAX_ATOMS:
                raise AuditError(f"the released system has more than {MAX_ATOMS} distinct atoms")
        return columns

    def _prepare(self, extra: list[Condition] = ()) -> _Program:
        """The linear system: one row per count (released or not), one column per atom class.

        Dimensions that no count links are independent blocks: any non-negative tables of two
        blocks with the same total have a joint table with those margins (their product divided
        by the total), so the full product's program equals the one over the blocks side by side
        with their totals tied. A count over no dimension (the cohort) is the first block's total.
        """
        conditions = [c.condition for c in self.counts] + list(extra)
        blocks = []
        for dims in self._components(conditions) or [[]]:
            member = self._block(dims, conditions)
            own = np.array([bool(cond) and set(cond) <= set(dims) for cond in conditions])
            member[~own] = False
            blocks.append(member)
        blocks[0][np.array([not cond for cond in conditions])] = True
        block_of = np.concatenate([np.full(b.shape[1], i) for i, b in enumerate(blocks)])
        rows = [(i, *self._bounds(c)) for i, c in enumerate(self.counts) if c.value is not None]
        return _Program(np.hstack(blocks), block_of, rows)

    def _solve(self, program: _Program, target: np.ndarray) -> tuple[float, float]:
        try:
            return program.solve(target)
        except _Infeasible:
            moved = "; ".join(f"{self.counts[i].analysis} {self.counts[i].cell} = {self.counts[i].value} "
                              f"(off by {m:+g})" for i, m in program.conflicts())
            raise AuditError("the released counts contradict each other (no table is consistent with them); "
                             f"the smallest repair moves: {moved}") from None

    def withheld(self) -> list[Withheld]:
        """The protection interval of every withheld count (one pair of programs per distinct cell).

        A withheld count pinned to zero whose margin without one of its variables is pinned to zero
        too (or that concerns one variable only) is flagged ``empty_margin``: it says nothing the
        empty margin (or a released zero of one variable) does not.
        """
        program = self._prepare()
        member = program.member
        solved: dict[bytes, tuple[float, float]] = {}
        out = []
        for i, c in enumerate(self.counts):
            if c.value is not None:
                continue
            key = np.packbits(member[i]).tobytes()
            if key not in solved:
                solved[key] = self._solve(program, member[i])
            lo, hi = solved[key]
            out.append(Withheld(c.analysis, c.cell, lo, hi, c.condition))
        zeros = [w for w in out if w.hi <= 1e-9]
        if zeros:
            margins = [{d: lv for d, lv in w.condition.items() if d != drop} for w in zeros for drop in w.condition]
            program = self._prepare(margins)
            at = len(self.counts)
            for w in zeros:
                pinned = []
                for _ in w.condition:
                    pinned.append(self._solve(program, program.member[at])[1] <= 1e-9)
                    at += 1
                w.empty_margin = len(w.condition) <= 1 or any(pinned)
        return out

    def interval(self, where: Mapping[str, str | Iterable[str]]) -> tuple[float, float]:
        """What the attacker can say about any count over the released dimensions (withheld or not)."""
        program = self._prepare([self.condition(where)])
        return self._solve(program, program.member[-1])


def audit(result: Mapping, spec: Mapping, use_release_rule: bool = True) -> list[Withheld]:
    """Per withheld count of ``result``: (analysis, cell, lo, hi) over every table consistent with the release."""
    return ReleasedSystem(result, spec, use_release_rule).withheld()


def assert_protected(result: Mapping, spec: Mapping, k: int | None = None, strict: bool = True) -> list[Withheld]:
    """Fail when a released count breaks the rule or a withheld count can be recomputed.

    ``strict`` (the default): every withheld count keeps a protection interval at least k wide,
    except a zero inside an empty margin. Otherwise only intervals that reach below k must be k
    wide: pinning a count that is at least k anyway (a secondary suppression) discloses no one.
    """
    system = ReleasedSystem(result, spec)
    k = system.k if k is None else k
    broken = system.violations()
    assert not broken, "released counts below k: " + "; ".join(f"{v.analysis} {v.cell} = {v.value}" for v in broken)
    intervals = system.withheld()
    narrow = [w for w in intervals if w.width < k - 1e-6 and not w.empty_margin and (strict or w.lo < k)]
    assert not narrow, f"withheld counts recoverable to within {k}: " + "; ".join(
        f"{w.analysis} {w.cell} in [{w.lo:g}, {w.hi:g}]" for w in narrow)
    return intervals

"""One joint cell suppression for every count an exploration job releases.

Each released count (a table cell, a margin, a total, a histogram bin, a group size, the events
of a Kaplan-Meier group, a missing count) is the number of cohort members whose variables fall in
given sets of levels: a *cell* over *dimensions* (a categorical variable's released levels, a
numeric variable's histogram atoms, present/missing, a survival status). Counts of the same cell
in two analyses are one entry, so they are released or withheld together.

Suppression is joint over the whole job: a count 0 < c < k is withheld, and so is a zero that
concerns two or more variables (it would show that nobody in a row has some value: ACRO treats
zeros as disclosive); then, while some withheld cell can be pinned by the released counts to an
interval narrower than k, one more neighbouring cell is withheld. The interval is computed as
statistical agencies do (the "protection interval" of tau-Argus): the smallest and largest value
of the withheld cell over every non-negative table consistent with everything released, a pair
of linear programs (HiGHS). The tables are linked through a junction tree of the dimensions (a
chordal completion of the graph of variables released together), so the programs stay small and
are exact for the real-valued relaxation. Released values are finally rounded to the job's base.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

Condition = tuple[tuple[str, frozenset], ...]


def canonical(cond: Condition) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A total order of conditions, the same in every process.

    Conditions hold frozensets, which compare by inclusion (not a total order) and iterate in an
    order set by the process's hash seed: sorting or taking the minimum of conditions directly
    would depend on the order they came in, and the suppression pattern with it. Each vantage6
    run is a fresh process, so the same job run twice could release two patterns that, combined,
    pin a withheld count. Every choice below is ordered by this key instead.
    """
    return tuple((d, tuple(sorted(levels))) for d, levels in cond)


@dataclass
class _Cell:
    value: float
    tables: set[str] = field(default_factory=set)
    withheld: bool = False
    reason: str = ""


class Ledger:
    """Every count of one job, the dimensions they are counted over, and the joint suppression."""

    def __init__(self, k: int, base: int = 1, strict: bool = True):
        self.k = k
        self.base = base
        self.strict = strict  # a dry run on placeholder sums registers cells whose values disagree
        self.dims: dict[str, tuple[str, ...]] = {}
        self.cells: dict[Condition, _Cell] = {}
        self.intervals: dict[Condition, tuple[float, float]] = {}

    # -- registering ---------------------------------------------------------------------------
    def dim(self, key: str, levels: Iterable[str]) -> str:
        levels = tuple(levels)
        if key in self.dims and self.dims[key] != levels:
            raise ValueError(f"dimension {key} registered twice with different levels")
        self.dims[key] = levels
        return key

    def condition(self, where: Mapping[str, str | Iterable[str]]) -> Condition:
        out = []
        for key, levels in where.items():
            chosen = frozenset([levels] if isinstance(levels, str) else levels)
            unknown = chosen - set(self.dims[key])
            if unknown:
                raise ValueError(f"levels {sorted(unknown)} are not levels of {key}")
            if chosen != frozenset(self.dims[key]):  # all levels: no condition on this dimension
                out.append((key, chosen))
        return tuple(sorted(out, key=lambda kv: kv[0]))

    def add(self, value: float, where: Mapping[str, str | Iterable[str]], table: str) -> Condition:
        """Register a count (cells shared by several analyses must agree: they are the same number)."""
        cond = self.condition(where)
        cell = self.cells.get(cond)
        if cell is None:
            cell = self.cells[cond] = _Cell(float(value))
        elif self.strict and abs(cell.value - float(value)) > 1e-6:
            raise ValueError(f"the same cell counted twice with different values: {cond}")
        cell.tables.add(table)
        return cond

    # -- releasing -----------------------------------------------------------------------------
    def released(self, cond: Condition) -> int | None:
        cell = self.cells[cond]
        if cell.withheld:
            return None
        from ..disclosure import round_count

        return round_count(cell.value, self.base)

    def is_withheld(self, cond: Condition) -> bool:
        return self.cells[cond].withheld

    def reason(self, cond: Condition) -> str:
        return self.cells[cond].reason

    def report(self) -> dict:
        kinds = {"primary": 0, "zero": 0, "secondary": 0}
        for cell in self.cells.values():
            if cell.withheld:
                kinds[cell.reason.split(":")[0]] = kinds.get(cell.reason.split(":")[0], 0) + 1
        return {"counts_released": sum(not c.withheld for c in self.cells.values()),
                "withheld_primary": kinds["primary"], "withheld_zero": kinds["zero"],
                "withheld_secondary": kinds["secondary"]}

    # -- suppression ---------------------------------------------------------------------------
    def suppress(self) -> None:
        """Primary suppression, then secondary until no withheld count can be pinned below k.

        A withheld count is at risk when the released counts leave it an interval that reaches below
        k (it could be a small count) and is narrower than k: then more cells are withheld around it.
        Every primary count reaches below k; a count withheld only as cover is usually pinned far
        above k, which discloses nothing about a small cell, and then needs no cover of its own.
        Withholding more only widens intervals, so the passes end; the last one finds nothing at risk.
        """
        k = self.k
        for cond in sorted(self.cells, key=lambda c: (len(c), canonical(c))):  # margins before the cells inside
            cell = self.cells[cond]
            count = round(cell.value)
            if 0 < count < k:
                cell.withheld, cell.reason = True, f"primary: fewer than {k}"
            elif count == 0 and len(cond) >= 2 and not self._inside_released_zero(cond):
                # a zero says something about everyone in its rows and columns (ACRO: disclosive), unless
                # it lies inside a margin released as zero, which says it already
                cell.withheld, cell.reason = True, "zero: would show that nobody in a row or column has that value"
        lp = _JunctionLP(self.dims, self.cells, self.base)

        def released() -> set[Condition]:
            return {c for c, cell in self.cells.items() if not cell.withheld}

        at_risk = True
        while at_risk:
            at_risk = False
            for cond in sorted((c for c, cell in self.cells.items() if cell.withheld), key=canonical):
                lo, hi, binding = lp.interval(cond, released())
                self.intervals[cond] = (lo, hi)
                while lo < k - 1e-9 and hi - lo < k - 1e-6:
                    at_risk = True
                    self._protect(cond, lp, released, binding)
                    lo, hi, binding = lp.interval(cond, released())
                    self.intervals[cond] = (lo, hi)

    def _protect(self, cond: Condition, lp: _JunctionLP, released, binding: set[Condition]) -> None:
        """Withhold more cells around ``cond``: the cheapest hypercube that protects it at once, else
        the cheapest released count among those that pin its interval (the programs' binding rows).

        In a table whose margins stay released, a withheld cell can only move together with other
        withheld cells of its rows and columns: the corners of a rectangle (a hypercube in more
        dimensions) over partner levels, tried cheapest first (the smallest total of counts newly
        withheld). A count shared with another table (the same patients counted by another
        analysis) pins it too; the binding constraints of the two programs name such counts.
        """
        for corners in self._hypercubes(cond)[:24]:
            fresh = [c for c in corners if not self.cells[c].withheld]
            for c in fresh:
                self.cells[c].withheld = True
            lo, hi, _ = lp.interval(cond, released())
            if hi - lo >= self.k - 1e-6 or lo >= self.k - 1e-9:
                for c in fresh:
                    self.cells[c].reason = "secondary: a withheld count could be recomputed from the others"
                return
            for c in fresh:
                self.cells[c].withheld = False
        candidates = [c for c in binding if c and not self.cells[c].withheld]
        choice = min(candidates, key=lambda c: (self.cells[c].value == 0, self.cells[c].value, canonical(c))) \
            if candidates \
            else self._partner(cond)
        if choice is None:
            raise RuntimeError(f"no secondary suppression protects {cond}")
        self.cells[choice].withheld = True
        self.cells[choice].reason = "secondary: a withheld count could be recomputed from the others"

    def _hypercubes(self, cond: Condition) -> list[list[Condition]]:
        """Sets of cells that, with ``cond``, form the corners of a hypercube over partner levels."""
        if not cond:
            return []
        dims = [d for d, _ in cond]
        own = dict(cond)
        alternatives: dict[str, list[frozenset]] = {}
        for other in self.cells:
            if [d for d, _ in other] != dims or other == cond:
                continue
            od = dict(other)
            differing = [d for d in dims if od[d] != own[d]]
            if len(differing) == 1:
                alternatives.setdefault(differing[0], []).append(od[differing[0]])
        if set(alternatives) != set(dims):
            return []

        def value_of(d: str, levels: frozenset) -> float:
            return self.cells[tuple((x, levels if x == d else own[x]) for x in dims)].value

        for d in dims:  # the four most promising partner levels per dimension: small positive counts first
            alternatives[d] = sorted(set(alternatives[d]), key=lambda lv: (value_of(d, lv) == 0, value_of(d, lv),
                                                                          tuple(sorted(lv))))[:4]
        cubes = []
        for combo in itertools.product(*[alternatives[d] for d in dims]):
            corners = []
            for mask in itertools.product([False, True], repeat=len(dims)):
                if not any(mask):
                    continue
                corner = tuple((d, combo[i] if mask[i] else own[d]) for i, d in enumerate(dims))
                if corner not in self.cells:
                    break
                corners.append(corner)
            else:
                cost = sum(self.cells[c].value for c in corners if not self.cells[c].withheld)
                cubes.append((cost, corners))
        return [corners for _, corners in sorted(cubes, key=lambda cc: (cc[0], len(cc[1]),
                                                                        [canonical(c) for c in cc[1]]))]

    def _inside_released_zero(self, cond: Condition) -> bool:
        """Is one of the margins just above ``cond`` a released zero (so ``cond`` is zero in plain sight)?"""
        for d, _ in cond:
            parent = self.cells.get(tuple(c for c in cond if c[0] != d))
            if parent is not None and round(parent.value) == 0 and not parent.withheld:
                return True
        return False

    def _partner(self, cond: Condition) -> Condition | None:
        """The released cell to withhold next: in a table with ``cond``, on its row or column first,
        the smallest positive count first; the grand total last."""
        mine = self.cells[cond].tables
        dims = dict(cond)

        def distance(other: Condition) -> int:
            od = dict(other)
            return sum(dims.get(d) != od.get(d) for d in set(dims) | set(od))

        candidates = [c for c, cell in self.cells.items() if not cell.withheld and cell.tables & mine and c]
        if not candidates:  # the cohort size (no condition) is never withheld: the linkage summary gives it
            candidates = [c for c, cell in self.cells.items() if not cell.withheld and c]
        if not candidates:
            return None
        return min(candidates, key=lambda c: (len(c) == 0, distance(c) > 1, self.cells[c].value == 0,
                                              self.cells[c].value, distance(c), canonical(c)))


class _JunctionLP:
    """The released linear system over a junction tree of the dimensions, solved with HiGHS.

    Variables: one non-negative count per joint level of each clique of a chordal completion of
    the graph in which two dimensions are adjacent when some cell conditions on both. Rows: each
    released cell equals its count (summed in a clique that contains its dimensions), and cliques
    adjacent in the junction tree agree on their separator's margin.
    """

    def __init__(self, dims: Mapping[str, tuple[str, ...]], cells: Mapping[Condition, _Cell], base: int = 1):
        self.dims = dict(dims)
        self.cells = cells
        self.base = base
        used = sorted({d for cond in cells for d, _ in cond})
        edges = {d: set() for d in used}
        for cond in cells:
            ds = [d for d, _ in cond]
            for a, b in itertools.combinations(ds, 2):
                edges[a].add(b)
                edges[b].add(a)
        self.cliques = _chordal_cliques(edges) or [()]
        self.offsets, total = [], 0
        for clique in self.cliques:
            self.offsets.append(total)
            total += int(np.prod([len(self.dims[d]) for d in clique])) if clique else 1
        self.n_vars = total
        self.home = {cond: self._home(cond) for cond in cells}
        self.consistency = self._consistency_rows()

    def _home(self, cond: Condition) -> int:
        ds = {d for d, _ in cond}
        return next(i for i, clique in enumerate(self.cliques) if ds <= set(clique))

    def _indices(self, clique_index: int, cond: Condition) -> np.ndarray:
        """Variables of one clique whose joint levels satisfy ``cond``."""
        clique = self.cliques[clique_index]
        if not clique:
            return np.array([self.offsets[clique_index]])
        shape = [len(self.dims[d]) for d in clique]
        mask = np.ones(shape, bool)
        wanted = dict(cond)
        for axis, d in enumerate(clique):
            if d in wanted:
                keep = np.array([lv in wanted[d] for lv in self.dims[d]])
                mask &= keep.reshape([-1 if a == axis else 1 for a in range(len(clique))])
        return self.offsets[clique_index] + np.flatnonzero(mask.ravel())

    def _consistency_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rows "margin over the separator in clique a minus the same in clique b = 0" along a spanning tree."""
        rows = []
        n = len(self.cliques)
        if n < 2:
            return rows
        # maximum spanning tree by separator size (Prim): a junction tree for chordal cliques
        in_tree, pairs = {0}, []
        while len(in_tree) < n:
            best = max(((a, b) for a in sorted(in_tree) for b in range(n) if b not in in_tree),
                       key=lambda ab: len(set(self.cliques[ab[0]]) & set(self.cliques[ab[1]])))
            pairs.append(best)
            in_tree.add(best[1])
        for a, b in pairs:
            sep = sorted(set(self.cliques[a]) & set(self.cliques[b]))
            for levels in itertools.product(*[self.dims[d] for d in sep]):
                cond = tuple((d, frozenset([lv])) for d, lv in zip(sep, levels))
                ia, ib = self._indices(a, cond), self._indices(b, cond)
                rows.append((np.concatenate([ia, ib]), np.concatenate([np.ones(len(ia)), -np.ones(len(ib))])))
        return rows

    def interval(self, target: Condition, released: set[Condition]) -> tuple[float, float, set[Condition]]:
        """The smallest and largest value of ``target`` given the released counts, and the released
        counts whose constraints bind either optimum (non-zero dual values)."""
        import highspy

        with _quiet():
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        inf = highspy.kHighsInf
        h.addVars(self.n_vars, np.zeros(self.n_vars), np.full(self.n_vars, inf))
        rows = [(idx, val, 0.0, 0.0) for idx, val in self.consistency]
        order = sorted(released, key=canonical)  # the rows in one order: HiGHS's optimum and duals follow it
        for cond in order:  # what the researcher knows of a released count: the range its rounding leaves
            idx = self._indices(self.home[cond], cond)
            lo, hi = rounding_range(self.cells[cond].value, self.base)
            rows.append((idx, np.ones(len(idx)), lo, hi))
        if rows:
            starts = np.cumsum([0] + [len(r[0]) for r in rows[:-1]])
            index = np.concatenate([r[0] for r in rows]).astype(np.int32)
            value = np.concatenate([r[1] for r in rows]).astype(float)
            lower = np.array([r[2] for r in rows], float)
            upper = np.array([r[3] for r in rows], float)
            h.addRows(len(rows), lower, upper, len(index), starts.astype(np.int32), index, value)
        idx = self._indices(self.home[target], target)
        cost = np.zeros(self.n_vars)
        cost[idx] = 1.0
        h.changeColsCost(self.n_vars, np.arange(self.n_vars, dtype=np.int32), cost)
        out, binding = [], set()
        first = len(self.consistency)
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            h.changeObjectiveSense(sense)
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kUnbounded:
                out.append(float("inf"))
                continue
            if status != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError(f"the released counts are inconsistent ({status})")
            out.append(h.getInfo().objective_function_value)
            duals = np.asarray(h.getSolution().row_dual)[first:]
            binding.update(order[i] for i in np.flatnonzero(np.abs(duals) > 1e-9))
        return out[0], out[1], binding


def rounding_range(value: float, base: int) -> tuple[float, float]:
    """The counts that round to the same released value as ``value`` (half up, lancelot.disclosure)."""
    from ..disclosure import round_count

    r = round_count(value, base)
    return float(r - base // 2), float(r + (base - 1) // 2) if base > 1 else float(r)


def _chordal_cliques(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Maximal cliques of a chordal completion (min-fill elimination); isolated dimensions are cliques too."""
    graph = {d: set(n) for d, n in edges.items()}
    cliques: list[set[str]] = []
    while graph:
        def fill(d: str) -> int:
            nb = list(graph[d])
            return sum(1 for a, b in itertools.combinations(nb, 2) if b not in graph[a])

        d = min(sorted(graph), key=lambda x: (fill(x), len(graph[x])))
        clique = {d} | graph[d]
        for a, b in itertools.combinations(graph[d], 2):
            graph[a].add(b)
            graph[b].add(a)
        if not any(clique <= c for c in cliques):
            cliques.append(clique)
        for nb in graph[d]:
            graph[nb].discard(d)
        del graph[d]
    return [tuple(sorted(c)) for c in cliques]


@contextlib.contextmanager
def _quiet():
    """HiGHS prints a banner when created: keep it out of the coordinator's log."""
    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)

"""One release's shared ground: the cohort sums it reads, the job's dimensions and its one ledger.

Every family of analyses (:mod:`.counts`, :mod:`.numeric`, :mod:`.survival`, :mod:`.table_one`) registers
its counts through a :class:`Job`, so the suppression is joint over the whole job: categorical variables'
levels (fewer than k linked patients merged into ``<other>``), numeric variables' histogram atoms or
present/missing, survival statuses, and the cohort count of a combination of levels read from
:class:`CohortSums`. :mod:`.stats` runs the analyses on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..runtime.errors import InputError
from .columns import CONST, MISSING, histogram_edges
from .ledger import Condition, Ledger
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
        if c1 == CONST and c2 == CONST:
            return self.n  # the cohort size (counts on ElGamal do not compute it: C knows it from the link)
        if (s1, s2) in self.crosses:
            return self.crosses[(s1, s2)][(c1, c2)]
        return self.crosses[(s2, s1)][(c2, c1)]

    @property
    def n(self) -> float:
        return next(iter(self.totals.values()))[CONST]

    def categories(self, v: Var) -> list[str]:
        return self.meta[v.station]["categories"][v.column]


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
        self.dominated: set[Var] = set()   # numeric variables whose means some cell could give away (dominance)
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

    def missing_cell(self, v: Var, value: float, table: str) -> Condition | None:
        """Register the count of v's missing values; None where v's dimension has no missing level (a categorical
        variable whose linked cohort has no missing value: the count is 0 and already known from its levels)."""
        dim = self.numeric_dim(v)
        if MISSING not in self.ledger.dims[dim]:
            return None
        return self.ledger.add(value, {dim: MISSING}, table)

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

    def reasons(self, named: list[tuple[dict, object]]) -> list[dict]:
        """Why each withheld count of an analysis is withheld."""
        return [{"cell": where, "reason": self.ledger.reason(c)} for where, c in named if self.ledger.is_withheld(c)]


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


# what every analysis returns: its entry of the result, written once the job's suppression is done
Render = Callable[[], dict]

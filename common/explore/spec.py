"""The exploration spec: which analyses, on which variables at which stations.

Example (docs/spec.md)::

    {"linkage": {...the linkage spec...},
     "analyses": [
       {"type": "crosstab", "variables": [{"station": "registry", "column": "stage"},
                                          {"station": "gp_1", "column": "copd"}]},
       {"type": "summary", "variable": {"station": "gp_1", "column": "bmi"},
        "by": {"station": "registry", "column": "surgery"}},
       {"type": "kaplan_meier", "time": {"station": "registry", "column": "survival_days"},
        "event": {"station": "registry", "column": "vital_status"}, "by": {"station": "gp_1", "column": "copd"}},
       {"type": "table_one", "by": {"station": "registry", "column": "immunotherapy"},
        "variables": [{"station": "registry", "column": "age_at_diagnosis"},
                      {"station": "gp_1", "column": "bmi", "summary": "median", "range": [10, 60]},
                      {"station": "gp_1", "column": "smoking", "kind": "categorical"}]}]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..runtime.errors import InputError

ANALYSIS_TYPES = ("count", "crosstab", "summary", "histogram", "correlation", "missingness", "kaplan_meier",
                  "table_one")
TABLE_ONE_KINDS = ("numeric", "categorical")
TABLE_ONE_SUMMARIES = ("mean", "median")
TABLE_ONE_QUANTILES = (0.25, 0.5, 0.75)   # median [IQR]


@dataclass(frozen=True)
class Var:
    station: str
    column: str

    def key(self) -> str:
        return f"{self.station}.{self.column}"


@dataclass(frozen=True)
class Analysis:
    index: int
    type: str
    variables: tuple[Var, ...] = ()     # count/crosstab/correlation/missingness; summary/histogram: one
    by: Var | None = None               # summary / kaplan_meier grouping
    time: Var | None = None             # kaplan_meier
    event: Var | None = None            # kaplan_meier
    edges: tuple[float, ...] = ()       # histogram bin edges; summary: optional quantile grid range
    quantiles: tuple[float, ...] = ()
    times: tuple[float, ...] = ()       # kaplan_meier: times at which the curve is released
    options: dict[str, Any] = field(default_factory=dict)
    rows: tuple[dict, ...] = ()         # table_one: per variable {"kind", "summary", "range"} as given
    part: int | None = None             # a row of a table_one (see parts()): its own station columns

    @property
    def name(self) -> str:
        return self.options.get("name") or f"{self.index + 1}_{self.type}"

    @property
    def tag(self) -> str:
        """The prefix of this analysis' own station columns (a table_one row has one of its own)."""
        return f"a{self.index}" if self.part is None else f"a{self.index}p{self.part}"

    def part_tag(self, j: int) -> str:
        return f"a{self.index}p{j}"

    def parts(self, kind_of: Callable[[int, Var], str]) -> list[Analysis]:
        """A table_one's rows as the analyses that count them: per variable a crosstab with the stratifier
        (categorical) or a summary by the stratifier (numeric; with per-group quartiles for a median).

        ``kind_of(j, var)``: the kind of the j-th variable, as its station decided it (explicit ``kind``, a
        ``summary``, else the column's type: see lancelot.explore.columns.table_one_kind).
        """
        out = []
        for j, (v, row) in enumerate(zip(self.variables, self.rows)):
            common = {"index": self.index, "part": j, "options": {"name": self.name}}
            if kind_of(j, v) == "categorical":
                out.append(Analysis(type="crosstab", variables=(v, self.by), **common))
            elif row.get("summary") == "median":
                out.append(Analysis(type="summary", variables=(v,), by=self.by, quantiles=TABLE_ONE_QUANTILES,
                                    edges=tuple(float(x) for x in row["range"]),
                                    **{**common, "options": {"name": self.name, "group_quantiles": True}}))
            else:
                out.append(Analysis(type="summary", variables=(v,), by=self.by, **common))
        return out

    def all_vars(self) -> list[Var]:
        out = list(self.variables)
        for v in (self.by, self.time, self.event):
            if v is not None:
                out.append(v)
        return out


@dataclass(frozen=True)
class ExploreSpec:
    analyses: tuple[Analysis, ...]
    linkage: dict | None
    max_categories: int | None = None   # the researcher may lower the node policy's ceiling, never raise it

    def stations(self) -> list[str]:
        seen: list[str] = []
        for a in self.analyses:
            for v in a.all_vars():
                if v.station not in seen:
                    seen.append(v.station)
        return seen


def _var(raw: Any, where: str) -> Var:
    if not isinstance(raw, dict) or not isinstance(raw.get("station"), str) or not isinstance(raw.get("column"), str):
        raise InputError(f"{where}: a variable is {{\"station\": NAME, \"column\": COLUMN}}")
    return Var(raw["station"], raw["column"])


def _floats(raw: Any, where: str) -> tuple[float, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
        raise InputError(f"{where} must be a list of numbers")
    return tuple(float(x) for x in raw)


def _table_one(a: dict, where: str) -> dict[str, Any]:
    """A table_one's stratifier and rows: {"by": VAR, "variables": [{station, column, kind?, summary?, range?}]}."""
    if a.get("by") is None:
        raise InputError(f"{where}: a table_one needs a stratifier 'by' {{\"station\": NAME, \"column\": COLUMN}}")
    by = _var(a["by"], f"{where} by")
    items = a.get("variables")
    if not isinstance(items, list) or not items:
        raise InputError(f"{where}: a table_one needs a non-empty 'variables' list (its rows)")
    variables, rows = [], []
    for raw in items:
        v = _var(raw, where)
        extra = set(raw) - {"station", "column", "kind", "summary", "range"}
        if extra:
            raise InputError(f"{where}: unknown keys {sorted(extra)} in a table_one variable (allowed: station, column, "
                             "kind, summary, range)", station=v.station, column=v.column)
        kind, summ = raw.get("kind"), raw.get("summary")
        if kind is not None and kind not in TABLE_ONE_KINDS:
            raise InputError(f"{where}: 'kind' must be one of {list(TABLE_ONE_KINDS)}", station=v.station,
                             column=v.column)
        if summ is not None and summ not in TABLE_ONE_SUMMARIES:
            raise InputError(f"{where}: 'summary' must be one of {list(TABLE_ONE_SUMMARIES)}", station=v.station,
                             column=v.column)
        if summ is not None and kind == "categorical":
            raise InputError(f"{where}: a categorical variable has no '{summ}' (n (%) per level)", station=v.station,
                             column=v.column)
        rng = _floats(raw.get("range"), f"{where} 'range'")
        if summ == "median" and (len(rng) != 2 or not rng[0] < rng[1]):
            raise InputError(f"{where}: a median needs a 'range' [low, high] for the private histogram it is read "
                             "from", station=v.station, column=v.column)
        if rng and summ != "median":
            raise InputError(f"{where}: 'range' is only for \"summary\": \"median\"", station=v.station,
                             column=v.column)
        if v == by:
            raise InputError(f"{where}: the stratifier cannot also be a row", station=v.station, column=v.column)
        if v in variables:
            raise InputError(f"{where}: a variable listed twice", station=v.station, column=v.column)
        variables.append(v)
        rows.append({key: raw[key] for key in ("kind", "summary", "range") if key in raw})
    return {"by": by, "variables": tuple(variables), "rows": tuple(rows)}


def parse_explore_spec(raw: Any, known_stations: list[str]) -> ExploreSpec:
    if not isinstance(raw, dict):
        raise InputError("the exploration spec must be a JSON object")
    items = raw.get("analyses")
    if not isinstance(items, list) or not items:
        raise InputError("exploration spec: 'analyses' must be a non-empty list")
    analyses = []
    for i, a in enumerate(items):
        where = f"analysis #{i + 1}"
        if not isinstance(a, dict) or a.get("type") not in ANALYSIS_TYPES:
            raise InputError(f"{where}: 'type' must be one of {list(ANALYSIS_TYPES)}")
        t = a["type"]
        kw: dict[str, Any] = {"index": i, "type": t, "options": {k: v for k, v in a.items() if k in ("name",)}}
        if t in ("count", "summary", "histogram"):
            kw["variables"] = (_var(a.get("variable"), where),)
        elif t in ("crosstab", "correlation", "missingness"):
            vs = a.get("variables")
            if not isinstance(vs, list) or not vs:
                raise InputError(f"{where}: 'variables' must be a non-empty list")
            kw["variables"] = tuple(_var(v, where) for v in vs)
            if t == "crosstab" and not 2 <= len(vs) <= 3:
                raise InputError(f"{where}: a crosstab takes two or three variables")
            if t == "correlation" and len(vs) < 2:
                raise InputError(f"{where}: a correlation needs at least two variables")
        if t == "kaplan_meier":
            kw["time"] = _var(a.get("time"), f"{where} time")
            kw["event"] = _var(a.get("event"), f"{where} event")
            if kw["time"].station != kw["event"].station:
                raise InputError(f"{where}: time and event must be at the same station")
            kw["times"] = _floats(a.get("times"), f"{where} 'times'")
        if t == "table_one":
            kw.update(_table_one(a, where))
        if t in ("summary", "kaplan_meier") and a.get("by") is not None:
            kw["by"] = _var(a["by"], f"{where} by")
        if t == "histogram":
            kw["edges"] = _floats(a.get("edges"), f"{where} 'edges'")
            if len(kw["edges"]) < 2 or list(kw["edges"]) != sorted(set(kw["edges"])):
                raise InputError(f"{where}: 'edges' must be at least two increasing numbers")
        if t == "summary":
            kw["quantiles"] = _floats(a.get("quantiles"), f"{where} 'quantiles'")
            kw["edges"] = _floats(a.get("range"), f"{where} 'range'")
            if kw["quantiles"] and len(kw["edges"]) != 2:
                raise InputError(f"{where}: quantiles need a 'range' [low, high] for the private histogram "
                                 "they are read from")
            if any(not 0 < q < 1 for q in kw["quantiles"]):
                raise InputError(f"{where}: quantiles must lie strictly between 0 and 1")
        analysis = Analysis(**kw)
        for v in analysis.all_vars():
            if v.station not in known_stations:
                raise InputError(f"{where}: unknown station '{v.station}'; stations in this run: {known_stations}")
        analyses.append(analysis)
    max_categories = raw.get("max_categories")
    if max_categories is not None and (not isinstance(max_categories, int) or isinstance(max_categories, bool)
                                       or max_categories < 2):
        raise InputError("exploration spec: 'max_categories' must be an integer of at least 2 "
                         "(it can only lower each node's ceiling)")
    linkage = raw.get("linkage")
    spec = ExploreSpec(analyses=tuple(analyses), linkage=linkage, max_categories=max_categories)
    if len(known_stations) > 1 and linkage is None:
        raise InputError("exploration over several stations needs a 'linkage' spec")
    return spec

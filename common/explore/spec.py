"""The exploration spec: which analyses, on which variables at which stations.

Example (docs/spec.md)::

    {"linkage": {...the linkage spec...},
     "analyses": [
       {"type": "crosstab", "variables": [{"station": "registry", "column": "stage"},
                                          {"station": "gp_1", "column": "copd"}]},
       {"type": "summary", "variable": {"station": "gp_1", "column": "bmi"},
        "by": {"station": "registry", "column": "surgery"}},
       {"type": "kaplan_meier", "time": {"station": "registry", "column": "survival_days"},
        "event": {"station": "registry", "column": "vital_status"}, "by": {"station": "gp_1", "column": "copd"}}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..runtime.errors import InputError

ANALYSIS_TYPES = ("count", "crosstab", "summary", "histogram", "correlation", "missingness", "kaplan_meier")


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

    @property
    def name(self) -> str:
        return self.options.get("name") or f"{self.index + 1}_{self.type}"

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

"""Station side of exploration: the spec's variables as non-negative integer columns.

Every released statistic is a sum over the linked cohort of a product of one column at one
station and one column at another (or of one column alone). So each station turns the variables
it holds into columns: a constant, one-hot categories, numeric values split into positive and
negative parts (scaled by 2^FRAC_BITS), squares, histogram bins, Kaplan-Meier exit indicators,
and joint columns for combinations of variables that sit at this same station. Non-negative
integers keep the packed Paillier slots free of borrows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..policy import NodePolicy, check_columns
from ..runtime.columns import column_hint, not_numeric_hint, true_false_as_numbers
from ..runtime.errors import InputError
from .spec import Analysis, ExploreSpec, Var

FRAC_BITS = 32
CONST = "1"
MISSING = "<missing>"


def _bits(values: np.ndarray) -> int:
    return int(values.max()).bit_length() if len(values) else 0


@dataclass
class StationColumns:
    names: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)   # int8 0/1 indicators, or object arrays of ints >= 0
    scaled: set[str] = field(default_factory=set)             # columns scaled by 2^FRAC_BITS
    categories: dict[str, list[str]] = field(default_factory=dict)
    km_times: dict[str, list[float]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)       # table_one row tag -> numeric / categorical

    def add(self, name: str, values: np.ndarray, scaled: bool = False) -> None:
        if name in self.names:
            return
        self.names.append(name)
        self.values.append(values)
        if scaled:
            self.scaled.add(name)

    def max_bits(self) -> int:
        return max((_bits(v) for v in self.values), default=1) or 1

    def plain_bits(self) -> int:
        """Bit length of the largest unscaled value (indicators: 1), at least 1."""
        return max((_bits(v) for name, v in zip(self.names, self.values) if name not in self.scaled), default=1) or 1

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def meta(self) -> dict:
        return {"names": self.names, "scaled": sorted(self.scaled), "categories": self.categories,
                "km_times": self.km_times, "kinds": self.kinds, "max_bits": self.max_bits(),
                "plain_bits": self.plain_bits(), "indicators": self.indicators()}

    def indicators(self) -> list[str]:
        """The columns built as 0/1 indicators (by their construction, not their values): the plan may count them
        on exponential ElGamal (:mod:`.ec_product`)."""
        return [name for name, v in zip(self.names, self.values) if v.dtype == np.int8]


def _column(station: str, df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        raise InputError(f"unknown variable; the table has {list(df.columns)[:30]}{column_hint(column, df.columns)}",
                         station=station, column=column)
    return df[column]


def categories_of(station: str, series: pd.Series, max_categories: int) -> tuple[list[str], np.ndarray]:
    """Labels (sorted) and each row's label (None where missing)."""
    present = series.notna()
    if pd.api.types.is_float_dtype(series) and present.any():
        values = series[present]
        if (values != np.round(values)).any():
            raise InputError("a numeric column with fractional values cannot be used as categorical",
                             station=station, column=series.name)
    labels = series.map(lambda v: None if pd.isna(v) else (str(int(v)) if isinstance(v, (float, np.floating))
                                                           else str(v)))
    distinct = sorted({v for v in labels if v is not None}, key=lambda s: (len(s), s) if s.isdigit() else (0, s))
    if len(distinct) > max_categories:
        kind = "numeric column asked as categorical" if pd.api.types.is_numeric_dtype(series) else "too many categories"
        raise InputError(f"{kind}: {len(distinct)} distinct values, more than max_categories={max_categories}"
                         f"{not_numeric_hint(series)}", station=station, column=series.name)
    return distinct, labels.to_numpy(dtype=object)


# Without an explicit "kind", a numeric table_one variable with integer values only and at most this many
# distinct values (0/1 indicators, performance scores) is shown as categorical: n (%) per level.
TABLE_ONE_MAX_INTEGER_LEVELS = 5


def table_one_kind(station: str, series: pd.Series, row: dict) -> str:
    """A table_one row's kind: the spec's ``kind``; numeric with a ``summary``; else categorical for a column
    that is not numeric or holds at most TABLE_ONE_MAX_INTEGER_LEVELS distinct integers, numeric otherwise."""
    if row.get("kind"):
        return row["kind"]
    if row.get("summary"):
        return "numeric"
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    values = series.dropna().astype(float)
    if (values == np.round(values)).all() and values.nunique() <= TABLE_ONE_MAX_INTEGER_LEVELS:
        return "categorical"
    return "numeric"


def numeric_of(station: str, series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    series = true_false_as_numbers(series)   # True/False with missing cells
    if not pd.api.types.is_numeric_dtype(series):
        raise InputError("wrong type: a numeric variable is needed, the column is not numeric"
                         f"{not_numeric_hint(series)}", station=station, column=series.name)
    values = series.astype(float).to_numpy()
    finite = values[~np.isnan(values)]
    if len(finite) and np.abs(finite).max() >= 2.0 ** 40:
        raise InputError("values too large (|x| >= 2^40): rescale the column", station=station, column=series.name)
    return values


def _ints(values: np.ndarray, scale_bits: int) -> np.ndarray:
    """Non-negative floats (NaN -> 0) as exact Python ints at scale 2^scale_bits.

    Scaling by a power of two is exact in floating point and numpy rounds half to even as Python's
    round does, so this is int(round(v * 2^scale_bits)) for every v, without a Python loop per value.
    """
    scaled = np.round(np.where(np.isnan(values), 0.0, np.asarray(values, dtype=float)) * float(1 << scale_bits))
    out = np.empty(len(values), dtype=object)
    out[:] = [int(v) for v in scaled.tolist()]
    return out


def _indicator(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask, dtype=np.int8)


def add_numeric(cols: StationColumns, prefix: str, x: np.ndarray, weight: np.ndarray | None = None) -> None:
    """Columns prefix|n (present), prefix|+ and prefix|- (parts of x), prefix|q (x^2), optionally times a 0/1 weight."""
    present = ~np.isnan(x)
    w = np.ones(len(x), bool) if weight is None else weight.astype(bool)
    keep = present & w
    xs = np.where(keep, x, np.nan)
    cols.add(f"{prefix}|n", _indicator(keep))
    cols.add(f"{prefix}|+", _ints(np.where(xs > 0, xs, 0.0), FRAC_BITS), scaled=True)
    cols.add(f"{prefix}|-", _ints(np.where(xs < 0, -xs, 0.0), FRAC_BITS), scaled=True)
    cols.add(f"{prefix}|q", _ints(np.where(keep, xs * xs, np.nan), FRAC_BITS), scaled=True)


def build_columns(spec: ExploreSpec, station: str, df: pd.DataFrame, policy: NodePolicy) -> StationColumns:
    """All columns this station contributes to the spec's analyses (deterministic order).

    Every variable must be a column the node policy allows (never an identifier or linkage field),
    and a categorical one may have at most the policy's number of categories.
    """
    if df is None or len(df) == 0:
        raise InputError("the station's table is empty", station=station)
    check_columns(policy, station, df, [v.column for a in spec.analyses for v in a.all_vars() if v.station == station],
                  spec.linkage)
    max_categories = policy.max_categories_for(spec.max_categories)
    edges = histogram_edges(spec)
    cols = StationColumns()
    cols.add(CONST, _indicator(np.ones(len(df), bool)))
    cat_cache: dict[str, tuple[list[str], np.ndarray]] = {}

    def cat(v: Var) -> tuple[list[str], np.ndarray]:
        if v.column not in cat_cache:
            labels, rows = categories_of(station, _column(station, df, v.column), max_categories)
            cat_cache[v.column] = (labels, rows)
            cols.categories[v.column] = labels + [MISSING]
            for label in labels + [MISSING]:
                target = None if label == MISSING else label
                cols.add(f"c|{v.column}|{label}", _indicator(np.array([r == target for r in rows])))
        return cat_cache[v.column]

    def num(v: Var) -> np.ndarray:
        x = numeric_of(station, _column(station, df, v.column))
        add_numeric(cols, f"n|{v.column}", x)
        return x

    for a in spec.analyses:
        here = [v for v in a.all_vars() if v.station == station]
        if not here:
            continue
        _analysis_columns(cols, a, here, station, df, cat, num, edges)
    return cols


def histogram_edges(spec: ExploreSpec) -> dict[Var, np.ndarray]:
    """Per variable, the union of the edges of every histogram of it in the job.

    Every histogram is released as unions of the atoms between these edges, so that bins with
    shifted edges are counted over one partition and suppressed together (lancelot.explore.ledger).
    """
    out: dict[Var, set[float]] = {}
    for a in spec.analyses:
        if a.type == "histogram":
            out.setdefault(a.variables[0], set()).update(a.edges)
    return {v: np.array(sorted(e)) for v, e in out.items()}


def _analysis_columns(cols: StationColumns, a: Analysis, here: list[Var], station: str, df: pd.DataFrame,
                      cat, num, edges: dict[Var, np.ndarray]) -> None:
    tag = a.tag
    if a.type in ("count", "crosstab"):
        for v in here:
            cat(v)
        if len(here) >= 2:  # joint categories of the variables held here
            rows = [cat(v)[1] for v in here]
            keys = np.array([json.dumps([r[i] for r in rows]) for i in range(len(df))], dtype=object)
            for combo in sorted(set(keys)):
                cols.add(f"{tag}|joint|{combo}", _indicator(keys == combo))
    elif a.type == "missingness":
        for v in here:
            s = _column(station, df, v.column)
            cols.add(f"m|{v.column}", _indicator(s.isna().to_numpy()))
    elif a.type == "summary":
        (x_var,) = a.variables
        if x_var.station == station:
            x = num(x_var)
            grid = np.linspace(a.edges[0], a.edges[1], 201) if a.quantiles else None
            if a.quantiles:
                _histogram_columns(cols, f"{tag}|grid", x, grid)
            if a.by is not None and a.by.station == station:
                labels, rows = cat(a.by)
                for label in labels + [MISSING]:
                    target = None if label == MISSING else label
                    in_group = np.array([r == target for r in rows])
                    add_numeric(cols, f"{tag}|by|{label}", x, in_group)
                    if a.quantiles and a.options.get("group_quantiles"):  # a private histogram per group
                        _histogram_columns(cols, f"{tag}|ggrid|{label}", np.where(in_group, x, np.nan), grid,
                                           missing=False)
        elif a.by is not None:
            cat(a.by)
    elif a.type == "histogram":
        (v,) = a.variables
        x = numeric_of(station, _column(station, df, v.column))
        _histogram_columns(cols, f"h|{v.column}", x, edges[v])
    elif a.type == "correlation":
        xs = {v.column: num(v) for v in here}
        names = list(xs)
        for i, p in enumerate(names):
            for q in names[i + 1:]:
                both = ~np.isnan(xs[p]) & ~np.isnan(xs[q])
                add_numeric(cols, f"{tag}|pair|{p}|{q}|x", xs[p], both)
                add_numeric(cols, f"{tag}|pair|{p}|{q}|y", xs[q], both)
                prod = np.where(both, xs[p] * xs[q], np.nan)
                cols.add(f"{tag}|pair|{p}|{q}|xy+", _ints(np.where(prod > 0, prod, 0.0), FRAC_BITS), scaled=True)
                cols.add(f"{tag}|pair|{p}|{q}|xy-", _ints(np.where(prod < 0, -prod, 0.0), FRAC_BITS), scaled=True)
    elif a.type == "kaplan_meier":
        if a.by is not None and a.by.station == station:
            cat(a.by)
        if a.time.station == station:
            _km_columns(cols, a, station, df, cat)
    elif a.type == "table_one":
        if a.by.station == station:
            labels, _ = cat(a.by)
            if len(labels) < 2:
                raise InputError(f"a table_one stratifier needs at least two levels; the column has {len(labels)}",
                                 station=station, column=a.by.column)
        for j, v in enumerate(a.variables):
            if v.station == station:
                cols.kinds[a.part_tag(j)] = table_one_kind(station, _column(station, df, v.column), a.rows[j])
        for part in a.parts(lambda j, v: cols.kinds.get(a.part_tag(j), "numeric")):
            part_here = [v for v in part.all_vars() if v.station == station]
            if part_here:
                _analysis_columns(cols, part, part_here, station, df, cat, num, edges)


def _histogram_columns(cols: StationColumns, prefix: str, x: np.ndarray, edges: np.ndarray,
                       missing: bool = True) -> None:
    present = ~np.isnan(x)
    idx = np.searchsorted(edges, np.where(present, x, 0.0), side="right")  # 0: below, len(edges): above
    idx = np.where(present & (x == edges[-1]), len(edges) - 1, idx)       # the last bin is closed
    for k in range(len(edges) + 1):
        cols.add(f"{prefix}|{k}", _indicator(present & (idx == k)))
    if missing:
        cols.add(f"{prefix}|na", _indicator(~present))


def _km_columns(cols: StationColumns, a: Analysis, station: str, df: pd.DataFrame, cat) -> None:
    """One indicator per (time, event) exit: each record leaves the risk set at one time, once."""
    t = numeric_of(station, _column(station, df, a.time.column))
    event = true_false_as_numbers(_column(station, df, a.event.column))
    if not pd.api.types.is_numeric_dtype(event):
        raise InputError(f"the event indicator must be 0 (censored) or 1 (event){not_numeric_hint(event)}",
                         station=station, column=a.event.column)
    e = numeric_of(station, event)
    ok = ~np.isnan(t) & ~np.isnan(e)
    if ok.any() and not set(np.unique(e[ok])) <= {0.0, 1.0}:
        raise InputError("the event indicator must be 0 (censored) or 1 (event)", station=station,
                         column=a.event.column)
    if ok.any() and (t[ok] < 0).any():
        raise InputError("negative survival times", station=station, column=a.time.column)
    times = sorted(set(t[ok].tolist()))
    tag = a.tag
    cols.km_times[tag] = times
    index = {v: i for i, v in enumerate(times)}
    pos = np.array([index[v] if good else -1 for v, good in zip(t, ok)])
    by_rows = None
    if a.by is not None and a.by.station == station:
        labels, rows = cat(a.by)
        by_rows = [(label, np.array([r == (None if label == MISSING else label) for r in rows]))
                   for label in labels + [MISSING]]
    is_event = [e == 0, e == 1]
    for i in range(len(times)):
        at = pos == i
        for ev in (0, 1):
            hit = at & is_event[ev]
            if by_rows is None:
                cols.add(f"{tag}|km|{i}|{ev}", _indicator(hit))
            else:
                for label, in_group in by_rows:
                    cols.add(f"{tag}|km|{i}|{ev}|{label}", _indicator(hit & in_group))

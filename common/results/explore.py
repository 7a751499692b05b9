"""An exploration result: one object per released analysis, each knowing its own table, text and report
section, so no consumer dispatches on the analysis ``type`` again (only :data:`ANALYSES` reads it)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..runtime.errors import LancelotError
from .base import Result, grid_lines

WITHHELD_TEXT = "(withheld)"


def _count(value) -> str:
    return WITHHELD_TEXT if value is None else str(value)


class Analysis:
    """One released analysis (``raw`` is its JSON entry)."""

    def __init__(self, raw: dict):
        self.raw = raw
        self.name: str = raw["name"]
        self.variables: list[str] = raw["variables"]

    def frame(self):
        """The released rows as a DataFrame (None when the analysis has no table of rows)."""
        import pandas as pd

        rows = self.raw.get("table") or self.raw.get("bins") or self.raw.get("by")
        return pd.DataFrame(rows) if isinstance(rows, list) and rows and isinstance(rows[0], dict) else None

    def lines(self) -> list[str]:
        """Text lines for ``print_summary`` (after the analysis's title line)."""
        return []

    def html(self, out: Path) -> list[str]:
        """The analysis's section of the report (plots written into ``out``)."""
        from ..report import _table

        if "table" in self.raw:
            return [_table(self.raw["table"])]
        return [f"<pre>{html.escape(json.dumps(self.raw, indent=1))}</pre>"]

    def _figure(self, out: Path, draw) -> str:
        """The analysis drawn by ``draw`` (a plot of lancelot.report) into ``out`` as ``<name>.png``; its <img> tag."""
        png = out / f"{self.name}.png"
        draw(self.raw, png)
        return f"<img src='{png.name}'>"


class Count(Analysis):
    def lines(self) -> list[str]:
        out = []
        for r in self.raw.get("table", []):
            keys = [k for k in r if k != "count"]
            out.append(f"    {' x '.join(str(r[k]) for k in keys):<28} {_count(r['count'])}")
        return out


class Missingness(Analysis):
    pass


class Crosstab(Analysis):
    def lines(self) -> list[str]:
        from ..explore.tables import crosstab_grids

        out = []
        for title, columns, rows in crosstab_grids(self.raw, withheld=WITHHELD_TEXT):
            if title:
                out.append(f"    {title}")
            out += grid_lines(columns, rows)
        return out

    def html(self, out: Path) -> list[str]:
        from ..report import _crosstab_html

        return [_crosstab_html(self.raw)]


class Histogram(Analysis):
    def lines(self) -> list[str]:
        out = [f"    {b['bin']:<28} {_count(b['count'])}" for b in self.raw["bins"]]
        if "edges_dropped" in self.raw:
            out.append(f"    edges {self.raw['edges_dropped']['edges']} dropped: {self.raw['edges_dropped']['reason']}")
        return out

    def html(self, out: Path) -> list[str]:
        from ..report import _plot_histogram, _table

        return [self._figure(out, _plot_histogram) + _table(self.raw["bins"])]


class Summary(Analysis):
    def lines(self) -> list[str]:
        o = self.raw["overall"]
        out = [f"    overall: n={o.get('n')} mean={o.get('mean', float('nan')):.2f} sd={o.get('sd', float('nan')):.2f}"]
        for g in self.raw.get("by", []):
            key = [k for k in g if k not in ("n", "mean", "variance", "sd", "refused")][0]
            mean = f"{g['mean']:.2f}" if g.get("mean") is not None else ("-" if g.get("n") == 0 else WITHHELD_TEXT)
            out.append(f"    {key}={g[key]}: n={g.get('n')} mean={mean}")
        return out

    def html(self, out: Path) -> list[str]:
        from ..report import _table

        parts = [_table([{k: v for k, v in self.raw["overall"].items() if not isinstance(v, (dict, str))}])]
        return parts + ([_table(self.raw["by"])] if "by" in self.raw else [])


class Correlation(Analysis):
    def frame(self):
        import pandas as pd

        names = self.variables
        return pd.DataFrame(self.raw["pearson_r"], index=names, columns=names)

    def html(self, out: Path) -> list[str]:
        from ..report import _table

        names = self.variables
        return [_table([{"": n, **dict(zip(names, row))} for n, row in zip(names, self.raw["pearson_r"])])]


class KaplanMeier(Analysis):
    def frame(self):
        import pandas as pd

        return pd.DataFrame([{"group": g["group"], **p} for g in self.raw["groups"] for p in g["curve"]])

    def lines(self) -> list[str]:
        out = []
        for g in self.raw["groups"]:
            pts = ", ".join(f"{p['time']:g}:{p['survival']:.2f}" for p in g["curve"] if p["survival"] is not None)
            out.append(f"    group {g['group']} (n={g['n']}): S(t) {pts}")
        if "logrank" in self.raw:
            out.append(f"    log-rank p = {self.raw['logrank']['p_value']:.3g}")
        return out

    def html(self, out: Path) -> list[str]:
        from ..report import _fmt, _plot_km, _table

        parts = [self._figure(out, _plot_km)]
        parts += [f"<h3>group {html.escape(str(g['group']))}</h3>" + _table(g["curve"]) for g in self.raw["groups"]]
        if "logrank" in self.raw:
            lr = self.raw["logrank"]
            parts.append(f"<p>log-rank: {_fmt(lr['statistic'])} on {lr['degrees_of_freedom']} df, "
                         f"p = {lr['p_value']:.3g}</p>")
        return parts


class TableOne(Analysis):
    def frame(self):
        """The paper's Table 1 as a DataFrame: see :func:`lancelot.client.table_one_frame`."""
        import pandas as pd

        from ..explore.tables import table_one_grid

        columns, rows = table_one_grid(self.raw)
        frame = pd.DataFrame(rows, columns=columns)
        frame["variable"] = frame["variable"].replace("", pd.NA).ffill()
        return frame.set_index(["variable", "level"])

    def lines(self) -> list[str]:
        from ..explore.tables import table_one_grid

        return grid_lines(*table_one_grid(self.raw, withheld=WITHHELD_TEXT), labels=2)

    def html(self, out: Path) -> list[str]:
        from ..report import _table_one_html

        return [_table_one_html(self.raw)]


ANALYSES: dict[str, type[Analysis]] = {
    "count": Count, "crosstab": Crosstab, "summary": Summary, "histogram": Histogram, "correlation": Correlation,
    "missingness": Missingness, "kaplan_meier": KaplanMeier, "table_one": TableOne}


def analysis_from_json(raw: dict) -> Analysis:
    return ANALYSES.get(raw["type"], Analysis)(raw)


class Exploration(Result):
    """Every analysis of one job, suppressed jointly; ``analyses`` in the spec's order."""

    def __init__(self, raw: dict, task_id: int | None = None, seconds: float | None = None):
        super().__init__(raw, task_id, seconds)
        self.analyses: list[Analysis] = [analysis_from_json(a) for a in raw.get("analyses", [])]

    def __getitem__(self, name: str) -> Analysis:
        for a in self.analyses:
            if a.name == name:
                return a
        raise KeyError(f"no analysis {name!r}: {', '.join(a.name for a in self.analyses)}")

    def tables(self) -> dict:
        """name -> DataFrame for every analysis released as a table (counts, crosstabs, bins, by-groups, table
        one, Kaplan-Meier curves)."""
        frames = {a.name: a.frame() for a in self.analyses if not isinstance(a, Correlation)}
        return {name: f for name, f in frames.items() if f is not None}

    def table_one(self, name: str | None = None):
        """A table_one analysis (the first, or the one called ``name``) as a DataFrame."""
        ones = [a for a in self.analyses if isinstance(a, TableOne) and name in (None, a.name)]
        if not ones:
            raise LancelotError(f"no table_one analysis{f' named {name!r}' if name else ''} in this result")
        return ones[0].frame()

    def summary(self):
        """One row per analysis: its type, variables and the number of released rows in its table."""
        import pandas as pd

        rows = []
        for a in self.analyses:
            f = a.frame()
            rows.append({"analysis": a.name, "type": a.raw["type"], "variables": ", ".join(a.variables),
                         "rows": None if f is None else len(f)})
        return pd.DataFrame(rows).set_index("analysis")

    def summary_lines(self) -> list[str]:
        lines = []
        for a in self.analyses:
            lines.append(f"  {a.name} ({', '.join(a.variables)})")
            lines += a.lines()
        s = self.raw["disclosure_control"]
        withheld = sum(s.get(f"withheld_{kind}", 0) for kind in ("primary", "zero", "secondary"))
        lines.append(f"  disclosure control: minimum cell count {s['min_cell_count']}, counts rounded to "
                     f"{s.get('rounding_base', 1)}, {withheld} counts withheld; cost: {self.cost['rounds']} rounds, "
                     f"{self.cost['seconds_total']} s")
        return lines

    def report(self, folder: str | Path) -> Path:
        from ..report import write_explore_report

        return write_explore_report(self, folder)

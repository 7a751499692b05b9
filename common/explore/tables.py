"""Released exploration results laid out as the tables a paper shows (for the report, the CLI and the client).

Only released numbers go in; a withheld one is shown as ``withheld`` (default: an em dash).

* :func:`table_one_grid`: a table_one as rows of text: one row per numeric variable, one per level of a
  categorical one, columns missing, overall, each group of the stratifier, p-value and test;
* :func:`crosstab_grids`: a two-way crosstab as a grid (rows: levels of the first variable, columns:
  levels of the second, with margins), a three-way one as one grid per layer.
"""

from __future__ import annotations

WITHHELD = "\u2014"


def _num(value, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def format_p(p, withheld: str = WITHHELD) -> str:
    """A p-value as a paper prints it: 3 decimals, "<0.001" below."""
    if p is None:
        return withheld
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cell(entry: dict, kind: str, withheld: str) -> str:
    """One group's (or the overall) summary as text: "12 (30.0)", "68.8 (9.05)", "3.10 [2.04, 6.02]"."""
    if kind == "n (%)":
        if entry.get("n") is None:
            return withheld
        return f"{entry['n']} ({entry['percent']:.1f})" if entry.get("percent") is not None else str(entry["n"])
    if kind == "mean (SD)":
        if entry.get("mean") is None or entry.get("sd") is None:
            return withheld if entry.get("n") != 0 else ""
        return f"{_num(entry['mean'])} ({_num(entry['sd'])})"
    q = entry.get("quantiles") or {}
    values = [q.get(key) for key in ("0.25", "0.5", "0.75")]
    if values[1] is None:
        return withheld if entry.get("n") != 0 else ""
    low, high = (withheld if x is None else _num(x) for x in (values[0], values[2]))
    return f"{_num(values[1])} [{low}, {high}]"


def table_one_grid(analysis: dict, withheld: str = WITHHELD) -> tuple[list[str], list[list[str]]]:
    """A released table_one as (columns, rows of text), in the layout of the ``tableone`` package."""
    groups = [g["level"] for g in analysis["groups"]]
    by = analysis["by"]["column"]
    columns = ["variable", "level", "missing", "overall", *[f"{by} = {g}" for g in groups], "p-value", "test"]

    def count(value) -> str:
        return withheld if value is None else str(value)

    rows = [["n", "", "", count(analysis["overall"]["n"]), *[count(g["n"]) for g in analysis["groups"]], "", ""]]
    for r in analysis["rows"]:
        test = r.get("test") or {}
        p, name = format_p(test.get("p_value"), withheld), test.get("test", "")
        label = f"{r['variable']}, {r['statistic']}"
        if r["kind"] == "numeric":
            rows.append([label, "", count(r.get("missing")), _cell(r["overall"], r["statistic"], withheld),
                         *[_cell(g, r["statistic"], withheld) for g in r["groups"]], p, name])
            continue
        for i, level in enumerate(r["levels"]):
            rows.append([label if i == 0 else "", level["level"], count(r.get("missing")) if i == 0 else "",
                         _cell(level["overall"], "n (%)", withheld),
                         *[_cell(g, "n (%)", withheld) for g in level["groups"]],
                         p if i == 0 else "", name if i == 0 else ""])
    return columns, rows


def _columns_of(analysis: dict) -> list[str]:
    return [key.split(".", 1)[1] if "." in key else key for key in analysis["variables"]]


def crosstab_grids(analysis: dict, withheld: str = WITHHELD) -> list[tuple[str, list[str], list[list[str]]]]:
    """A released crosstab as grids: [(title, columns, rows)], one per layer of a three-way table.

    Rows are the first variable's levels, columns the second's, each with its total; the last row holds the
    column totals and the table's total.
    """
    names = _columns_of(analysis)
    rv, cv = names[0], names[1]
    layers = analysis.get("layers") or [analysis]
    out = []
    for layer in layers:
        title = f"{analysis['layer_variable']} = {layer[analysis['layer_variable']]}" if "layers" in analysis else ""
        row_levels = [r[rv] for r in layer["row_totals"]]
        col_levels = [c[cv] for c in layer["column_totals"]]
        cells = {(r[rv], r[cv]): r["count"] for r in layer["table"]}

        def text(value) -> str:
            return withheld if value is None else str(value)

        columns = [f"{rv} \\ {cv}", *col_levels, "total"]
        rows = [[lv, *[text(cells.get((lv, c))) for c in col_levels], text(t["count"])]
                for lv, t in zip(row_levels, layer["row_totals"])]
        rows.append(["total", *[text(c["count"]) for c in layer["column_totals"]], text(layer["total"])])
        out.append((title, columns, rows))
    return out

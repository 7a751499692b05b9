"""Hints for the commonest problems with a station's table, said without any of its values.

A spec that names a column the table spells with other capitals or spaces, a file read with the
wrong separator, numbers stored as text (decimal commas, a missing-value marker such as ``?``):
each error message then says what to fix. The hints name columns and the kind of problem only,
never a value or a count, so they are safe to return from a station.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _folded(name: object) -> str:
    return " ".join(str(name).split()).casefold()


def column_hint(wanted: str, columns: Iterable[object]) -> str:
    """Why ``wanted`` may be missing from a table with these columns ("" if no hint applies)."""
    columns = list(columns)
    if len(columns) == 1:
        only = str(columns[0])
        for sep, what in SEPARATORS.items():
            if sep in only:
                return (f" (the table has a single column whose name contains {what}: the station's file seems to be "
                        "separated by " + what + "; the node reads comma-separated files)")
    close = [str(c) for c in columns if str(c) != wanted and _folded(c) == _folded(wanted)]
    if close:
        return f" (did you mean {close[0]!r}? column names must match exactly, capitals and spaces included)"
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def true_false_as_numbers(series: pd.Series) -> pd.Series:
    """A column of True/False with missing cells (read as text by pandas) as 1.0/0.0/NaN; any other column as it is."""
    if series.dtype == object and series.notna().any() and series.dropna().map(lambda v: isinstance(v, bool)).all():
        return series.map(lambda v: float(v) if isinstance(v, bool) else np.nan).astype(float)
    return series


def not_numeric_hint(series: pd.Series) -> str:
    """Why a column that should be numeric was read as text ("" if it does not look numeric at all)."""
    values = series.dropna()
    if values.empty:
        return ""
    if values.map(lambda v: isinstance(v, bool)).all():
        return " (it holds True/False with missing values: recode it as 0/1)"
    text = values.astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return ""
    numbers = text.map(_is_number)
    if numbers.all():
        return ""
    if text.str.replace(",", ".", regex=False).map(_is_number).mean() > 0.5 and text.str.contains(",").any():
        return " (it looks like numbers written with decimal commas: write them with a decimal point)"
    if numbers.mean() > 0.5:
        return (" (most values are numbers, but some are text, such as a marker for missing values: only empty "
                "cells and NA are read as missing)")
    return ""

"""Station-side normalisation of quasi-identifiers into comparable components.

Each field of the spec yields components (``surname``, ``surname.phon``, ``birth_date.sorted``...)
from which match keys are built. Normalisation happens at the station, before anything is
pseudonymised, so two stations that write the same person differently produce equal components.
"""

from __future__ import annotations

import re
import unicodedata

import jellyfish
import numpy as np
import pandas as pd

from ..runtime.columns import column_hint
from ..runtime.errors import InputError
from .spec import FieldSpec, LinkageSpec

# Dutch (and a few neighbouring) surname prefixes ("tussenvoegsels"), dropped from the core name.
NAME_PREFIXES = frozenset(
    "van de der den het ten ter te t in op aan bij onder over uit voor d da di du la le les lo von zu zum vd v".split()
)
MAX_UNPARSEABLE_FRACTION = 0.05
EMPTY_ERROR = 0.95     # a linkage column with more missing values than this is refused (a wrong column?)
EMPTY_WARNING = 0.50   # ... and with more than this, linked with a warning
FOREIGN_POSTCODES = 0.5  # a Dutch postcode field where more values than this are not Dutch postcodes is refused
_POSTCODE = re.compile(r"^(\d{4})([A-Z]{2})$")
_TIME_OF_DAY = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)$"


COMPONENTS = {
    "string": ("", ".full", ".phon", ".first"),
    "name": ("", ".phon", ".first", ".f3"),          # a full given name (or a city, a suburb)
    "address": ("", ".street", ".number"),           # a street address: number and street name
    "id": ("", ".a", ".b"),                          # an id number: digits, and its two halves
    "initials": ("", ".first"),
    "date": ("", ".y", ".ym", ".yd", ".md", ".sorted"),
    "postcode": ("", ".pc4"),
    "category": ("",),
    "exact": ("",),
}


def _ascii_upper(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def _name_parts(value: object, prefixes: frozenset[str] = NAME_PREFIXES) -> tuple[str, str] | None:
    """(core, full) of a surname: 'Berg, van der' and 'van der Berg' both give ('BERG', 'VANDERBERG')."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if "," in text:  # "Berg, van der" -> "van der Berg"
        head, _, tail = text.partition(",")
        text = f"{tail} {head}"
    tokens = [re.sub(r"[^A-Z]", "", t) for t in re.split(r"[\s\-']+", _ascii_upper(text))]
    tokens = [t for t in tokens if t]
    if not tokens:
        return None
    core = [t for t in tokens if t.lower() not in prefixes] or tokens[-1:]
    return "".join(core), "".join(tokens)


def as_text(value: object) -> object:
    """A cell as the text it was written as: a CSV reader makes 2600 or 123456789 a number (and a
    float, 2600.0, where the column has empty cells); identifiers are text."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


def by_unique(series: pd.Series, columns: list[str], func) -> dict[str, np.ndarray]:
    """Apply ``func`` (one value -> one tuple of components, or None) once per distinct value.

    Identifiers repeat a lot (surnames, dates, postcodes), so this is what makes normalising a
    million records take seconds rather than minutes.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.empty((len(uniques) + 1, len(columns)), dtype=object)   # last row: missing
    table[:] = None
    for i, value in enumerate(uniques):
        parts = func(as_text(value))
        if parts is not None:
            table[i] = parts
    rows = np.where(codes < 0, len(uniques), codes)
    return {c: table[rows, k] for k, c in enumerate(columns)}


def _string_components(series: pd.Series, name: str, prefixes: frozenset[str] = NAME_PREFIXES) -> dict[str, list]:
    def parts(value):
        got = _name_parts(value, prefixes)
        if got is None:
            return None
        core, full = got
        return core, full, jellyfish.nysiis(core) or core, core[0]

    return by_unique(series, [name, f"{name}.full", f"{name}.phon", f"{name}.first"], parts)


def _letters(value: object) -> str:
    return re.sub(r"[^A-Z]", "", _ascii_upper(value)) if isinstance(value, str) else ""


def _name_components(series: pd.Series, name: str) -> dict[str, list]:
    """A full name (given name, city): letters only; a phonetic code, the first letter, the first three."""
    def parts(value):
        text = _letters(value)
        return (text, jellyfish.nysiis(text) or text, text[0], text[:3]) if text else None

    return by_unique(series, [name, f"{name}.phon", f"{name}.first", f"{name}.f3"], parts)


# common street-type words and their abbreviations, dropped from the street name
STREET_TYPES = frozenset(
    "STREET ST ROAD RD AVENUE AVE AV PLACE PL CRESCENT CRES CR DRIVE DR COURT CT LANE LN WAY TERRACE TCE "
    "PARADE PDE CLOSE CL BOULEVARD BLVD HIGHWAY HWY STRAAT WEG LAAN PLEIN SINGEL GRACHT KADE".split()
)


def _address_components(series: pd.Series, name: str) -> dict[str, list]:
    """A street address: the house number and the street name without its type ('St', 'Road')."""
    def parts(value):
        if not isinstance(value, str):
            return None
        tokens = re.findall(r"[A-Z]+|\d+", _ascii_upper(value))
        numbers = [t for t in tokens if t.isdigit()]
        words = [t for t in tokens if not t.isdigit() and t not in STREET_TYPES and len(t) > 1]
        if not words and not numbers:
            return None
        street = "".join(words) or None
        number = numbers[0] if numbers else None
        full = f"{number or ''}|{street or ''}"
        return full, street, number

    return by_unique(series, [name, f"{name}.street", f"{name}.number"], parts)


def _id_components(series: pd.Series, name: str) -> dict[str, list]:
    """An id number: its digits (letters kept, separators dropped), and each half (one typo leaves one)."""
    def parts(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        text = re.sub(r"[^0-9A-Z]", "", _ascii_upper(str(value)))
        if len(text) < 2:
            return None
        half = len(text) // 2
        return text, text[:half], text[half:]

    return by_unique(series, [name, f"{name}.a", f"{name}.b"], parts)


def _initials_components(series: pd.Series, name: str) -> dict[str, list]:
    def parts(value):
        letters = re.sub(r"[^A-Z]", "", _ascii_upper(value)) if isinstance(value, str) else ""
        return (letters, letters[0]) if letters else None

    return by_unique(series, [name, f"{name}.first"], parts)


def _date_components(series: pd.Series, name: str, fmt: str | None, station: str, column: str) -> dict[str, list]:
    if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
        series = pd.Series([as_text(v) for v in series], index=series.index, dtype=object)
    present = series.notna() & (series.astype(str).str.strip() != "")
    if fmt is None or fmt == "any" or "%H" not in fmt:   # exports often add a time of day: the date is before it
        series = series.where(~present, series.astype(str).str.replace(_TIME_OF_DAY, "", regex=True))
    if fmt == "any":  # free-form: ISO, day-first with any separator, or YYYYMMDD, per value
        parsed = _any_dates(series.where(present))
    else:
        parsed = pd.to_datetime(series.where(present), format=fmt or "%Y-%m-%d", errors="coerce")
    bad = int((present & parsed.isna()).sum())
    if present.sum() and bad / present.sum() > MAX_UNPARSEABLE_FRACTION:
        # a share in whole percents, not counts: an error reaches the researcher, who may shape the format
        raise InputError(f"{100 * bad / present.sum():.0f}% of the dates do not parse with format "
                         f"'{fmt or '%Y-%m-%d'}' (set 'formats' for this station in the spec; list markers of a missing "
                         "date, such as 'unknown' or '00-00-0000', in the field's 'missing')",
                         station=station, column=column)
    ok = parsed.notna().to_numpy()
    number = (parsed.dt.year.fillna(0).to_numpy(np.int64) * 10000 + parsed.dt.month.fillna(0).to_numpy(np.int64) * 100
              + parsed.dt.day.fillna(0).to_numpy(np.int64))
    codes, uniques = pd.factorize(np.where(ok, number, -1))
    text = np.array([f"{u:08d}" if u >= 0 else None for u in uniques], dtype=object)
    return date_parts(pd.Series(text[codes], dtype=object), name)


def _any_dates(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    for pattern, fmt in ((r"^\d{4}-\d{1,2}-\d{1,2}$", "%Y-%m-%d"), (r"^\d{8}$", "%Y%m%d"),
                         (r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{4}$", None), (r"^\d{4}/\d{1,2}/\d{1,2}$", "%Y/%m/%d")):
        hit = text.str.match(pattern).fillna(False).to_numpy(bool) & out.isna().to_numpy()
        if hit.any():
            values = text[hit]
            if fmt is None:  # day first, any of - / . as separator
                values = values.str.replace(r"[/.]", "-", regex=True)
                fmt = "%d-%m-%Y"
            out[hit] = pd.to_datetime(values, format=fmt, errors="coerce")
    return out


def date_parts(ymd: pd.Series, name: str) -> dict[str, np.ndarray]:
    """Components of dates written YYYYMMDD (None where missing)."""
    def parts(text):
        yy, mm, dd = text[:4], text[4:6], text[6:]
        lo, hi = sorted((mm, dd))
        return text, yy, yy + mm, yy + dd, mm + dd, yy + lo + hi

    return by_unique(ymd, [f"{name}{suffix}" for suffix in COMPONENTS["date"]], parts)


def _postcode_components(series: pd.Series, name: str, dutch: bool = True) -> dict[str, list]:
    def parts(value):
        text = re.sub(r"\s+", "", value.upper()) if isinstance(value, str) else ""
        match = _POSTCODE.match(text)
        if match:
            return text, match.group(1)
        if dutch and re.fullmatch(r"\d{4}", text):
            return None, text
        text = re.sub(r"[^0-9A-Z]", "", text)
        if len(text) < 3 or dutch:
            return None
        # another country's code: the area is all but the last character of a number (4-digit codes:
        # the first 3), the part before the last three characters otherwise (UK outward code)
        return text, (text[:-1] if text.isdigit() else text[:-3] or text[:2])

    return by_unique(series, [name, f"{name}.pc4"], parts)


def _category_components(series: pd.Series, name: str, mapping: dict[str, str]) -> dict[str, list]:
    lower = {k.strip().lower(): v for k, v in mapping.items()}

    def parts(value):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            return None
        text = str(value).strip()
        code = lower.get(text.lower(), text)
        return None if code is None else (_ascii_upper(code),)   # a code mapped to null means missing

    return by_unique(series, [name], parts)


def _exact_components(series: pd.Series, name: str) -> dict[str, list]:
    def parts(value):
        text = str(value).strip()
        return (text,) if text else None

    return by_unique(series, [name], parts)


def field_components(f: FieldSpec, station: str, series: pd.Series) -> dict[str, list]:
    if f.missing:   # the spec's markers for missing values, compared without case or surrounding spaces
        markers = {m.strip().lower() for m in f.missing}
        series = series.where(~series.map(lambda v: v is not None and str(v).strip().lower() in markers))
    if f.kind == "string":
        extra = f.options.get("prefixes", {})
        station_extra = extra.get(station, []) if isinstance(extra, dict) else extra
        return _string_components(series, f.name, NAME_PREFIXES | {str(p).lower() for p in station_extra})
    if f.kind == "initials":
        return _initials_components(series, f.name)
    if f.kind == "date":
        return _date_components(series, f.name, f.formats.get(station), station, f.columns[station])
    if f.kind == "postcode":
        return _postcode_components(series, f.name, dutch=f.options.get("country", "NL") == "NL")
    if f.kind == "name":
        return _name_components(series, f.name)
    if f.kind == "address":
        return _address_components(series, f.name)
    if f.kind == "id":
        return _id_components(series, f.name)
    if f.kind == "category":
        return _category_components(series, f.name, f.mapping.get(station, {}))
    return _exact_components(series, f.name)


def check_station_data(spec: LinkageSpec, station: str, df: pd.DataFrame) -> None:
    """Everything that can be wrong with a station's table, reported before any crypto work."""
    if station not in spec.stations:
        raise InputError("this station is not named in the linkage spec", station=station)
    if df is None or len(df) == 0:
        raise InputError("the station's table is empty", station=station)
    needed = [spec.stations[station]] + [f.columns[station] for f in spec.fields]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        hint = next((h for h in (column_hint(c, df.columns) for c in missing) if h), "")
        raise InputError(f"missing column(s) {missing}; the table has {list(df.columns)[:30]}{hint}", station=station)
    if len(df) < spec.min_records:
        raise InputError(f"fewer records than the minimum of {spec.min_records}", station=station)
    ids = df[spec.stations[station]]
    if ids.isna().any():
        raise InputError("some records have no record id", station=station,
                         column=spec.stations[station])
    dup = int(ids.astype(str).duplicated().sum())
    if dup:
        raise InputError("duplicate record ids (each record needs its own)", station=station,
                         column=spec.stations[station])


def empty_columns(spec: LinkageSpec, station: str, df: pd.DataFrame, components: pd.DataFrame) -> list[str]:
    """Refuse a linkage column that is (almost) empty, or a Dutch postcode field whose values mostly are not;
    return a warning for each mostly empty column. ``components``: :func:`normalise` of ``df``.

    The share is rounded to whole percents: an aggregate that names the station and column.
    """
    warnings = []
    for f in spec.fields:
        column = f.columns[station]
        values = df[column]
        empty = float((values.isna() | (values.astype(str).str.strip() == "")).mean())
        if empty > EMPTY_ERROR:
            raise InputError(f"{empty:.0%} of the values of linkage field '{f.name}' are missing: is this the right "
                             "column? (fix the spec's 'columns', or leave the field out)", station=station, column=column)
        if f.kind == "postcode" and f.options.get("country", "NL") == "NL":
            present = (values.notna() & (values.astype(str).str.strip() != "")).to_numpy()
            unread = present & pd.isna(components[f"{f.name}.pc4"].to_numpy())
            if present.any() and unread.sum() > FOREIGN_POSTCODES * present.sum():
                raise InputError(f"most values of linkage field '{f.name}' are not Dutch postcodes (1234AB): for another "
                                 "country's postcodes set \"options\": {\"country\": CODE} for this field (AU, UK, ...)",
                                 station=station, column=column)
        if empty > EMPTY_WARNING:
            warnings.append(f"station '{station}', column '{column}' (field '{f.name}'): {empty:.0%} of the values are "
                            "missing; match keys with this field rarely agree, so links rest on the other fields")
    return warnings


def duplicate_records(station: str, components: pd.DataFrame) -> list[str]:
    """A warning when records of this station agree on every normalised linkage component (with at least half of
    them present): duplicates of one patient under two record ids, of which at most one can be linked, and not
    always the same one. The share is in whole percents of the station's table ("below 1%" when smaller)."""
    present = components.notna().sum(axis=1) >= max(1, components.shape[1] // 2)
    same = components[present].duplicated(keep=False)   # missing components compare equal, as in the keys
    if not same.any():
        return []
    share = same.sum() / len(components)
    amount = "below 1%" if share < 0.01 else f"{share:.0%}"
    return [f"station '{station}': {amount} of the records agree with another of its records on every linkage field "
            "(one patient under two record ids?); each patient is linked at most once, to one of its records"]


def normalise(spec: LinkageSpec, station: str, df: pd.DataFrame) -> pd.DataFrame:
    """One row per record, one column per component (None where missing)."""
    check_station_data(spec, station, df)
    columns: dict[str, list] = {}
    for f in spec.fields:
        columns.update(field_components(f, station, df[f.columns[station]]))
    return pd.DataFrame(columns, index=df.index, dtype=object)  # keep None for missing components

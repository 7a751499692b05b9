"""The linkage spec: which column holds what at each station, shared by all three algorithms.

Documented in docs/spec.md. Example::

    {"stations": {"registry": {"id_column": "record_id"}, "gp_1": {"id_column": "patient_nr"}},
     "hub": "registry",
     "fields": [
       {"name": "surname", "kind": "string", "columns": {"registry": "surname", "gp_1": "achternaam"}},
       {"name": "birth_date", "kind": "date", "columns": {"registry": "birth_date", "gp_1": "geboortedatum"},
        "formats": {"gp_1": "%d-%m-%Y"}},
       {"name": "sex", "kind": "category", "columns": {...}, "mapping": {"gp_1": {"m": "M", "v": "F"}}}],
     "threshold": 0.5}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..runtime.errors import InputError

FIELD_KINDS = ("string", "name", "address", "id", "initials", "date", "postcode", "category", "exact")
DEFAULT_THRESHOLD = 0.5
PSEUDONYM_KINDS = ("keyed", "blinded")   # how match-key values become pseudonyms; see linkage.protocol
DEFAULT_MIN_RECORDS = 10


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    columns: dict[str, str]
    formats: dict[str, str] = field(default_factory=dict)
    mapping: dict[str, dict[str, str | None]] = field(default_factory=dict)   # None: the code means missing
    options: dict[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()   # values read as missing at every station ('unknown', '00/00/0000'), any case


@dataclass(frozen=True)
class LinkageSpec:
    stations: dict[str, str]          # station -> record-id column
    fields: tuple[FieldSpec, ...]
    hub: str                          # the station every other station is linked to (the registry)
    keys: tuple[tuple[str, ...], ...] | None = None  # match-key recipes; None = derived from the fields
    threshold: float = DEFAULT_THRESHOLD
    min_records: int = DEFAULT_MIN_RECORDS
    max_key_frequency: int = 5
    similarity: bool | None = None    # the residue's similarity step; None: on where every node allows it
    pseudonyms: str = "keyed"         # "keyed" (pair-keyed PRF) or "blinded" (two-party X25519, resists collusion)

    @property
    def others(self) -> list[str]:
        return [s for s in self.stations if s != self.hub]

    def to_dict(self) -> dict:
        return {
            "stations": {s: {"id_column": c} for s, c in self.stations.items()},
            "hub": self.hub,
            "fields": [{"name": f.name, "kind": f.kind, "columns": f.columns, "formats": f.formats,
                        "mapping": f.mapping, "options": f.options, "missing": list(f.missing)} for f in self.fields],
            "keys": [list(k) for k in self.keys] if self.keys else None,
            "threshold": self.threshold, "min_records": self.min_records,
            "max_key_frequency": self.max_key_frequency,
            "similarity": self.similarity,
            "pseudonyms": self.pseudonyms,
        }


def _check_date_format(field_name: str, station: str, fmt: Any) -> None:
    """A date format is "any" or strptime syntax with at least one directive ("%d-%m-%Y", not "dd-mm-yyyy")."""
    where = f"linkage spec: field '{field_name}', station '{station}'"
    if not isinstance(fmt, str) or (fmt != "any" and "%" not in fmt):
        raise InputError(f"{where}: the date format must be \"any\" or strptime syntax such as \"%d-%m-%Y\"")
    if fmt == "any":
        return
    try:
        datetime.strptime("", fmt)
    except ValueError as exc:
        if "does not match" not in str(exc):   # a bad directive or a stray %, not just the empty value
            raise InputError(f"{where}: {fmt!r} is not a valid date format (strptime syntax such as \"%d-%m-%Y\")") from None


def parse_linkage_spec(raw: Any, known_stations: list[str] | None = None) -> LinkageSpec:
    """Validate a linkage spec and say exactly what is wrong with it."""
    if not isinstance(raw, dict):
        raise InputError("the linkage spec must be a JSON object")
    stations_raw = raw.get("stations")
    if not isinstance(stations_raw, dict) or not stations_raw:
        raise InputError("linkage spec: 'stations' must name each station and its 'id_column'")
    stations: dict[str, str] = {}
    for name, conf in stations_raw.items():
        col = conf.get("id_column") if isinstance(conf, dict) else None
        if not isinstance(col, str) or not col:
            raise InputError("linkage spec: missing 'id_column'", station=name)
        stations[name] = col
    if known_stations is not None:
        unknown = sorted(set(stations) - set(known_stations))
        if unknown:
            raise InputError(f"linkage spec names stations that are not part of this run: {unknown}; "
                             f"stations given: {sorted(known_stations)}")
    hub = raw.get("hub", next(iter(stations)))
    if hub not in stations:
        raise InputError(f"linkage spec: hub '{hub}' is not one of the stations {sorted(stations)}")
    fields_raw = raw.get("fields")
    if not isinstance(fields_raw, list) or not fields_raw:
        raise InputError("linkage spec: 'fields' must be a non-empty list")
    fields = []
    names = set()
    for i, f in enumerate(fields_raw):
        if not isinstance(f, dict):
            raise InputError(f"linkage spec: field #{i + 1} must be an object")
        name, kind = f.get("name"), f.get("kind")
        if not isinstance(name, str) or not name or name in names:
            raise InputError(f"linkage spec: field #{i + 1} needs a unique 'name'")
        names.add(name)
        if kind not in FIELD_KINDS:
            raise InputError(f"linkage spec: field '{name}' has kind {kind!r}; use one of {list(FIELD_KINDS)}")
        columns = f.get("columns")
        if not isinstance(columns, dict):
            raise InputError(f"linkage spec: field '{name}' needs 'columns' (station -> column)")
        missing = [s for s in stations if s not in columns]
        if missing:
            raise InputError(f"linkage spec: field '{name}' has no column for station(s) {missing}")
        extra = [s for s in columns if s not in stations]
        if extra:
            raise InputError(f"linkage spec: field '{name}' names unknown station(s) {extra}")
        formats = f.get("formats") or {}
        if not isinstance(formats, dict):
            raise InputError(f"linkage spec: field '{name}': 'formats' maps each station to a date format")
        for station, fmt in formats.items():
            _check_date_format(name, station, fmt)
        markers = f.get("missing") or []
        if not isinstance(markers, list) or not all(isinstance(m, str) and m.strip() for m in markers):
            raise InputError(f"linkage spec: field '{name}': 'missing' lists the values that mean missing, such as "
                             "[\"unknown\", \"00/00/0000\"]")
        fields.append(FieldSpec(name=name, kind=kind, columns=dict(columns), formats=dict(formats),
                                mapping={s: {str(k): None if v is None else str(v) for k, v in m.items()}
                                         for s, m in (f.get("mapping") or {}).items()},
                                options=dict(f.get("options") or {}), missing=tuple(markers)))
    keys = raw.get("keys")
    if keys is not None:
        if not isinstance(keys, list) or not all(isinstance(k, list) and k for k in keys):
            raise InputError("linkage spec: 'keys' must be a list of non-empty lists of field components")
        keys = tuple(tuple(str(c) for c in k) for k in keys)
    threshold = float(raw.get("threshold", DEFAULT_THRESHOLD))
    if not 0.0 < threshold < 1.0:
        raise InputError("linkage spec: 'threshold' is a match probability and must lie strictly between 0 and 1")
    min_records = int(raw.get("min_records", DEFAULT_MIN_RECORDS))
    max_freq = int(raw.get("max_key_frequency", 5))
    if max_freq < 1:
        raise InputError("linkage spec: 'max_key_frequency' must be at least 1")
    similarity = raw.get("similarity")
    if similarity is not None and not isinstance(similarity, bool):
        raise InputError("linkage spec: 'similarity' must be true or false (the residue's similarity step)")
    pseudonyms = raw.get("pseudonyms") or "keyed"
    if pseudonyms not in PSEUDONYM_KINDS:
        raise InputError(f"linkage spec: 'pseudonyms' must be one of {list(PSEUDONYM_KINDS)} (keyed: fast, needs the "
                         "coordinator not to collude with a station; blinded: survives that, 4-10 times the time)")
    return LinkageSpec(stations=stations, fields=tuple(fields), hub=hub, keys=keys, threshold=threshold,
                       min_records=max(min_records, 1), max_key_frequency=max_freq, similarity=similarity,
                       pseudonyms=pseudonyms)

"""Another schema: full given names, street addresses, suburbs, 4-digit postcodes, free-form dates and
an id number, in the style of the public person-record benchmarks of another country, with several
errors per record across fields and missing values.

Built on the Dutch federation of :mod:`lancelot.synth.generator` (same patients, clinical columns and
true links): the identifier columns are replaced. Registry records are clean; a GP record of a
registry patient gets 0-4 modifications across different fields (typos in names, street and suburb,
a wrong house number, postcode or id digit, a mistyped or swapped date, a missing value), unmatched
GP records get identities of their own (a quarter of them share surname and address with a
registry patient: family).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from faker.providers.address.en_AU import Provider as _AuAddress
from faker.providers.person.en_US import Provider as _UsPerson

from lancelot.synth import errors as err
from lancelot.synth.generator import SynthData

_GIVEN_M = np.array(sorted(set(_UsPerson.first_names_male)), dtype=object)
_GIVEN_F = np.array(sorted(set(_UsPerson.first_names_female)), dtype=object)
_SURNAMES = np.array(sorted(set(_UsPerson.last_names)), dtype=object)
_STREET_TYPES = ("Street", "Road", "Avenue", "Place", "Crescent", "Drive", "Court", "Lane", "Parade", "Close")
_ABBREVIATIONS = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Place": "Pl", "Crescent": "Cres", "Drive": "Dr",
                  "Court": "Ct", "Lane": "Ln", "Parade": "Pde", "Close": "Cl"}
N_SUBURBS = 600
# number of modified fields per GP record of a registry patient
MODIFICATIONS = (0, 1, 2, 3, 4)
MODIFICATION_P = (0.15, 0.30, 0.30, 0.17, 0.08)
FIELDS = ("given_name", "surname", "address", "suburb", "postcode", "date_of_birth", "id_number")
MISSING_P = 0.25       # among modifications: a missing value instead of an error


def _zipf(rng: np.random.Generator, values: np.ndarray, n: int, s: float = 0.8) -> np.ndarray:
    rank = rng.permutation(len(values))
    w = 1.0 / (rank + 5.0) ** s
    return values[rng.choice(len(values), size=n, p=w / w.sum())]


def _suburbs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    stems = rng.choice(_SURNAMES, N_SUBURBS, replace=False)
    prefixes = np.array(list(_AuAddress.city_prefixes) + [""] * 12, dtype=object)
    suffixes = np.array(["", "", "", " Park", " Heights", " Hill", " Vale", " Beach", " Creek", "ville"], dtype=object)
    names = [f"{rng.choice(prefixes)} {s}{rng.choice(suffixes)}".strip() for s in stems]
    postcodes = rng.choice(np.arange(2000, 8000), N_SUBURBS, replace=False)
    return np.array(names, dtype=object), postcodes


def _identities(rng: np.random.Generator, male: np.ndarray, birth: list, suburbs, postcodes) -> pd.DataFrame:
    n = len(male)
    given = np.where(male, _zipf(rng, _GIVEN_M, n), _zipf(rng, _GIVEN_F, n))
    where = rng.integers(0, len(suburbs), n)
    street = _zipf(rng, _SURNAMES, n, 0.5)
    types = rng.choice(np.array(_STREET_TYPES, dtype=object), n)
    numbers = rng.integers(1, 300, n)
    return pd.DataFrame({
        "given_name": given, "surname": _zipf(rng, _SURNAMES, n),
        "address": [f"{k} {s} {t}" for k, s, t in zip(numbers, street, types)],
        "suburb": suburbs[where], "postcode": postcodes[where].astype(str),
        "date_of_birth": birth, "sex": np.where(male, "M", "F"),
        "id_number": [f"{x:09d}" for x in rng.integers(10**8, 10**9, n)],
    })


def _modify(rng: np.random.Generator, row: dict, field: str) -> None:
    value = row[field]
    if rng.random() < MISSING_P and field not in ("date_of_birth",):
        row[field] = None
        return
    if field in ("given_name", "surname", "suburb"):
        row[field] = err.typo(rng, value)
    elif field == "address":
        number, rest = value.split(" ", 1)
        r = rng.random()
        if r < 0.4:
            words = rest.split(" ")
            row[field] = f"{number} {err.typo(rng, words[0])} {' '.join(words[1:])}"
        elif r < 0.7:
            row[field] = f"{int(number) + int(rng.choice([-2, -1, 1, 2, 10])) or 1} {rest}"
        else:  # moved house, same suburb
            row[field] = f"{rng.integers(1, 300)} {rng.choice(_SURNAMES)} {rng.choice(_STREET_TYPES)}"
    elif field == "postcode":
        i = int(rng.integers(1, 4))
        row[field] = value[:i] + str((int(value[i]) + int(rng.integers(1, 10))) % 10) + value[i + 1:]
    elif field == "date_of_birth":
        d = value
        row[field] = err.swap_day_month(d) if err.can_swap(d) and rng.random() < 0.3 else err.date_digit_typo(rng, d)
    elif field == "id_number":
        i = int(rng.integers(0, 8))
        if rng.random() < 0.5:
            row[field] = value[:i] + value[i + 1] + value[i] + value[i + 2:]
            if row[field] == value:
                row[field] = value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:]
        else:
            row[field] = value[:i] + str((int(value[i]) + int(rng.integers(1, 10))) % 10) + value[i + 1:]


def _write_date(rng: np.random.Generator, d) -> str:
    """The GP side writes dates in whatever form its systems use."""
    r = rng.random()
    if r < 0.4:
        return d.strftime("%d/%m/%Y")
    if r < 0.7:
        return d.strftime("%Y%m%d")
    if r < 0.85:
        return d.strftime("%d-%m-%Y")
    return d.isoformat()


@dataclass
class IntlSynthData(SynthData):
    def link_spec(self) -> dict:
        gp = list(self.gp)
        both = ["registry", *gp]

        def same(column: str) -> dict:
            return {s: column for s in both}

        return {
            "stations": {"registry": {"id_column": "record_id"}, **{s: {"id_column": "patient_nr"} for s in gp}},
            "fields": [
                {"name": "given_name", "kind": "name", "columns": same("given_name")},
                {"name": "surname", "kind": "string", "columns": same("surname")},
                {"name": "date_of_birth", "kind": "date", "columns": same("date_of_birth"),
                 "formats": {"registry": "%Y-%m-%d", **{s: "any" for s in gp}}},
                {"name": "sex", "kind": "category", "columns": same("sex")},
                {"name": "postcode", "kind": "postcode", "columns": same("postcode"), "options": {"country": "AU"}},
                {"name": "address", "kind": "address", "columns": same("address")},
                {"name": "suburb", "kind": "name", "columns": same("suburb")},
                {"name": "id_number", "kind": "id", "columns": same("id_number")},
            ],
        }


def to_intl(data: SynthData, seed: int) -> IntlSynthData:
    """The same federation with identifiers in the other schema and several errors per GP record."""
    rng = np.random.default_rng([seed, 2])
    suburbs, postcodes = _suburbs(rng)
    reg = data.registry
    births = [pd.Timestamp(x).date() for x in reg["birth_date"]]
    ident = _identities(rng, (reg["sex"] == "M").to_numpy(), births, suburbs, postcodes)
    ident.index = reg["record_id"].to_numpy()
    registry = reg.drop(columns=["surname", "initials", "birth_date", "sex", "postcode"])
    registry = pd.concat([registry[["record_id"]],
                          ident.reset_index(drop=True).assign(date_of_birth=[d.isoformat() for d in births]),
                          registry.drop(columns=["record_id"])], axis=1)
    gp_tables, logs = {}, []
    for name, table in data.gp.items():
        truth = data.truth[data.truth["station"] == name]
        of = dict(zip(truth["station_id"], truth["registry_id"]))
        male = (table["geslacht"].fillna("m").str.lower() == "m").to_numpy()
        own_births = [pd.Timestamp(x).date() for x in pd.to_datetime(table["geboortedatum"], format="%d-%m-%Y")]
        fresh = _identities(rng, male, own_births, suburbs, postcodes)
        rows, mods = [], []
        for k, pid in enumerate(table["patient_nr"]):
            rid = of.get(pid)
            if rid is not None:
                row = ident.loc[rid].to_dict()
                chosen = rng.choice(FIELDS, size=int(rng.choice(MODIFICATIONS, p=MODIFICATION_P)), replace=False)
                for field in chosen:
                    _modify(rng, row, str(field))
                mods.append({"registry_id": rid, "station": name, "station_id": pid, "modified": len(chosen),
                             **{f: f in chosen for f in FIELDS}})
            else:
                row = fresh.iloc[k].to_dict()
                if rng.random() < 0.25:  # family of a registry patient: same surname and address
                    other = ident.iloc[int(rng.integers(len(ident)))]
                    row.update(surname=other["surname"], address=other["address"], suburb=other["suburb"],
                               postcode=other["postcode"])
            if isinstance(row["address"], str) and rng.random() < 0.3:  # abbreviations: not an error
                for full, short in _ABBREVIATIONS.items():
                    row["address"] = row["address"].replace(full, short)
            row["date_of_birth"] = _write_date(rng, row["date_of_birth"])
            rows.append(row)
        ids = pd.DataFrame(rows)
        ids["sex"] = np.where(table["geslacht"].isna(), None, ids["sex"])
        gp_tables[name] = pd.concat([table[["patient_nr"]], ids,
                                     table.drop(columns=["patient_nr", "achternaam", "voorletters", "geboortedatum",
                                                         "geslacht", "postcode"])], axis=1)
        logs.append(pd.DataFrame(mods))
    errors = pd.concat(logs, ignore_index=True)
    return IntlSynthData(registry=registry, gp=gp_tables, truth=data.truth, errors=errors,
                         population=data.population, seed=data.seed, error_level="intl")

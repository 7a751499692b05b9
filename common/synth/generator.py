"""Build the registry station, the GP stations and the ground truth from one seed.

The registry holds every true patient with clean identifiers. Each GP station holds a random
subset of them with realistic identifier errors and formatting, plus GP-only people (some of whom
are look-alikes of registry patients), so linkage is neither trivial nor hopeless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from lancelot.synth import errors as err
from lancelot.synth import names, population

GP_COVERAGE = 0.85  # share of true patients present at each GP station (independently per station)
GP_EXTRA_SHARE = 0.30  # share of a GP station's rows that are not registry patients
GP_LOOKALIKE_SHARE = 0.05  # share of a GP station's rows that are look-alike non-matches
REGISTRY_PS_MISSING = 0.03
GP_BMI_MISSING = 0.05
GP_SMOKING_MISSING = 0.04
GP_COMORBIDITY_UNDERCODED = 0.03  # share of true comorbidities not coded at a given GP station

REGISTRY_COLUMNS = [
    "record_id", "surname", "initials", "birth_date", "sex", "postcode", "diagnosis_date", "age_at_diagnosis",
    "stage", "who_ps", "histology", "surgery", "chemotherapy", "radiotherapy", "immunotherapy",
    "survival_days", "vital_status", "death_within_2y",
]
GP_COLUMNS = [
    "patient_nr", "achternaam", "voorletters", "geboortedatum", "geslacht", "postcode",
    "copd", "diabetes", "cardiovascular", "bmi", "smoking", "medication_count", "gp_visits",
]
ERROR_FLAGS = list(err.DEFAULT_RATES)


@dataclass
class SynthData:
    """One synthetic federation: station tables plus everything needed to score linkage and models."""

    registry: pd.DataFrame
    gp: dict[str, pd.DataFrame]
    truth: pd.DataFrame  # registry_id, station, station_id
    errors: pd.DataFrame = field(repr=False)  # per true link: which identifier errors were injected
    population: pd.DataFrame = field(repr=False)  # true (noise-free) features of every registry patient
    seed: int = 0
    error_level: str = "default"

    def link_spec(self) -> dict:
        """The field mapping the linkage algorithm reads (registry vs every GP station)."""
        stations = ["registry", *self.gp]
        gp_names = list(self.gp)
        return {
            "stations": {"registry": {"id_column": "record_id"}, **{s: {"id_column": "patient_nr"} for s in gp_names}},
            "fields": [
                {"name": "surname", "kind": "string",
                 "columns": {"registry": "surname", **{s: "achternaam" for s in gp_names}}},
                {"name": "initials", "kind": "initials",
                 "columns": {"registry": "initials", **{s: "voorletters" for s in gp_names}}},
                {"name": "birth_date", "kind": "date",
                 "columns": {"registry": "birth_date", **{s: "geboortedatum" for s in gp_names}},
                 "formats": {"registry": "%Y-%m-%d", **{s: "%d-%m-%Y" for s in gp_names}}},
                {"name": "sex", "kind": "category",
                 "columns": {"registry": "sex", **{s: "geslacht" for s in gp_names}},
                 "mapping": {s: {"m": "M", "v": "F"} for s in gp_names}},
                {"name": "postcode", "kind": "postcode", "columns": {s: "postcode" for s in stations}},
            ],
        }

    def truth_model(self) -> dict:
        """True data-generating survival model, to judge what trained models recover."""
        return {
            "model": "Weibull proportional hazards",
            "time_unit": "days",
            "shape": population.WEIBULL_SHAPE,
            "reference_median_days": population.REFERENCE_MEDIAN_DAYS,
            "centring": {"age": 70.0, "bmi": 26.0},
            "log_hazard_ratios": dict(population.LOG_HAZARD),
            "follow_up_end": population.FOLLOW_UP_END.isoformat(),
            "seed": self.seed,
            "error_level": self.error_level,
        }

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write station CSVs, truth files and link_spec.json; missing values are empty cells."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {"registry": out / "registry.csv"}
        self.registry.to_csv(paths["registry"], index=False)
        for name, df in self.gp.items():
            paths[name] = out / f"{name}.csv"
            df.to_csv(paths[name], index=False)
        paths["truth_links"] = out / "truth_links.csv"
        self.truth.to_csv(paths["truth_links"], index=False)
        paths["truth_errors"] = out / "truth_errors.csv"
        self.errors.to_csv(paths["truth_errors"], index=False)
        paths["truth_population"] = out / "truth_population.csv"
        self.population.to_csv(paths["truth_population"], index=False)
        paths["truth_model"] = out / "truth_model.json"
        paths["truth_model"].write_text(json.dumps(self.truth_model(), indent=2) + "\n")
        paths["link_spec"] = out / "link_spec.json"
        paths["link_spec"].write_text(json.dumps(self.link_spec(), indent=2) + "\n")
        return paths


def _unique_ids(rng: np.random.Generator, n: int, prefix: str, digits: int) -> np.ndarray:
    nums = rng.choice(10**digits, size=n, replace=False)
    return np.array([f"{prefix}{int(x):0{digits}d}" for x in nums], dtype=object)


def _fmt_initials(letters: str, dots: bool) -> str:
    return "".join(f"{c}." for c in letters) if dots else letters


def _registry(rng: np.random.Generator, pop: pd.DataFrame) -> pd.DataFrame:
    n = len(pop)
    who_ps = pd.array(pop["who_ps"].to_numpy(), dtype="Int64")
    who_ps[rng.random(n) < REGISTRY_PS_MISSING] = pd.NA
    reg = pd.DataFrame({
        "record_id": pop["registry_id"].to_numpy(),
        "surname": [names.full_surname(p, s) for p, s in zip(pop["prefix"], pop["stem"], strict=True)],
        "initials": [_fmt_initials(x, True) for x in pop["initials"]],
        "birth_date": [d.isoformat() for d in pop["birth_date"]],
        "sex": np.where(pop["male"], "M", "F"),
        "postcode": pop["postcode"].to_numpy(),
        "diagnosis_date": [d.isoformat() for d in pop["diagnosis_date"]],
        "age_at_diagnosis": pop["age_at_diagnosis"].astype(int).to_numpy(),
        "stage": pop["stage"].to_numpy(),
        "who_ps": who_ps,
        "histology": pop["histology"].to_numpy(),
        **{c: pop[c].astype(int).to_numpy() for c in REGISTRY_COLUMNS[11:]},
    })
    return reg.iloc[rng.permutation(n)].reset_index(drop=True)


def _lookalikes(rng: np.random.Generator, pop: pd.DataFrame, n: int,
               surname_weights: np.ndarray | None = None) -> pd.DataFrame:
    """GP-only people who share identifiers with a registry patient: twins, spouses, siblings, neighbours."""
    src = pop.iloc[rng.integers(0, len(pop), n)].reset_index(drop=True)
    fresh = population.non_patients(rng, n, surname_weights)
    kind = rng.choice(4, size=n, p=[0.15, 0.35, 0.20, 0.30])
    rows = fresh.copy()
    for i in range(n):
        s = src.iloc[i]
        k = kind[i]
        male = bool(rng.random() < 0.5) if k in (0, 2) else (not s["male"] if k == 1 else bool(s["male"]))
        rows.at[i, "male"] = male
        if k in (0, 1, 2):  # family: same surname
            rows.at[i, "prefix"], rows.at[i, "stem"] = s["prefix"], s["stem"]
        if k in (0, 3):  # twin or same-day neighbour: same birth date
            rows.at[i, "birth_date"] = s["birth_date"]
        elif k == 1:  # spouse: similar age
            shift = int(rng.normal(0, 3.5) * 365.25) or 40
            rows.at[i, "birth_date"] = s["birth_date"] + timedelta(days=shift)
        else:  # sibling: 1-10 years apart
            shift = int(rng.integers(1, 11) * 365.25 + rng.integers(-150, 150)) * int(rng.choice([-1, 1]))
            rows.at[i, "birth_date"] = s["birth_date"] + timedelta(days=shift)
        if k in (0, 1) or (k == 2 and rng.random() < 0.3):  # same household
            rows.at[i, "postcode"] = s["postcode"]
        else:  # same 4-digit area
            rows.at[i, "postcode"] = names.sample_postcodes(rng, 1, areas=np.array([int(s["postcode"][:4])]))[0]
        ini = names.sample_initials(rng, np.array([male]))[0]
        if ini[0] == s["initials"][0] and rng.random() < 0.7:
            ini = names.random_letter(rng) + ini[1:]
        rows.at[i, "initials"] = ini
    rows["lookalike_of"] = src["registry_id"].to_numpy()
    return rows


def _corrupt(rng: np.random.Generator, people: pd.DataFrame, rates: dict[str, float]) -> tuple[dict, pd.DataFrame]:
    """Apply identifier errors to every GP row (non-matches too, so errors never reveal match status)."""
    n = len(people)
    flags = {k: np.zeros(n, dtype=bool) for k in ERROR_FLAGS}
    surname, initials, birth, sex, postcode = [], [], [], [], []
    for i, p in enumerate(people.itertuples(index=False)):
        stem = p.stem
        if rng.random() < rates["surname_typo"]:
            stem = err.typo(rng, stem)
            flags["surname_typo"][i] = True
        if p.prefix and rng.random() < rates["prefix_changed"]:
            surname.append(err.change_prefix(rng, p.prefix, stem))
            flags["prefix_changed"][i] = True
        else:
            surname.append(names.full_surname(p.prefix, stem))
        ini = p.initials
        if rng.random() < rates["initials_differ"]:
            ini = err.change_initials(rng, ini)
            flags["initials_differ"][i] = True
        initials.append(ini)
        b = p.birth_date
        if err.can_swap(b) and rng.random() < rates["birth_swap"]:
            b = err.swap_day_month(b)
            flags["birth_swap"][i] = True
        elif rng.random() < rates["birth_typo"]:
            b = err.date_digit_typo(rng, b)
            flags["birth_typo"][i] = True
        birth.append(b)
        if rng.random() < rates["sex_missing"]:
            sex.append(None)
            flags["sex_missing"][i] = True
        else:
            sex.append("m" if p.male else "v")
        pc = p.postcode
        if rng.random() < rates["postcode_missing"]:
            pc = None
            flags["postcode_missing"][i] = True
        else:
            if rng.random() < rates["postcode_moved"]:
                pc = err.moved_postcode(rng, pc)
                flags["postcode_moved"][i] = True
            elif rng.random() < rates["postcode_typo"]:  # exclusive, so a typo never undoes a move
                pc = err.postcode_letter_typo(rng, pc)
                flags["postcode_typo"][i] = True
        postcode.append(pc)
    values = {"surname": surname, "initials": initials, "birth": birth, "sex": sex, "postcode": postcode}
    return values, pd.DataFrame(flags)


def _gp_station(rng: np.random.Generator, pop: pd.DataFrame, number: int, rates: dict[str, float],
                coverage: float = GP_COVERAGE, size: int | None = None,
                surname_weights: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One GP station's table, its true links and the error log of those links."""
    name = f"gp_{number}"
    covered = pop[rng.random(len(pop)) < coverage]
    n_match = len(covered)
    n_total = int(round(n_match / (1.0 - GP_EXTRA_SHARE))) if size is None else int(size)
    n_look = int(round(GP_LOOKALIKE_SHARE * n_total))
    n_other = n_total - n_match - n_look
    if n_other < 0:
        raise ValueError(f"a GP station of {n_total} records cannot hold {n_match} registry patients and "
                         f"{n_look} look-alikes: raise gp_size or lower gp_coverage")
    people = pd.concat([
        covered.assign(lookalike_of=None),
        _lookalikes(rng, pop, n_look, surname_weights),
        population.non_patients(rng, n_other, surname_weights).assign(registry_id=None, lookalike_of=None),
    ], ignore_index=True)
    people = people.iloc[rng.permutation(len(people))].reset_index(drop=True)
    n = len(people)

    ids = _unique_ids(rng, n, f"GP{number}-", 6 if n < 200_000 else 8)
    values, flags = _corrupt(rng, people, rates)

    # Station-specific formatting habits (not errors: a normaliser undoes them).
    p_nodots, p_space, p_lower = rng.uniform(0.15, 0.6), rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.4)
    nodots = rng.random(n) < p_nodots
    space = rng.random(n) < p_space
    lower = rng.random(n) < p_lower
    pcs = []
    for i, pc in enumerate(values["postcode"]):
        if pc is None:
            pcs.append(None)
            continue
        pc = f"{pc[:4]} {pc[4:]}" if space[i] else pc
        pcs.append(pc.lower() if lower[i] else pc)

    bmi = np.round(people["bmi"].to_numpy(dtype=float) + rng.normal(0.0, 1.0, n), 1).clip(14.0, 55.0)
    bmi[rng.random(n) < GP_BMI_MISSING] = np.nan
    smoking = people["smoking"].to_numpy(dtype=object).copy()
    smoking[rng.random(n) < GP_SMOKING_MISSING] = None
    med = people["medication_count"].to_numpy(dtype=int)
    med = np.maximum(0, med + np.where(rng.random(n) < 0.3, rng.choice([-1, 1], n), 0))
    comorb = {}
    for c in ("copd", "diabetes", "cardiovascular"):
        v = people[c].to_numpy(dtype=int).copy()
        v[(v == 1) & (rng.random(n) < GP_COMORBIDITY_UNDERCODED)] = 0
        comorb[c] = v

    table = pd.DataFrame({
        "patient_nr": ids,
        "achternaam": values["surname"],
        "voorletters": [_fmt_initials(x, not nd) for x, nd in zip(values["initials"], nodots, strict=True)],
        "geboortedatum": [d.strftime("%d-%m-%Y") for d in values["birth"]],
        "geslacht": values["sex"],
        "postcode": pcs,
        **comorb,
        "bmi": bmi,
        "smoking": smoking,
        "medication_count": med,
        "gp_visits": rng.poisson(people["visit_rate"].to_numpy(dtype=float)),
    })
    matched = people["registry_id"].notna().to_numpy()
    truth = pd.DataFrame({"registry_id": people.loc[matched, "registry_id"].to_numpy(), "station": name,
                          "station_id": ids[matched]})
    log = pd.concat([truth.reset_index(drop=True), flags[matched].reset_index(drop=True)], axis=1)
    return table, truth, log


def generate(n_patients: int = 2000, gp_stations: int = 1, seed: int = 0, error_level: str = "default",
             surnames: str = "dutch", gp_size: int | None = None, gp_coverage: float = GP_COVERAGE,
             schema: str = "dutch") -> SynthData:
    """Generate one reproducible federation: registry, ``gp_stations`` GP stations and the truth.

    ``surnames="concentrated"``: a few dozen surnames cover most people (registry and GP alike).
    ``gp_size``: records per GP station (default: the covered patients plus 30% others); a large
    size makes a large unmatched population. ``gp_coverage``: the share of registry patients that
    each GP station holds. ``error_level="heavy"``: several errors per record across fields.
    ``schema="intl"``: identifiers in another country's format (full given names, street addresses,
    suburbs, 4-digit postcodes, free-form dates, an id number) with 0-4 modified fields per GP record
    (:mod:`lancelot.synth.intl`).
    """
    if schema not in ("dutch", "intl"):
        raise ValueError(f"schema must be 'dutch' or 'intl', got {schema!r}")
    if n_patients < 1 or gp_stations < 1:
        raise ValueError("n_patients and gp_stations must be >= 1")
    if not 0.0 < gp_coverage <= 1.0:
        raise ValueError("gp_coverage must lie in (0, 1]")
    rates = err.rates_for(error_level)
    rng = np.random.default_rng(seed)
    weights = None if surnames == "dutch" else names.surname_weights(rng, surnames)
    pop = population.patients(rng, n_patients, weights)
    pop.insert(0, "registry_id", _unique_ids(rng, n_patients, "NKR", 7))
    registry = _registry(rng, pop)
    gp: dict[str, pd.DataFrame] = {}
    truths, logs = [], []
    for s in range(1, gp_stations + 1):
        table, truth, log = _gp_station(rng, pop, s, rates, gp_coverage, gp_size, weights)
        gp[f"gp_{s}"] = table
        truths.append(truth)
        logs.append(log)
    truth = pd.concat(truths, ignore_index=True).sort_values(["station", "registry_id"], ignore_index=True)
    log = pd.concat(logs, ignore_index=True).sort_values(["station", "registry_id"], ignore_index=True)
    true_features = pop[["registry_id", "smoking", "copd", "diabetes", "cardiovascular", "bmi",
                         "medication_count", "who_ps"]].copy()
    true_features["bmi"] = true_features["bmi"].round(2)
    data = SynthData(registry=registry, gp=gp, truth=truth, errors=log, population=true_features,
                     seed=seed, error_level=error_level)
    if schema == "intl":
        from lancelot.synth.intl import to_intl

        return to_intl(data, seed)
    return data

"""Match keys: combinations of normalised components, each tolerant of a different kind of error.

Only combinations of several fields are ever pseudonymised (never a single field), so that the
coordinator, which sees which encodings are equal, cannot run a frequency attack on one field
(for example sex or birth year). A key whose component is missing for a record is replaced by a
random dummy, so missingness does not show either.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..runtime.errors import InputError, PrivacyError
from .normalise import COMPONENTS
from .spec import LinkageSpec

# Recipes over roles: S surname-like string, I initials, D first date, X first category, P postcode.
# Each tolerates a different error: typos (phonetic, first letter), day/month swaps (sorted), a moved
# patient (no postcode, or its 4-digit area only), a wrong day, month or year, a missing sex code.
# Chosen by ablation on synthetic data (10,000 patients at the default and heavy error levels, and
# 50,000 x 80,000 records with concentrated surnames), for the match model of lancelot.linkage.model:
# a key earns its place by the true pairs it finds or by what it tells the model about a field in the
# pairs that other keys find (two keys that differ in one component show whether it agrees). Each
# key costs two curve operations per record, the bulk of linkage's time.
_ROLE_RECIPES: list[tuple[str, ...]] = [
    ("S", "I.first", "D"),                    # exact surname, first initial, birth date
    ("S.phon", "I.first", "D", "X"),          # surname typo that keeps the phonetic code
    ("S", "D.sorted", "X"),                   # day/month swap; initials differ
    ("S", "I.first", "D.ym", "X"),            # day typo
    ("S", "I.first", "D.yd", "X"),            # month typo
    ("S", "I.first", "D.md", "X"),            # year typo
    ("I", "D", "X"),                          # surname typo or change, a moved or missing postcode
    ("I", "D.y", "X", "P"),                   # surname and day/month typos
    ("I", "D.md", "X", "P"),                  # surname and year typos
    ("S.first", "D", "X", "P.pc4"),           # surname typo after the first letter, initials differ
    ("I", "D", "X", "P.pc4"),                 # with (I, D, X): does the 4-digit area agree?
    ("S.first", "I", "D"),                    # surname typo and missing sex; with the others: first letter
]
# Recipes for the roles other schemas bring: G given name, C city (a second name field), N id number,
# A street address. Added when the spec has the field; initials (I) fall back to the given name.
_EXTRA_RECIPES: list[tuple[str, ...]] = [
    ("N", "S.first", "D.y"),                  # id number, with surname and date errors elsewhere
    ("N.a", "S", "D"),                        # a typo in the id's second half
    ("N.b", "G", "D"),                        # ... or its first half, and a surname change
    ("N", "G.first", "P"),                    # id with birth date and surname errors
    ("A.street", "S", "D.y"),                 # street name
    ("A", "G.first", "D"),                    # house number and street, surname changed
    ("A.street", "G", "P"),                   # birth date wrong, surname changed
    ("C", "S", "D"),                          # city
    ("S.phon", "G.phon", "D.y", "P"),         # typos in both names and in the date
]
MAX_GENERIC_KEYS = 12
MIN_KEY_FIELDS = 3  # the default; a node policy may require more (lancelot.policy)


def _roles(spec: LinkageSpec) -> dict[str, str]:
    roles: dict[str, str] = {}
    kinds = {"string": "S", "initials": "I", "date": "D", "category": "X", "postcode": "P", "name": "G",
             "address": "A", "id": "N"}
    for f in spec.fields:
        role = kinds.get(f.kind)
        if role == "G" and "G" in roles:
            role = "C"                            # a second name field: a city or suburb
        if role and role not in roles:
            roles[role] = f.name
    if "I" not in roles and "G" in roles:         # no initials: the given name's first letter serves
        roles["I"] = roles["G"]
    return roles


def key_recipes(spec: LinkageSpec) -> list[tuple[str, ...]]:
    """The recipes in force: the spec's own, or the defaults that its fields support."""
    if spec.keys:
        return [tuple(k) for k in spec.keys]
    roles = _roles(spec)
    exact = tuple(f.name for f in spec.fields if f.kind == "exact")
    recipes: list[tuple[str, ...]] = []
    extra = [r for r in _EXTRA_RECIPES if any(part.partition(".")[0] in ("G", "A", "C", "N") for part in r)
             and all(part.partition(".")[0] in roles for part in r)]
    for recipe in _ROLE_RECIPES + extra:
        comps = []
        for part in recipe:
            role, _, suffix = part.partition(".")
            if role in roles:
                comps.append(roles[role] + (f".{suffix}" if suffix else ""))
        comps = tuple(dict.fromkeys(tuple(comps) + exact))
        if len(key_fields(comps)) >= MIN_KEY_FIELDS and comps not in recipes:
            recipes.append(comps)
    if exact and exact not in recipes:
        recipes.insert(0, exact)
    recipes = [r for r in recipes if len(key_fields(r)) >= MIN_KEY_FIELDS]
    if not recipes:  # a schema the role recipes do not fit: every combination of three fields, exact
        names = [f.name for f in spec.fields]
        recipes = [tuple(c) for c in itertools.combinations(names, MIN_KEY_FIELDS)][:MAX_GENERIC_KEYS]
    return recipes


def check_recipes(spec: LinkageSpec, recipes: list[tuple[str, ...]]) -> None:
    """Refuse, before any round, a spec that cannot make a single match key of three distinct fields."""
    if not recipes:
        names = [f"{f.name} ({f.kind})" for f in spec.fields]
        raise InputError(f"linkage spec: the fields {names} cannot make any match key of at least {MIN_KEY_FIELDS} "
                         "distinct fields (a key over fewer would open a frequency attack): add fields, for "
                         "example a birth date, initials or a postcode")
    known = {f.name: f.kind for f in spec.fields}
    for recipe in recipes:
        for comp in recipe:
            name, _, suffix = comp.partition(".")
            if name not in known:
                raise InputError(f"linkage spec: match key {key_name(recipe)} names '{name}', which is not a field")
            if suffix not in {s.lstrip(".") for s in COMPONENTS[known[name]]}:
                raise InputError(f"linkage spec: match key {key_name(recipe)}: a field of kind '{known[name]}' has no "
                                 f"component '.{suffix}' (it has {[name + s for s in COMPONENTS[known[name]]]})")


def key_fields(recipe: tuple[str, ...]) -> set[str]:
    """The distinct fields a key combines (``surname`` and ``surname.phon`` are one field)."""
    return {comp.partition(".")[0] for comp in recipe}


def check_key_fields(recipes: list[tuple[str, ...]], minimum: int, station: str | None = None) -> None:
    """Refuse a match key over fewer than ``minimum`` distinct fields (it would open a frequency attack)."""
    for recipe in recipes:
        if len(key_fields(recipe)) < minimum:
            raise PrivacyError(f"match key {key_name(recipe)} combines {len(key_fields(recipe))} distinct fields; "
                               f"the node policy requires at least {minimum} per key (min_key_fields)",
                               station=station)


def key_name(recipe: tuple[str, ...]) -> str:
    return "+".join(recipe)


def key_strings(components: pd.DataFrame, recipes: list[tuple[str, ...]]) -> dict[str, list[str | None]]:
    """Per recipe, one string per record (None where a component is missing)."""
    out: dict[str, list[str | None]] = {}
    present_of: dict[str, np.ndarray] = {}
    for recipe in recipes:
        missing = [c for c in recipe if c not in components.columns]
        if missing:
            raise KeyError(f"match key {key_name(recipe)} uses unknown component(s) {missing}")
        name = key_name(recipe)
        # a component is present only as a string (None, NaN or pandas' NA all mean missing)
        present = np.ones(len(components), bool)
        text = pd.Series(name + "|", index=components.index, dtype=object)
        for i, c in enumerate(recipe):
            if c not in present_of:
                present_of[c] = components[c].notna().to_numpy(bool)
            present &= present_of[c]
            text = text + ("" if i == 0 else "\x1f") + components[c].where(present, "")
        out[name] = np.where(present, text.to_numpy(dtype=object), None).tolist()
    return out

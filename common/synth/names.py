"""Dutch name and postcode pools for the synthetic population.

Faker's nl_NL word lists are used as static vocabularies only; all sampling goes through one
numpy Generator so a seed fully determines the data (Faker's own RNG is never touched).
"""

from __future__ import annotations

import re

import numpy as np
from faker.providers.person.nl_NL import Provider as _NlPerson

# Surname prefixes (tussenvoegsels) and how often each occurs among prefixed names.
PREFIXES: tuple[str, ...] = ("van", "de", "van der", "van den", "van de", "ter", "ten", "den", "van 't")
_PREFIX_WEIGHTS = np.array([0.30, 0.28, 0.14, 0.09, 0.08, 0.03, 0.03, 0.02, 0.03])
PREFIX_SHARE = 0.25
VECTOR_THRESHOLD = 100_000  # above this many people, sample with whole-array draws

# Letters never used as the two letters of a Dutch postcode pair.
_BAD_PAIRS = {"SA", "SD", "SS"}
_POSTCODE_LETTERS = np.array(list("ABCDEFGHJKLMNPRSTVWXZ"))  # I, O, Q, U, Y avoided, as PostNL does

_PREFIX_RE = re.compile(r"^(van der|van den|van de|van 't|van|de|ter|ten|den) (.+)$", re.IGNORECASE)
_BASE_RE = re.compile(r"^[A-Z][a-zéëïöü]+$")


def _surname_bases() -> list[str]:
    """Single-word surname stems from Faker's list; prefixes are re-attached by us at a controlled rate."""
    bases: set[str] = set()
    for name in _NlPerson.last_names:
        m = _PREFIX_RE.match(name)
        stem = m.group(2) if m else name
        if _BASE_RE.match(stem) and len(stem) >= 3:
            bases.add(stem)
    return sorted(bases)


SURNAME_BASES: tuple[str, ...] = tuple(_surname_bases())


def _initial_weights(names: tuple[str, ...] | list[str]) -> tuple[np.ndarray, np.ndarray]:
    letters = np.array([n[0].upper() for n in names if n and n[0].isalpha()])
    uniq, counts = np.unique(letters, return_counts=True)
    return uniq, counts / counts.sum()


_INIT_M = _initial_weights(list(_NlPerson.first_names_male))
_INIT_F = _initial_weights(list(_NlPerson.first_names_female))


SURNAME_MODES = ("dutch", "concentrated")
CONCENTRATED_TOP = 30          # in "concentrated" mode, this many surnames ...
CONCENTRATED_SHARE = 0.80      # ... cover this share of people


def surname_weights(rng: np.random.Generator, mode: str = "dutch") -> np.ndarray:
    """Stem probabilities in a random rank order: Zipf-like ("dutch"), or a few dozen stems covering
    most people ("concentrated", as in populations where a handful of family names dominate)."""
    if mode not in SURNAME_MODES:
        raise ValueError(f"surnames must be one of {list(SURNAME_MODES)}, got {mode!r}")
    k = len(SURNAME_BASES)
    rank = rng.permutation(k)
    w = 1.0 / (rank + 8.0) ** 0.9
    if mode == "concentrated":
        top = rank < CONCENTRATED_TOP
        head = 1.0 / (rank[top] + 3.0) ** 0.7
        w = np.where(top, 0.0, w)
        w = w / w.sum() * (1 - CONCENTRATED_SHARE)
        w[top] = head / head.sum() * CONCENTRATED_SHARE
    return w / w.sum()


def sample_surnames(rng: np.random.Generator, n: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw (prefix, stem) pairs; stem frequencies are Zipf-like so common names repeat, as in reality.

    ``weights`` (from :func:`surname_weights`) fixes the stem distribution, so that registry and GP
    people share it; without it a fresh Zipf-like ranking is drawn.
    """
    k = len(SURNAME_BASES)
    if weights is None:
        rank = rng.permutation(k)
        w = 1.0 / (rank + 8.0) ** 0.9
    else:
        w = weights
    stems = np.array(SURNAME_BASES, dtype=object)[rng.choice(k, size=n, p=w / w.sum())]
    has_prefix = rng.random(n) < PREFIX_SHARE
    prefixes = np.where(has_prefix, rng.choice(np.array(PREFIXES, dtype=object), size=n, p=_PREFIX_WEIGHTS), "")
    return prefixes.astype(object), stems


def full_surname(prefix: str, stem: str) -> str:
    return f"{prefix} {stem}" if prefix else stem


def sample_initials(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    """Initial letters (no dots) per person: 1-3 initials, first-letter frequencies of Dutch first names."""
    n = len(male)
    count = rng.choice([1, 2, 3], size=n, p=[0.40, 0.42, 0.18])
    out = np.empty(n, dtype=object)
    if n > VECTOR_THRESHOLD:  # large populations: one draw per sex and position (a different stream)
        for sex, (letters, p) in ((True, _INIT_M), (False, _INIT_F)):
            idx = np.flatnonzero(male == sex)
            draws = rng.choice(letters, size=(len(idx), 3), p=p)
            for row, c in zip(idx, range(len(idx))):
                out[row] = "".join(draws[c, :count[row]])
        return out
    for i in range(n):
        letters, p = _INIT_M if male[i] else _INIT_F
        out[i] = "".join(rng.choice(letters, size=count[i], p=p))
    return out


def random_letter(rng: np.random.Generator) -> str:
    letters, p = _INIT_M
    return str(rng.choice(letters, p=p))


def sample_postcodes(rng: np.random.Generator, n: int, areas: np.ndarray | None = None) -> np.ndarray:
    """Canonical postcodes '1234AB'; ``areas`` fixes the 4-digit part when given."""
    if areas is None:
        areas = rng.integers(1000, 10000, size=n)
    if n > VECTOR_THRESHOLD:
        letters = rng.choice(_POSTCODE_LETTERS, size=(n, 2))
        pairs = np.char.add(letters[:, 0], letters[:, 1])
        bad = np.isin(pairs, list(_BAD_PAIRS))
        while bad.any():
            redo = rng.choice(_POSTCODE_LETTERS, size=(int(bad.sum()), 2))
            pairs[bad] = np.char.add(redo[:, 0], redo[:, 1])
            bad = np.isin(pairs, list(_BAD_PAIRS))
        return np.array([f"{int(a):04d}{p}" for a, p in zip(areas, pairs)], dtype=object)
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = f"{int(areas[i]):04d}{postcode_letters(rng)}"
    return out


def postcode_letters(rng: np.random.Generator) -> str:
    while True:
        pair = "".join(rng.choice(_POSTCODE_LETTERS, size=2))
        if pair not in _BAD_PAIRS:
            return pair


def postcode_letter_alphabet() -> np.ndarray:
    return _POSTCODE_LETTERS

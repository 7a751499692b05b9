"""Record-level corruptions of quasi-identifiers, as seen when a GP copies registry-like data.

Each function returns a value that is guaranteed to differ from its input (after the usual
normalisation), so the error log is exact: a flagged error is a real disagreement.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from lancelot.synth.names import postcode_letter_alphabet, postcode_letters, random_letter

# Per-record probabilities at error_level "default"; "low" halves and "high" doubles them; "heavy"
# multiplies them by 3.5, so that about 28% of records carry two or more errors in different fields
# (and 7% three or more), with more missing values.
DEFAULT_RATES: dict[str, float] = {
    "surname_typo": 0.08,
    "prefix_changed": 0.10,  # among records whose surname has a prefix
    "initials_differ": 0.05,
    "birth_swap": 0.03,  # among records where day and month are both <= 12 and differ
    "birth_typo": 0.03,
    "postcode_moved": 0.06,
    "postcode_typo": 0.03,
    "sex_missing": 0.01,
    "postcode_missing": 0.02,
}
LEVELS: dict[str, float] = {"low": 0.5, "default": 1.0, "high": 2.0, "heavy": 3.5}

_LOWER = "abcdefghijklmnopqrstuvwxyz"


def rates_for(level: str) -> dict[str, float]:
    if level not in LEVELS:
        raise ValueError(f"error_level must be one of {sorted(LEVELS)}, got {level!r}")
    return {k: min(1.0, v * LEVELS[level]) for k, v in DEFAULT_RATES.items()}


def typo(rng: np.random.Generator, word: str) -> str:
    """One insert/delete/substitute/transpose edit; result always differs (case-insensitively)."""
    for _ in range(50):
        kind = rng.integers(4)
        n = len(word)
        pos = int(rng.integers(1, n)) if n > 1 else 0  # keep the first letter most of the time
        if rng.random() < 0.1:
            pos = 0
        ch = _LOWER[rng.integers(26)]
        if kind == 0:
            out = word[:pos] + ch + word[pos:]
        elif kind == 1 and n > 3:
            out = word[:pos] + word[pos + 1:]
        elif kind == 2:
            out = word[:pos] + (ch.upper() if pos == 0 else ch) + word[pos + 1:]
        elif kind == 3 and n > 2:
            p = min(pos, n - 2)
            out = word[:p] + word[p + 1] + word[p] + word[p + 2:]
            if p == 0:
                out = out[0].upper() + out[1:].lower()
        else:
            continue
        if out.lower() != word.lower():
            return out
    return word + "e"


def change_prefix(rng: np.random.Generator, prefix: str, stem: str) -> str:
    """GP systems often drop the tussenvoegsel or file it after the stem ('Berg, van der')."""
    r = rng.random()
    if r < 0.5:
        return stem
    if r < 0.85:
        return f"{stem}, {prefix}"
    return f"{stem} {prefix}"


def change_initials(rng: np.random.Generator, letters: str) -> str:
    """Only the first initial kept, one dropped, one substituted or one added; result differs."""
    for _ in range(50):
        r = rng.random()
        if r < 0.4 and len(letters) > 1:
            out = letters[0]
        elif r < 0.55 and len(letters) > 1:
            out = letters[:-1]
        elif r < 0.8:
            i = int(rng.integers(len(letters)))
            out = letters[:i] + random_letter(rng) + letters[i + 1:]
        else:
            out = letters + random_letter(rng)
        if out != letters:
            return out
    return letters + "X"


def swap_day_month(d: dt.date) -> dt.date:
    return dt.date(d.year, d.day, d.month)


def can_swap(d: dt.date) -> bool:
    return d.day <= 12 and d.month <= 12 and d.day != d.month


def date_digit_typo(rng: np.random.Generator, d: dt.date) -> dt.date:
    """One mistyped digit in DD-MM-YYYY (day, month or last two year digits); always a valid, other date."""
    s = d.strftime("%d%m%Y")
    positions = [0, 1, 2, 3, 6, 7]
    for _ in range(100):
        p = positions[int(rng.integers(len(positions)))]
        new = str(int(rng.integers(10)))
        if new == s[p]:
            continue
        t = s[:p] + new + s[p + 1:]
        try:
            out = dt.date(int(t[4:]), int(t[2:4]), int(t[:2]))
        except ValueError:
            continue
        if out != d and 1900 <= out.year <= 2020:
            return out
    return d + dt.timedelta(days=1)


def moved_postcode(rng: np.random.Generator, pc: str) -> str:
    """A move: new letters in the same 4-digit area (same neighbourhood) or a nearby area."""
    area = int(pc[:4])
    for _ in range(50):
        if rng.random() < 0.5:
            new_area = area
        else:
            new_area = int(np.clip(area + rng.integers(1, 31) * rng.choice([-1, 1]), 1000, 9999))
        out = f"{new_area:04d}{postcode_letters(rng)}"
        if out != pc:
            return out
    return pc


def postcode_letter_typo(rng: np.random.Generator, pc: str) -> str:
    alphabet = postcode_letter_alphabet()
    i = 4 + int(rng.integers(2))
    for _ in range(50):
        c = str(rng.choice(alphabet))
        if c != pc[i]:
            return pc[:i] + c + pc[i + 1:]
    return pc

"""The match model: Fellegi-Sunter over what the coordinator actually observes, which match keys agree.

Each field of a pair is in one *state*: the set of its components that agree (``birth_date`` with
``birth_date.ym`` and ``birth_date.y`` agreeing and the rest not is a day typo; an empty set is a
disagreement or a missing value). A match key agrees exactly when every component it holds agrees,
so the state of every field determines the pattern of agreeing keys. The coordinator sees only the
pattern; the model sums over every combination of field states that produces it:

    P(pattern | class) = sum over state vectors s of  P(pattern | s) * prod_f P(s_f | class)

``P(pattern | s)`` is 1 when the keys ``s`` makes agree are the keys that agree, up to small error
rates: a key that should agree may have been dropped as a frequent value at a station (the rate
the stations report per key), and a key may agree where the states say it should not (a
phonetic code equal for two different first letters, say; 1e-7). Because the sum runs over all
states, "the postcode sits only in keys that failed for another reason" is not mistaken for
"the postcode disagrees": where the pattern pins the postcode down (one key with it fails while a
key with all its other components agrees) the model reads a disagreement, elsewhere it averages.

u-probabilities (the state distribution of two records drawn at random) are not estimated by EM:
each station counts them exactly over all pairs of its own records (:func:`station_state_counts`,
aggregates only), and the coordinator combines the two stations. EM over every hub x other pair
(candidates as unique patterns, the rest as the pattern "no key agrees", which the model knows can
hide a shared surname) then estimates the m-probabilities and the share of matches, so the prior
fits the population sizes and match probabilities are population posteriors: among pairs scored
p, a fraction p is a match when the model holds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .spec import LinkageSpec

# States every field kind can be in for a match, in component suffixes (projected on the components
# the keys use); the stations' counts add any other state that occurs among their own records.
STATE_TEMPLATES: dict[str, list[set[str]]] = {
    "string": [{"full", "", "phon", "first"}, {"", "phon", "first"}, {"phon", "first"}, {"first"}, {"phon"}, set()],
    "name": [{"", "phon", "first", "f3"}, {"phon", "first", "f3"}, {"phon", "first"}, {"first", "f3"}, {"first"},
             {"phon"}, set()],
    "initials": [{"", "first"}, {"first"}, set()],
    "address": [{"", "street", "number"}, {"street"}, {"number"}, set()],
    "id": [{"", "a", "b"}, {"a"}, {"b"}, set()],
    "date": [{"", "y", "ym", "yd", "md", "sorted"}, {"y", "ym"}, {"y", "yd"}, {"md"}, {"y", "sorted"}, {"y"}, set()],
    "postcode": [{"", "pc4"}, {"pc4"}, set()],
    "category": [{""}, set()],
    "exact": [{""}, set()],
}
MAX_STATE_VECTORS = 60000
EPS_AGREE = 1e-7          # a key agrees although the states say it cannot
PRIOR_STRENGTH = 0.01
MIN_DROP = 1e-4           # floor on the rate at which a key that should agree is missing


def _suffix(component: str) -> str:
    return component.partition(".")[2]


def _field(component: str) -> str:
    return component.partition(".")[0]


def used_components(recipes: list[tuple[str, ...]], spec: LinkageSpec) -> dict[str, list[str]]:
    """Per field (in spec order), the sorted components that some match key uses."""
    out: dict[str, set[str]] = {f.name: set() for f in spec.fields}
    for recipe in recipes:
        for comp in recipe:
            if _field(comp) in out:
                out[_field(comp)].add(comp)
    return {name: sorted(comps) for name, comps in out.items() if comps}


# ---------------------------------------------------------------------------------------------
# station side: exact state counts over all pairs of the station's own records (aggregates only)
# ---------------------------------------------------------------------------------------------
def _codes(values: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64)


def _pairs_agreeing(codes: list[np.ndarray]) -> int:
    """Number of unordered pairs of records that agree (and are present) on every given component."""
    present = np.ones(len(codes[0]), bool)
    for c in codes:
        present &= c >= 0
    if not present.any():
        return 0
    combined = codes[0][present]
    for c in codes[1:]:
        combined = combined * (int(c.max()) + 2) + c[present]
        combined = pd.factorize(combined)[0].astype(np.int64)  # keep the numbers small
    counts = np.bincount(combined)
    return int((counts * (counts - 1) // 2).sum())


def station_state_counts(components: pd.DataFrame, used: dict[str, list[str]]) -> dict[str, dict]:
    """Per field, the share of records where it is missing, and the share of pairs of this station's
    records where it is present in each state (a bitmask over ``used``).

    Exact: pairs agreeing on at least a set S of components are counted from value counts, and
    inclusion-exclusion gives the pairs agreeing on exactly S. Shares are rounded to 3 significant
    digits; zeros are left out.
    """
    out: dict[str, dict] = {}
    for name, comps in used.items():
        present = components[comps].notna().any(axis=1).to_numpy()
        n_all = len(components)
        n = int(present.sum())
        total = n * (n - 1) // 2
        codes = [_codes(components[c][present]) for c in comps]
        k = len(comps)
        at_least = {0: total}
        for mask in range(1, 1 << k):
            at_least[mask] = _pairs_agreeing([codes[i] for i in range(k) if mask >> i & 1])
        exactly = {}
        for mask in range(1 << k):
            value = 0
            for sup in range(1 << k):
                if sup & mask == mask:
                    value += (-1) ** (bin(sup ^ mask).count("1")) * at_least[sup]
            if value > 0:
                exactly[mask] = value
        out[name] = {"components": comps, "missing": float(f"{1 - n / max(n_all, 1):.3g}"),
                     "shares": {str(mask): float(f"{v / max(total, 1):.3g}") for mask, v in exactly.items()}}
    return out


def group_sizes(values: np.ndarray) -> np.ndarray:
    """For each element, how many elements share its value."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    return counts[inverse.ravel()]


def within_pattern_counts(columns: list[np.ndarray], max_frequency: int) -> dict:
    """Pairs of one station's records by the set of keys they share (values held by more than
    ``max_frequency`` records left out, as in blocking).

    Two records of one station are two people, so this is an empirical distribution of agreement
    patterns among non-matches that keeps what a product of fields loses: families and twins who
    share surname, birth date and household, and how concentrated the names of a population are.
    The coordinator computes it from the pseudonyms it holds (equal pseudonyms within a station's
    key column are equal key values): nothing a station does not already reveal. ``columns``: per
    key, one integer (or hashable) code per record.
    """
    n = len(columns[0]) if columns else 0
    frames = []
    for k, codes in enumerate(columns):
        size = group_sizes(codes)
        keep = (size >= 2) & (size <= max_frequency)
        df = pd.DataFrame({"v": np.asarray(codes)[keep], "i": np.flatnonzero(keep)})
        if df.empty:
            continue
        pairs = df.merge(df, on="v")
        pairs = pairs[pairs["i_x"] < pairs["i_y"]]
        frames.append(pd.DataFrame({"i": pairs["i_x"].to_numpy(), "j": pairs["i_y"].to_numpy(),
                                    "bit": np.int64(1) << k}))
    out: dict[str, float] = {}
    if frames:
        allpairs = pd.concat(frames, ignore_index=True)
        patterns = allpairs.groupby(["i", "j"], sort=False)["bit"].sum()
        out = {str(int(p)): float(c) for p, c in patterns.value_counts().items()}
    return {"pairs": n * (n - 1) // 2, "patterns": out}


PATTERN_RATE = "max"   # how the stations' within-station rates combine: "max" or "mean"


def pattern_rates(counts: list[dict]) -> dict[int, float]:
    """Per pattern, the largest (or mean) over stations of its share of within-station pairs.

    The largest: a registry rarely holds two twins, a GP practice often does, and a registry
    patient's twin is at a GP practice as often as a GP patient's is.
    """
    rates: dict[int, float] = {}
    for c in counts:
        total = max(c["pairs"], 1)
        for p, v in c["patterns"].items():
            r = v / total
            rates[int(p)] = max(rates.get(int(p), 0.0), r) if PATTERN_RATE == "max" else rates.get(int(p), 0.0) + r / len(counts)
    return rates


# ---------------------------------------------------------------------------------------------
# coordinator side
# ---------------------------------------------------------------------------------------------
@dataclass
class FieldStates:
    name: str
    components: list[str]
    masks: np.ndarray         # (S,) bitmask over components: which agree in each state
    u: np.ndarray             # (S,)
    missing: float = 0.0      # share of pairs where one record lacks the field: state 0, fixed in m and u
    template: frozenset = frozenset()   # the masks of the kind's template states (kept when pruning)

    def labels(self) -> list[str]:
        out = []
        for i, mask in enumerate(self.masks):
            agree = [c.partition(".")[2] or "exact" for j, c in enumerate(self.components) if mask >> j & 1]
            out.append("missing" if i == 0 else "+".join(agree) if agree else "none")
        return out


def combine_state_shares(spec: LinkageSpec, used: dict[str, list[str]], stats: list[dict],
                         pair_floor: float) -> list[FieldStates]:
    """u per field and state for a pair of stations: geometric mean of their shares, plus template states."""
    kinds = {f.name: f.kind for f in spec.fields}
    out = []
    for name, comps in used.items():
        index = {_suffix(c): i for i, c in enumerate(comps)}
        masks: set[int] = {0, (1 << len(comps)) - 1}
        templates = {sum(1 << index[s] for s in template if s in index) for template in STATE_TEMPLATES.get(kinds[name], [])}
        masks |= templates
        shares = []
        for st in stats:
            got = st[name]
            if got["components"] != comps:
                raise ValueError(f"stations counted different components for field '{name}'")
            shares.append({int(k): float(v) for k, v in got["shares"].items()})
            masks |= set(shares[-1])
        masks_arr = np.array(sorted(masks), dtype=np.int64)
        u = np.array([np.exp(np.mean([np.log(max(s.get(int(m), 0.0), pair_floor)) for s in shares]))
                      for m in masks_arr])
        kept = np.prod([1 - float(st[name].get("missing", 0.0)) for st in stats])
        missing = float(np.clip(1 - kept, 0.0, 0.999))
        # state 0 is "missing at one station" (no key with the field agrees, as for "none")
        out.append(FieldStates(name=name, components=comps, masks=np.concatenate([[0], masks_arr]),
                               u=np.concatenate([[missing], (1 - missing) * u / u.sum()]), missing=missing,
                               template=frozenset(templates)))
    return out


def _prune(fields: list[FieldStates]) -> list[FieldStates]:
    """Drop the rarest states until the product of state counts is small enough: first states that no
    template names (odd combinations seen among a station's own pairs), then template states."""
    for protect in (True, False):
        while np.prod([len(f.masks) for f in fields], dtype=float) > MAX_STATE_VECTORS:
            candidates = []
            for f in fields:
                full = (1 << len(f.components)) - 1
                for i in range(1, len(f.masks)):
                    if f.masks[i] in (0, full) or (protect and f.masks[i] in f.template):
                        continue
                    candidates.append((f.u[i], id(f), i, f))
            if not candidates:
                break
            _, _, i, f = min(candidates, key=lambda c: (c[0], c[1]))
            keep = np.ones(len(f.masks), bool)
            keep[i] = False
            f.masks, f.u = f.masks[keep], f.u[keep] / f.u[keep].sum()
    return fields


@dataclass
class ModelFit:
    fields: list[FieldStates]
    m: list[np.ndarray]       # per field, per state
    share: float              # share of matches among all hub x other pairs
    prob: np.ndarray          # per observed pattern (rows of ``observed``): posterior match probability
    weight: np.ndarray        # per observed pattern: log2 likelihood ratio
    expected_matches: float
    iterations: int


def _with_missing(counts: np.ndarray, missing: float) -> np.ndarray:
    """m over states from counts: the missing state (0) fixed at ``missing``, the rest shares of the remainder."""
    out = np.asarray(counts, float).copy()
    out[0] = 0.0
    out = out / max(out.sum(), 1e-300) * (1 - missing)
    out[0] = missing
    return np.maximum(out, 1e-300)


def key_agreement(fields: list[FieldStates], recipes: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """All state vectors (V x F state indices) and the keys each makes agree (V x K)."""
    grids = np.array(list(itertools.product(*[range(len(f.masks)) for f in fields])), dtype=np.int64)
    agree = np.ones((len(grids), len(recipes)), bool)
    for fi, f in enumerate(fields):
        comp_index = {c: i for i, c in enumerate(f.components)}
        masks = f.masks[grids[:, fi]]
        for k, recipe in enumerate(recipes):
            need = sum(1 << comp_index[c] for c in recipe if c in comp_index)
            if need:
                agree[:, k] &= (masks & need) == need
    return grids, agree


def fit(fields: list[FieldStates], recipes: list[tuple[str, ...]], observed: np.ndarray, counts: np.ndarray,
        n_pairs: float, drop_rates: np.ndarray, max_matches: float, iterations: int = 400,
        tol: float = 1e-9, empirical_u: np.ndarray | None = None) -> ModelFit:
    """EM for m and the match share, u fixed; ``observed`` is U x K (which keys agree), ``counts`` U.

    ``max_matches`` (the smaller station's record count) bounds the number of matches.
    ``empirical_u`` (per observed pattern, from :func:`within_pattern_counts`) raises the product
    model's non-match probability of a pattern where the stations' own pairs show it more often.
    """
    fields = _prune(fields)
    grids, agree = key_agreement(fields, recipes)
    a = agree.astype(float)
    o = observed.astype(float)
    drop = np.clip(drop_rates, MIN_DROP, 0.5)
    log_e = (o @ (a * np.log1p(-drop)[None, :] + (1 - a) * np.log(EPS_AGREE)).T
             + (1 - o) @ (a * np.log(drop)[None, :] + (1 - a) * np.log1p(-EPS_AGREE)).T)
    e = np.exp(log_e - log_e.max(axis=1, keepdims=True))      # U x V; a per-row constant cancels
    log_u = sum(np.log(np.maximum(f.u, 1e-300))[grids[:, i]] for i, f in enumerate(fields))
    pu = e @ np.exp(log_u)
    if empirical_u is not None:
        pu = np.maximum(pu, empirical_u)
    # a weak Dirichlet prior on m (mean: 90% full agreement, 2% none, the rest spread), worth 1% of
    # the largest possible number of matches: it decides only what the data cannot (a field that
    # every key holds has matches that disagree on it unobservable, so their share is not identified)
    prior = []
    for f in fields:
        full = (1 << len(f.components)) - 1
        mean = np.where(f.masks == full, 0.9, np.where(f.masks == 0, 0.02, 0.08 / max(len(f.masks) - 3, 1)))
        mean[0] = 0.0                    # the missing state is fixed
        prior.append(PRIOR_STRENGTH * max_matches * mean / mean.sum())
    m = [_with_missing(p_, f.missing) for p_, f in zip(prior, fields)]
    max_share = min(0.5, max_matches / n_pairs) if n_pairs else 0.5
    share = float(np.clip(0.5 * max_share, 1e-15, max_share))
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        log_m = sum(np.log(mf)[grids[:, i]] for i, mf in enumerate(m))
        pi_m = np.exp(log_m)
        pm = e @ pi_m
        post = share * pm / (share * pm + (1 - share) * pu)
        w = counts * post
        expected = pi_m * (e.T @ (w / np.maximum(pm, 1e-300)))   # expected state vectors among matches
        new_m = []
        for i, f in enumerate(fields):
            c = np.bincount(grids[:, i], weights=expected, minlength=len(f.masks)) + prior[i]
            new_m.append(_with_missing(c, f.missing))
        new_share = float(np.clip(w.sum() / n_pairs, 1e-15, max_share))
        change = max(abs(new_share - share) / share, max(np.abs(a_ - b_).max() for a_, b_ in zip(new_m, m)))
        m, share = new_m, new_share
        if change < tol:
            break
    log_m = sum(np.log(mf)[grids[:, i]] for i, mf in enumerate(m))
    pm = e @ np.exp(log_m)
    odds = np.log(share) - np.log1p(-share) + np.log(pm) - np.log(pu)
    prob = 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))
    weight = (np.log(pm) - np.log(pu)) / np.log(2)
    return ModelFit(fields=fields, m=m, share=share, prob=prob, weight=weight, expected_matches=share * n_pairs,
                    iterations=it)

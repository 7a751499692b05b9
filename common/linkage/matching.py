"""Coordinator-side matching on pseudonymised match keys (Fellegi-Sunter over which keys agree).

Input: for each match key, one pseudonym per record at the hub and at the other station (random
dummies where a key is missing or too frequent). Pairs that share at least one pseudonym are the
candidates (blocking: the cost is linear in the records, not n*m). Each candidate gets an agreement
pattern (which keys agree); the model of :mod:`.model` turns patterns into match probabilities,
with u-probabilities the stations counted over their own records and m-probabilities and the
share of matches estimated by EM over all n*m pairs. Candidates are then assigned one-to-one,
greedily by match probability, above a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import model
from .model import FieldStates


@dataclass
class MatchResult:
    hub_rows: np.ndarray      # positions in the hub's (shuffled) order
    other_rows: np.ndarray    # positions in the other station's (shuffled) order
    probability: np.ndarray   # posterior match probability of each accepted pair
    weight: np.ndarray        # log2 likelihood ratio of each accepted pair
    patterns: np.ndarray      # agreement bitmask of each accepted pair
    m: list[np.ndarray]       # EM m-probabilities per field and state
    u: list[np.ndarray]       # u-probabilities per field and state (from the stations' own pairs)
    states: list[list[str]]   # per field, the state labels (which components agree)
    state_fields: list[str]   # the fields with states (those some match key uses)
    match_share: float        # EM share of matches among all n*m pairs
    n_candidates: int
    n_hub: int
    n_other: int
    expected_precision: float
    expected_recall: float
    similarity_links: int = 0                 # links made by the residue's similarity step (pattern 0: no key)
    similarity_levels: list[float] | None = None   # the Dice levels' lower edges
    similarity_m: np.ndarray | None = None    # per Dice level, among matches that share no key
    similarity_u: np.ndarray | None = None    # per Dice level, among pairs of one station's own records


def int_keys(points: np.ndarray) -> np.ndarray:
    """First 8 bytes of each pseudonym as an integer: a fast join key (full bytes are re-checked)."""
    raw = np.ascontiguousarray(points).view(np.uint8).reshape(len(points), -1)[:, :8]
    return raw.copy().view("<i8").ravel()


def candidate_pairs(hub: list[np.ndarray], other: list[np.ndarray], max_frequency: int) -> pd.DataFrame:
    """Pairs agreeing on at least one key, with their agreement bitmask (bit k = key k agrees)."""
    frames = []
    for k, (a, b) in enumerate(zip(hub, other)):
        da = pd.DataFrame({"v": int_keys(a), "i": np.arange(len(a))})
        db = pd.DataFrame({"v": int_keys(b), "j": np.arange(len(b))})
        # values shared by too many records are too unspecific to block on (and would blow up n*m)
        da = da[model.group_sizes(da["v"].to_numpy()) <= max_frequency]
        db = db[model.group_sizes(db["v"].to_numpy()) <= max_frequency]
        merged = da.merge(db, on="v")
        if merged.empty:
            continue
        same = a[merged["i"].to_numpy()] == b[merged["j"].to_numpy()]
        merged = merged[same]
        frames.append(pd.DataFrame({"i": merged["i"].to_numpy(), "j": merged["j"].to_numpy(),
                                    "bit": np.int64(1) << k}))
    if not frames:
        return pd.DataFrame({"i": np.array([], dtype=int), "j": np.array([], dtype=int),
                             "pattern": np.array([], dtype=np.int64)})
    allpairs = pd.concat(frames, ignore_index=True)
    out = allpairs.groupby(["i", "j"], sort=False)["bit"].sum().reset_index()
    return out.rename(columns={"bit": "pattern"})


def _bits(patterns: np.ndarray, n_keys: int) -> np.ndarray:
    return ((patterns[:, None] >> np.arange(n_keys)[None, :]) & 1).astype(np.int64)


def match(hub: list[np.ndarray], other: list[np.ndarray], recipes: list[tuple[str, ...]],
          fields: list[FieldStates], drop_rates: np.ndarray, threshold: float = 0.5,
          max_frequency: int = 5, pattern_rates: dict[int, float] | None = None) -> MatchResult:
    """Match two stations' pseudonymised keys with the model of :mod:`.model`."""
    n_hub, n_other = len(hub[0]), len(other[0])
    cand = candidate_pairs(hub, other, max_frequency)
    pat = cand["pattern"].to_numpy(dtype=np.int64)
    uniq, inverse, counts = np.unique(pat, return_inverse=True, return_counts=True)
    n_pairs = float(n_hub) * float(n_other)
    all_patterns = np.concatenate([[0], uniq])
    all_counts = np.concatenate([[max(n_pairs - len(cand), 0.0)], counts.astype(float)])
    observed = _bits(all_patterns, len(recipes)).astype(bool)
    empirical = None
    if pattern_rates is not None:
        empirical = np.array([pattern_rates.get(int(p), 0.0) for p in all_patterns])
        empirical[0] = 0.0
    ci, cj = cand["i"].to_numpy(), cand["j"].to_numpy()

    def scored(empirical_u: np.ndarray | None, matched_ratio: np.ndarray | None = None):
        """The model fitted with these non-match rates; each candidate's weight and one-to-one probability."""
        fit = model.fit(fields, recipes, observed, all_counts, n_pairs, drop_rates, max_matches=min(n_hub, n_other),
                        empirical_u=empirical_u)
        w = fit.weight[1:][inverse]
        ratio = None if matched_ratio is None else (matched_ratio[0][inverse], matched_ratio[1][inverse])
        return fit, w, one_to_one_posterior(ci, cj, w, fit.share, fit.weight[0], n_hub, n_other, ratio)

    fitted, weight, prob = scored(empirical)
    beside = beside_sure_links(ci, cj, inverse, prob, len(uniq), n_hub, n_other)
    if beside is not None:   # refit with the non-matches seen beside near-certain links
        rates = np.concatenate([[0.0], beside[0]])
        fitted, weight, prob = scored(rates if empirical is None else np.maximum(empirical, rates), beside[1])
    # one-to-one: greedy by probability (then weight), each record used at most once
    order = np.lexsort((-weight, -prob))
    keep = _greedy(order, ci, cj, prob, threshold, n_hub, n_other)
    accepted_prob = prob[keep] if len(keep) else np.array([])
    precision = float(accepted_prob.mean()) if len(keep) else float("nan")
    expected = fitted.expected_matches
    recall = float(min(1.0, accepted_prob.sum() / expected)) if expected > 0 else float("nan")
    return MatchResult(hub_rows=ci[keep], other_rows=cj[keep], probability=accepted_prob,
                       weight=weight[keep] if len(keep) else np.array([]), patterns=pat[keep] if len(keep) else
                       np.array([], dtype=np.int64), m=fitted.m, u=[f.u for f in fitted.fields],
                       states=[f.labels() for f in fitted.fields], state_fields=[f.name for f in fitted.fields],
                       match_share=fitted.share, n_candidates=len(cand), n_hub=n_hub, n_other=n_other,
                       expected_precision=precision, expected_recall=recall)


def add_residue_links(m: MatchResult, fit) -> MatchResult:
    """The key links plus the residue's links (:func:`.similarity.residue_match`); their key pattern is 0."""
    from dataclasses import replace

    from .similarity import LEVELS

    probability = np.concatenate([m.probability, fit.probability])
    expected = m.match_share * float(m.n_hub) * float(m.n_other)
    return replace(m, hub_rows=np.concatenate([m.hub_rows, fit.hub_rows]),
                   other_rows=np.concatenate([m.other_rows, fit.other_rows]), probability=probability,
                   weight=np.concatenate([m.weight, fit.weight]),
                   patterns=np.concatenate([m.patterns, np.zeros(len(fit.hub_rows), np.int64)]),
                   expected_precision=float(probability.mean()),
                   expected_recall=float(min(1.0, probability.sum() / expected)) if expected > 0 else float("nan"),
                   similarity_links=len(fit.hub_rows), similarity_levels=[float(x) for x in LEVELS[:-1]],
                   similarity_m=fit.m, similarity_u=fit.u)


SURE = 0.999         # a link this probable makes its records' other candidates non-matches
MIN_SURE = 100       # records with a sure link needed before their neighbours are counted


def beside_sure_links(ci: np.ndarray, cj: np.ndarray, inverse: np.ndarray, prob: np.ndarray, n_patterns: int,
                      n_hub: int, n_other: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per candidate pattern, its rate per pair among cross-station non-matches, read off the other
    candidates of records that have a near-certain link (one-to-one: those are not their matches);
    and, per pattern and side (hub, other), how much likelier such a non-match's record on that side is
    to have a match of its own than a record of that station at large (1: independent).

    A registry patient's relatives and look-alikes at a GP practice (same surname, birth date and
    address, another first name) are not as frequent per pair as two of the practice's own patients
    who are related, the within-station rate: how many there are depends on who the registry holds
    and on the practice's size. Records with a sure link show them directly; so does the other side.
    Whether those look-alikes have matches of their own tells the one-to-one posterior whether a lone
    pair of their pattern is the usual pair of unmatched records or a rarer one.
    None when too few records have a sure link."""
    sure = prob >= SURE
    out = np.zeros(n_patterns)
    matched_ratio = np.ones((2, n_patterns))
    used = False
    anchored_on = {}
    for side, (rows, n_own) in enumerate(((ci, n_hub), (cj, n_other))):
        anchored = np.zeros(n_own, bool)
        anchored[rows[sure]] = True
        anchored_on[side] = anchored
    for side, (rows, other_rows, n_opposite) in enumerate(((ci, cj, n_other), (cj, ci, n_hub))):
        anchored, opposite = anchored_on[side], anchored_on[1 - side]
        n_anchored = int(anchored.sum())
        if n_anchored < MIN_SURE:
            continue
        beside = anchored[rows] & ~sure
        counts = np.bincount(inverse[beside], minlength=n_patterns).astype(float)
        out = np.maximum(out, counts / (float(n_anchored) * float(n_opposite)))
        # the opposite records of these non-matches: how often they have a sure link of their own, against
        # the share of the opposite station's records that do (shrunk towards independence when few)
        base = max(float(opposite.mean()), 1e-12)
        linked = np.bincount(inverse[beside], weights=opposite[other_rows[beside]].astype(float), minlength=n_patterns)
        matched_ratio[1 - side] = (linked + PRIOR_PAIRS * base) / ((counts + PRIOR_PAIRS) * base)
        used = True
    return (out, matched_ratio) if used else None


PRIOR_PAIRS = 20     # pseudo-pairs of independence behind each pattern's matched ratio


def one_to_one_posterior(ci: np.ndarray, cj: np.ndarray, weight: np.ndarray, share: float, weight_none: float,
                         n_hub: int, n_other: int, matched_ratio: tuple[np.ndarray, np.ndarray] | None = None
                         ) -> np.ndarray:
    """Match probability of each candidate pair given every pair of its two records, not its pattern alone.

    A record has at most one match: a hub record has one with probability rho_h = matches / n_hub,
    somewhere among the other station's records. Given all pairs of hub record i, the odds that j is
    its match are share * BF_ij / D_i, with D_i = (1 - rho_h) + rho_h * BF_0 (its match hides among
    the pairs no key joins) + share * (sum of BF over i's other candidates); likewise E_j for the other
    record. Combining both (one pass of belief propagation on the matching): odds = share * BF / (D_i E_j).
    A pair whose records have no other candidate gains (the hub record's likely match has nowhere else
    to be); a pair with a strong competitor loses. The pairwise posterior (D = E = 1) ignores both and
    understates links where most records have a match.

    ``matched_ratio`` (per candidate, hub side and other side; from :func:`beside_sure_links`): how much
    likelier than a station's record at large the record of a non-match pair of this pattern is to have
    a match elsewhere, r. The terms become (1 - rho r) + rho r BF_0: where such non-matches are records
    without a match (r = 0, look-alikes of the other station's patients), a lone pair gains nothing from
    its record's having no other candidate.
    """
    if len(ci) == 0:
        return np.array([], float)
    matches = share * float(n_hub) * float(n_other)
    rho_h, rho_o = min(matches / n_hub, 0.999), min(matches / n_other, 0.999)
    r_h, r_o = (np.ones(len(ci)), np.ones(len(ci))) if matched_ratio is None else matched_ratio
    r_h, r_o = np.minimum(r_h, 1.0 / rho_h), np.minimum(r_o, 1.0 / rho_o)
    bf0 = 2.0 ** float(weight_none)
    term = share * np.exp2(np.minimum(weight, 1000.0))        # share * BF of each candidate pair
    row = np.bincount(ci, weights=term, minlength=n_hub)[ci] - term
    col = np.bincount(cj, weights=term, minlength=n_other)[cj] - term
    d = (1 - rho_h * r_h) + rho_h * r_h * bf0 + row
    e = (1 - rho_o * r_o) + rho_o * r_o * bf0 + col
    log_odds = np.log(np.maximum(term, 1e-300)) - np.log(np.maximum(d, 1e-300)) - np.log(np.maximum(e, 1e-300))
    return 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))


def _greedy(order: np.ndarray, ci: np.ndarray, cj: np.ndarray, prob: np.ndarray, threshold: float,
            n_hub: int, n_other: int) -> np.ndarray:
    used_i = np.zeros(n_hub, bool)
    used_j = np.zeros(n_other, bool)
    keep = []
    for idx in order:
        if prob[idx] < threshold:
            break
        i, j = ci[idx], cj[idx]
        if used_i[i] or used_j[j]:
            continue
        used_i[i] = used_j[j] = True
        keep.append(idx)
    return np.array(keep, dtype=int)

"""Coordinator-side matching on pseudonymised match keys (Fellegi-Sunter over field agreement).

Input: for each match key, one 32-byte pseudonym per record at the hub and at the other
station (random dummies where a key is missing). Pairs that share at least one pseudonym are
the candidates (blocking: the cost is linear in the records, not n*m). Each candidate gets an
agreement pattern (which keys agree). Keys overlap (most contain the birth date), so treating
them as independent evidence would count one disagreeing field many times over; instead the
pattern is turned into an agreement level per field (2: some agreeing key holds the field
exactly, 1: only a fuzzy form such as phonetic or day/month-sorted, 0: no agreeing key holds
it), and m/u-probabilities per field and level are estimated by EM over all n*m pairs (pairs
that agree on nothing enter as one weighted pattern). Candidates are then assigned one-to-one,
greedily by match probability, above a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class MatchResult:
    hub_rows: np.ndarray      # positions in the hub's (shuffled) order
    other_rows: np.ndarray    # positions in the other station's (shuffled) order
    probability: np.ndarray   # posterior match probability of each accepted pair
    weight: np.ndarray        # log2 likelihood ratio of each accepted pair
    patterns: np.ndarray      # agreement bitmask of each accepted pair
    m: np.ndarray             # EM m-probabilities per field and agreement level
    u: np.ndarray             # EM u-probabilities per field and agreement level
    match_share: float        # EM share of matches among all n*m pairs
    n_candidates: int
    n_hub: int
    n_other: int
    expected_precision: float
    expected_recall: float


def _as_int_keys(points: np.ndarray) -> np.ndarray:
    """First 8 bytes of each pseudonym as an integer: a fast join key (full bytes are re-checked)."""
    raw = np.ascontiguousarray(points).view(np.uint8).reshape(len(points), -1)[:, :8]
    return raw.copy().view("<i8").ravel()


def candidate_pairs(hub: list[np.ndarray], other: list[np.ndarray], max_frequency: int) -> pd.DataFrame:
    """Pairs agreeing on at least one key, with their agreement bitmask (bit k = key k agrees)."""
    frames = []
    for k, (a, b) in enumerate(zip(hub, other)):
        da = pd.DataFrame({"v": _as_int_keys(a), "i": np.arange(len(a))})
        db = pd.DataFrame({"v": _as_int_keys(b), "j": np.arange(len(b))})
        # values shared by too many records are too unspecific to block on (and would blow up n*m)
        da = da[da.groupby("v")["v"].transform("size") <= max_frequency]
        db = db[db.groupby("v")["v"].transform("size") <= max_frequency]
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


def field_levels(patterns: np.ndarray, certifies: np.ndarray) -> np.ndarray:
    """Agreement level per field (columns) for each pattern: max level certified by an agreeing key.

    ``certifies[k, f]`` is the level key k certifies for field f when it agrees (0, 1 or 2).
    """
    g = _bits(patterns, certifies.shape[0])
    return (g[:, :, None] * certifies[None, :, :]).max(axis=1)


def em_fit(levels: np.ndarray, counts: np.ndarray, n_levels: int, prior: float,
           iterations: int = 500, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, float]:
    """Two-class latent model, fields conditionally independent given the class (Fellegi-Sunter EM).

    Returns m[f, level], u[f, level] and the share of matches among all pairs.
    """
    n_fields = levels.shape[1]
    onehot = np.zeros((len(levels), n_fields, n_levels))
    np.put_along_axis(onehot, levels[:, :, None], 1.0, axis=2)
    total = counts.sum()
    u = (onehot * counts[:, None, None]).sum(0) / total
    u = np.clip(u, 1e-12, None)
    u /= u.sum(1, keepdims=True)
    m = np.tile(np.linspace(0.05, 1.0, n_levels), (n_fields, 1))
    m /= m.sum(1, keepdims=True)
    p = prior
    for _ in range(iterations):
        log_m = (onehot * np.log(m)[None]).sum((1, 2))
        log_u = (onehot * np.log(u)[None]).sum((1, 2))
        post = 1.0 / (1.0 + np.exp(np.clip(np.log1p(-p) + log_u - np.log(p) - log_m, -700, 700)))
        w = post * counts
        wu = (1 - post) * counts
        new_p = float(np.clip(w.sum() / total, 1e-15, 0.5))
        new_m = np.clip((onehot * w[:, None, None]).sum(0) / max(w.sum(), 1e-300), 1e-6, None)
        new_m /= new_m.sum(1, keepdims=True)
        new_u = np.clip((onehot * wu[:, None, None]).sum(0) / wu.sum(), 1e-12, None)
        new_u /= new_u.sum(1, keepdims=True)
        change = max(abs(new_p - p) / p, np.abs(new_m - m).max(), np.abs(new_u - u).max())
        m, u, p = new_m, new_u, new_p
        if change < tol:
            break
    return m, u, p


def match(hub: list[np.ndarray], other: list[np.ndarray], certifies: np.ndarray, threshold: float = 0.5,
          max_frequency: int = 5) -> MatchResult:
    """Match two stations' pseudonymised keys; ``certifies`` maps key x field to the agreement level."""
    n_hub, n_other = len(hub[0]), len(other[0])
    cand = candidate_pairs(hub, other, max_frequency)
    pat = cand["pattern"].to_numpy(dtype=np.int64)
    uniq, inverse, counts = np.unique(pat, return_inverse=True, return_counts=True)
    n_pairs = float(n_hub) * float(n_other)
    all_patterns = np.concatenate([[0], uniq])
    all_counts = np.concatenate([[max(n_pairs - len(cand), 0.0)], counts.astype(float)])
    prior = min(n_hub, n_other) / n_pairs
    levels = field_levels(all_patterns, certifies)
    n_levels = int(certifies.max()) + 1
    m, u, share = em_fit(levels, all_counts, n_levels, prior)
    lv = levels[1:]
    ratio = np.log2(m / u)
    weight_u = ratio[np.arange(lv.shape[1])[None, :], lv].sum(1)
    odds = np.log(share / (1 - share)) + weight_u * np.log(2)
    prob_u = 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))
    prob, weight = prob_u[inverse], weight_u[inverse]
    # one-to-one: greedy by probability (then weight), each record used at most once
    order = np.lexsort((-weight, -prob))
    ci, cj = cand["i"].to_numpy(), cand["j"].to_numpy()
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
    keep = np.array(keep, dtype=int)
    expected_matches = share * n_pairs
    accepted_prob = prob[keep] if len(keep) else np.array([])
    precision = float(accepted_prob.mean()) if len(keep) else float("nan")
    recall = float(min(1.0, accepted_prob.sum() / expected_matches)) if expected_matches > 0 else float("nan")
    return MatchResult(hub_rows=ci[keep], other_rows=cj[keep], probability=accepted_prob,
                       weight=weight[keep] if len(keep) else np.array([]), patterns=pat[keep] if len(keep) else
                       np.array([], dtype=np.int64), m=m, u=u, match_share=share, n_candidates=len(cand),
                       n_hub=n_hub, n_other=n_other, expected_precision=precision, expected_recall=recall)

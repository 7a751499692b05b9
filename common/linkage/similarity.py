"""The similarity step for the residue: keyed Bloom-filter encodings compared at the coordinator.

Records with errors in several fields at once share no exact match key. For them each station
sends, in round 2 beside its pseudonyms, one Bloom filter per record (a "cryptographic long-term
key", Schnell et al. 2011: every field's tokens in one filter) keyed by a secret that only the two
stations of a pair share. The coordinator compares only the records that the keys left unlinked
and feeds the Dice similarity into a second match model over those pairs.

The station-pair key: each station draws a fresh X25519 key per job and states the public half in
round 1; the coordinator relays the other station's public half in round 2; both stations derive
``HKDF(X25519(own, peer), info = "lancelot-linkage-similarity|" + the two station names)``. The
coordinator relays only public halves and cannot compute the secret (computational Diffie-Hellman).

Encoding (station): tokens per field (bigrams of names, postcodes, streets and id numbers; year,
decade, month, day and the unordered day-month pair of a date; the value of a category), each
mapped to k positions of a 2048-bit filter by HMAC-SHA256 under the pair key, the field's name bound
into the message; k per field gives each field a bit budget by its role (person-specific fields
weigh more than those a household shares). The filter is XOR-folded once to 1024 bits (Schnell,
Borgs, Encarnacao 2016: the halves XORed, so a token's positions no longer show as a fixed set of
set bits, which pattern-mining attacks use). Fresh keys per job: filters of two jobs cannot be
compared. Leakage: docs/leakage/linkage.md.

Scoring (coordinator, :func:`residue_match`): Dice similarities of every residue pair, binned
into levels; the u-probabilities of the levels from pairs of each station's own residue records
(two people), the m-probabilities and the number of matches among the residue pairs by EM with u
fixed; then the one-to-one posterior and greedy assignment as for the keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..crypto.pairkey import new_exchange_key  # noqa: F401 - the stations' import
from ..crypto.pairkey import pair_key as _pair_key
from .spec import LinkageSpec

FILTER_BITS = 2048          # before folding; the coordinator receives FILTER_BITS / 2 bits (128 bytes) per record
NAME_KINDS = ("string", "name")
LEVELS = np.array([0.0, 0.5, 0.55, 0.6, 0.625, 0.65, 0.675, 0.7, 0.725, 0.75, 0.8, 0.85, 0.9, 1.01])   # Dice bins
MIN_EXPLICIT_LEVEL = 3      # pairs in this level (Dice >= 0.6) or above enter the one-to-one posterior
MAX_RESIDUE_PAIRS = 200_000_000   # residue pairs beyond this: the coordinator skips the step (warning; blocking: left)
MAX_ENCODED_PAIRS = 2_000_000_000  # a station encodes for a peer only if n_self * n_peer is at most this
_PURPOSE = "lancelot-linkage-similarity"


# ---------------------------------------------------------------------------------------------
# the station-pair key
# ---------------------------------------------------------------------------------------------
def pair_key(private_hex: str, peer_public_hex: str, names: tuple[str, str]) -> bytes:
    """The 32-byte secret of a station pair (the coordinator relays the public halves only)."""
    return _pair_key(private_hex, peer_public_hex, names, _PURPOSE)


# ---------------------------------------------------------------------------------------------
# tokens and filters (station)
# ---------------------------------------------------------------------------------------------
def name_fields(spec: LinkageSpec) -> list[str]:
    return [f.name for f in spec.fields if f.kind in NAME_KINDS]


def _bigrams(text: object) -> list[str]:
    if not isinstance(text, str) or not text:
        return []
    padded = f"_{text}_"
    return [padded[i:i + 2] for i in range(len(padded) - 1)]


def _date_tokens(ymd: object) -> list[str]:
    if not isinstance(ymd, str) or len(ymd) != 8:
        return []
    y, m, d = ymd[:4], ymd[4:6], ymd[6:]
    return [f"y{y}", f"c{y[:3]}", f"m{m}", f"d{d}", "s" + "".join(sorted((m, d)))]


def field_tokens(kind: str, name: str, components: pd.DataFrame) -> list[list[str]]:
    """Per record, the tokens of one field (from the normalised components the keys use too)."""
    col = components[name].to_numpy() if name in components else np.full(len(components), None, dtype=object)
    if kind == "date":
        make = _date_tokens
    elif kind == "postcode":
        def make(v):
            return _bigrams(v)
        pc4 = components[f"{name}.pc4"].to_numpy()
        col = np.array([v if isinstance(v, str) else (f"{a}" if isinstance(a, str) else None)
                        for v, a in zip(col, pc4)], dtype=object)
    elif kind == "address":
        street, number = components[f"{name}.street"].to_numpy(), components[f"{name}.number"].to_numpy()
        col = list(zip(street, number))

        def make(v):
            s, n = v
            return _bigrams(s) + ([f"n{n}"] if isinstance(n, str) else [])
    elif kind in ("category", "exact"):
        def make(v):
            return [f"v{v}"] if isinstance(v, str) else []
    else:   # string, name, initials, id: bigrams of the normalised value
        make = _bigrams
    cache: dict = {}
    out = []
    for v in col:
        if v not in cache:
            cache[v] = make(v)
        out.append(cache[v])
    return out


# Bits per record a field may set (its weight in the Dice similarity), by the role it fills (see
# keys._roles): person-specific fields weigh more than those a household shares (address, postcode,
# city, and the surname): one Dice number cannot otherwise tell a spouse from a record with errors.
ROLE_BUDGET = {"D": 120, "G": 90, "N": 90, "I": 40, "S": 70, "X": 15, "P": 40, "A": 40, "C": 30}
EXPECTED_TOKENS = {"string": 8, "name": 8, "initials": 3, "date": 5, "postcode": 6, "address": 12, "id": 10,
                   "category": 1, "exact": 3}


def hashes_per_field(spec: LinkageSpec) -> dict[str, int]:
    """Positions per token of each field: its role's bit budget over its expected number of tokens."""
    from .keys import _roles

    role_of = {name: role for role, name in _roles(spec).items() if role != "I" or name not in
               {n for r, n in _roles(spec).items() if r == "G"}}
    out = {}
    for f in spec.fields:
        budget = ROLE_BUDGET.get(role_of.get(f.name, ""), 40)
        out[f.name] = max(1, round(budget / EXPECTED_TOKENS.get(f.kind, 4)))
    return out


def _positions(key: bytes, field: str, tokens: list[str], bits: int, k: int) -> np.ndarray:
    """``k`` positions per token (double hashing of an HMAC-SHA256 under the pair key)."""
    out = np.empty((len(tokens), k), dtype=np.int64)
    steps = np.arange(k, dtype=np.int64)
    for t, token in enumerate(tokens):
        digest = hmac.new(key, f"{field}\x00{token}".encode(), hashlib.sha256).digest()
        h1 = int.from_bytes(digest[:8], "little") % bits
        h2 = int.from_bytes(digest[8:16], "little") % (bits - 1) + 1
        out[t] = (h1 + steps * h2) % bits
    return out


def encode(spec: LinkageSpec, components: pd.DataFrame, key: bytes) -> np.ndarray:
    """One XOR-folded Bloom filter per record (rows in the order of ``components``), packed bits:
    an (n, FILTER_BITS // 16) uint8 array."""
    n = len(components)
    filters = np.zeros((n, FILTER_BITS), dtype=bool)
    ks = hashes_per_field(spec)
    for f in spec.fields:
        per_record = field_tokens(f.kind, f.name, components)
        vocabulary = sorted({t for toks in per_record for t in toks})
        if not vocabulary:
            continue
        index = {t: i for i, t in enumerate(vocabulary)}
        table = _positions(key, f.name, vocabulary, FILTER_BITS, ks[f.name])
        rows = np.repeat(np.arange(n), [len(toks) for toks in per_record])
        ids = np.fromiter((index[t] for toks in per_record for t in toks), dtype=np.int64, count=len(rows))
        filters[rows[:, None], table[ids]] = True
    half = FILTER_BITS // 2
    folded = filters[:, :half] ^ filters[:, half:]
    return np.packbits(folded, axis=1)


def unpack_filters(text: str, n: int) -> np.ndarray:
    """A station's packed filters (base64) as an (n, FILTER_BITS // 16) uint8 array; checks the size."""
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    width = FILTER_BITS // 16
    if len(raw) != n * width:
        raise ValueError(f"expected {n} Bloom filters of {width} bytes, got {len(raw)} bytes")
    return raw.reshape(n, width)


# ---------------------------------------------------------------------------------------------
# comparison and the residue model (coordinator)
# ---------------------------------------------------------------------------------------------
if hasattr(np, "bitwise_count"):
    def _popcount(a: np.ndarray) -> np.ndarray:
        return np.bitwise_count(a)
else:   # numpy < 2.0
    _TABLE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(a: np.ndarray) -> np.ndarray:
        return _TABLE[a.view(np.uint8)].reshape(*a.shape, -1).sum(axis=-1)


def _words(packed: np.ndarray) -> np.ndarray:
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return packed.view(np.uint64)


def dice_levels(a: np.ndarray, b: np.ndarray, same: bool = False, chunk: int = 64):
    """Dice of every pair of rows of ``a`` x ``b`` (packed filters), as level counts and the pairs at
    level ``MIN_EXPLICIT_LEVEL`` or above: (counts per level, i, j, level). ``same``: pairs i < j of one set."""
    wa, wb = _words(a), _words(b)
    ca = _popcount(wa).sum(axis=1).astype(np.int64)
    cb = _popcount(wb).sum(axis=1).astype(np.int64)
    counts = np.zeros(len(LEVELS) - 1, dtype=np.int64)
    keep_i, keep_j, keep_l = [], [], []
    for start in range(0, len(wa), chunk):
        block = wa[start:start + chunk]
        inter = _popcount(block[:, None, :] & wb[None, :, :]).sum(axis=2, dtype=np.int64)
        dice = 2.0 * inter / np.maximum(ca[start:start + chunk, None] + cb[None, :], 1)
        level = np.searchsorted(LEVELS, dice, side="right") - 1
        if same:
            rows = np.arange(start, start + len(block))[:, None]
            valid = np.arange(len(wb))[None, :] > rows
            counts += np.bincount(level[valid], minlength=len(counts))
            level = np.where(valid, level, -1)
        else:
            counts += np.bincount(level.ravel(), minlength=len(counts))
        ii, jj = np.nonzero(level >= MIN_EXPLICIT_LEVEL)
        keep_i.append(ii + start)
        keep_j.append(jj)
        keep_l.append(level[ii, jj])
    return counts, *(np.concatenate(parts) for parts in (keep_i, keep_j, keep_l))


@dataclass
class ResidueFit:
    hub_rows: np.ndarray        # accepted links (positions in the shuffled orders)
    other_rows: np.ndarray
    probability: np.ndarray
    weight: np.ndarray          # log2 m/u of each accepted pair's level
    m: np.ndarray               # per Dice level
    u: np.ndarray
    expected_matches: float     # EM's number of matches among the residue pairs
    n_residue: tuple[int, int]
    n_compared: int


def residue_match(hub: np.ndarray, other: np.ndarray, hub_rows: np.ndarray, other_rows: np.ndarray,
                  threshold: float, iterations: int = 500) -> ResidueFit | None:
    """Link the residue: the records ``hub_rows`` x ``other_rows`` (those the keys left unlinked)."""
    nh, no = len(hub_rows), len(other_rows)
    if nh == 0 or no == 0:
        return None
    a, b = hub[hub_rows], other[other_rows]
    counts, ci, cj, cl = dice_levels(a, b)
    # u: Dice levels among pairs of one station's own residue records (two people)
    within = [dice_levels(x, x, same=True)[0] for x in (a, b)]
    u_parts = [np.maximum(w, 0.5) / max(w.sum(), 1) for w in within]   # half a pair where none was seen
    # the larger of the two stations' rates at the high levels (a registry rarely holds two members of a
    # household, a GP practice often does: as for the key patterns of :func:`.model.pattern_rates`)
    u = np.max(u_parts, axis=0)
    u = u / u.sum()
    n_pairs = float(nh) * float(no)
    max_matches = float(min(nh, no))
    # EM for m and the share of matches, u fixed; a weak prior on m (mean: rising with the level)
    prior_mean = np.linspace(0.2, 1.0, len(u)) ** 4
    prior = 0.01 * max_matches * prior_mean / prior_mean.sum()
    m = prior_mean / prior_mean.sum()
    share = min(0.5 * max_matches / n_pairs, 0.5)
    c = counts.astype(float)
    for _ in range(iterations):
        post = share * m / (share * m + (1 - share) * u)
        w = c * post
        new_m = (w + prior) / (w + prior).sum()
        new_share = float(np.clip(w.sum() / n_pairs, 1e-15, max_matches / n_pairs))
        change = max(abs(new_share - share) / share, float(np.abs(new_m - m).max()))
        m, share = new_m, new_share
        if change < 1e-10:
            break
    weight_levels = np.log2(np.maximum(m, 1e-300)) - np.log2(np.maximum(u, 1e-300))
    unlisted = float(m[:MIN_EXPLICIT_LEVEL].sum())   # a record's match may hide below the explicit levels
    from .matching import _greedy, one_to_one_posterior

    weight = weight_levels[cl] if len(cl) else np.array([], float)
    if len(ci):
        prob = one_to_one_posterior(ci, cj, weight, share, np.log2(max(unlisted, 1e-300)), nh, no)
        order = np.lexsort((-weight, -prob))
        keep = _greedy(order, ci, cj, prob, threshold, nh, no)
    else:
        prob, keep = np.array([], float), np.array([], int)
    return ResidueFit(hub_rows=hub_rows[ci[keep]] if len(keep) else np.array([], int),
                      other_rows=other_rows[cj[keep]] if len(keep) else np.array([], int),
                      probability=prob[keep] if len(keep) else np.array([], float),
                      weight=weight[keep] if len(keep) else np.array([], float), m=m, u=u,
                      expected_matches=share * n_pairs, n_residue=(nh, no), n_compared=int(n_pairs))

"""Cohort sums of products of two stations' columns on additive shares: no Paillier, no owner encryptions.

Why: the Paillier cross job costs one fresh key-owner encryption per row of both stations and ciphertext
group (docs/leakage/exploration-cost.md), about 9 s at 10,000 records whatever the analysis. Narrow
products (crosstabs, grouped means, correlations, histograms by group) need only a few numbers per record,
which additive sharing modulo 2^64 handles with a stream cipher and integer matrix products.

The protocol, for columns U at station a and V at station b (the coordinator C relays everything):

1. **Aligned shares.** Every station S sends C its columns split into limbs of ``limb_bits`` bits, one limb
   per 64-bit word, plus a ChaCha20 mask stream keyed by a secret it shares only with its partner P_S
   (round 2, as :mod:`.masked`). C keeps the cohort's records, in cohort order: A = U_c + M_c. P_S,
   told S's cohort positions (round 3), holds x_a = -M_c. So U_c = A + x_a, shared between C and P_a; the
   same for V: B + x_b, shared between C and P_b.
2. **Products.** U_c^T V_c = A^T B + A^T x_b + x_a^T B + x_a^T x_b. C computes A^T B. The two mixed
   terms are Beaver products between C and a station Q (:func:`open_c_side`, :func:`participant`,
   :func:`dealer`, :func:`c_share`): a third station D deals the triple (D never sees the openings), C
   opens G - alpha to Q, Q opens H - beta to C. The last term is local when P_a = P_b (three or more
   stations), otherwise a Beaver product between P_a and P_b dealt by C, whose openings travel sealed
   between the two stations (round 4).
3. **Blinding.** The two stations' shares of one pair's products carry a zero-sharing of their own
   (:func:`zero_shares`), so C learns the sum U_c^T V_c and nothing else.

Sums of limb products over the cohort stay below 2^63 (``limb_bits`` is chosen from the largest row
count), so every result is exact. Only the sums the analyses read leave the shares (:class:`Release`),
each folded from its limbs into one word by every party before it is sent when its value fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crypto.pairkey import pair_key
from ..training.shares import pack, prg, unpack

PURPOSE = "lancelot-explore-shares"
MAX_WORDS = 256                # limb words per record and station, the most a station accepts
MAX_MATRIX_BYTES = 32 << 20    # what the plan allows one station's matrix (upload, openings) to weigh
MAX_LIMB_BITS = 24


@dataclass(frozen=True)
class Layout:
    """Per column, its first word and its number of limbs; every limb is ``limb_bits`` wide."""

    limb_bits: int
    starts: tuple[int, ...]
    limbs: tuple[int, ...]

    @property
    def words(self) -> int:
        return sum(self.limbs)


def limb_bits_for(max_rows: int) -> int:
    """The widest limb whose products, summed over ``max_rows`` records, stay below 2^63."""
    bits = min(MAX_LIMB_BITS, (63 - row_bits_for(max_rows)) // 2)
    if bits < 8:
        raise ValueError("too many rows for 64-bit shared products")
    return bits


def max_words_for(max_rows: int) -> int:
    """Limb words per record the plan puts on shares: at most :data:`MAX_MATRIX_BYTES` per relayed matrix
    (256 at 12,000 rows, 34 at 120,000); wider families are cheaper under Paillier's packing."""
    return max(1, min(MAX_WORDS, MAX_MATRIX_BYTES // (8 * max(1, int(max_rows)))))


def layout(bits: list[int], limb_bits: int) -> Layout:
    limbs = [max(1, -(-max(1, int(b)) // limb_bits)) for b in bits]
    starts = tuple(int(s) for s in np.cumsum([0] + limbs[:-1]))
    return Layout(limb_bits, starts, tuple(limbs))


def encode(columns: list[np.ndarray], bits: list[int], lay: Layout) -> np.ndarray:
    """Every record's columns as limbs, one per uint64 word (refuses a value above its bits or negative)."""
    n = len(columns[0]) if columns else 0
    words = np.zeros((n, lay.words), dtype=np.uint64)
    w = lay.limb_bits
    for values, b, start, limbs in zip(columns, bits, lay.starts, lay.limbs):
        values = np.asarray(values)
        small = values.dtype != object and values.dtype.kind in "iub" and max(1, b) <= 63
        ints = None if small else [int(v) for v in values.tolist()]
        low, high = ((int(values.min()), int(values.max())) if small else (min(ints), max(ints))) if n else (0, 0)
        if low < 0 or high.bit_length() > max(1, b):
            raise ValueError("a column value does not fit the bits it was described with")
        for limb in range(limbs):
            if small:
                part = (values.astype(np.uint64) >> np.uint64(w * limb)) & np.uint64((1 << w) - 1)
            else:
                part = np.array([(v >> (w * limb)) & ((1 << w) - 1) for v in ints], dtype=np.uint64)
            words[:, start + limb] = part
    return words


@dataclass(frozen=True)
class Release:
    """The sums that leave the shares, nothing else: per requested sum (a column's total, or a column pair's
    product), its limb cells in the flattened share matrix and their weights (bits to shift), folded into one
    word by every party before sending when its exact value stays below 2^63 (then C sees only the sum, not
    per-limb sums), otherwise sent as its cells for C to recombine."""

    keys: tuple
    cells: tuple[tuple[int, ...], ...]
    shifts: tuple[tuple[int, ...], ...]
    folded: tuple[bool, ...]

    @property
    def size(self) -> int:
        return sum(1 if f else len(c) for c, f in zip(self.cells, self.folded))


def release_totals(lay: Layout, bits: list[int], columns: list[int], row_bits: int) -> Release:
    w = lay.limb_bits
    return Release(tuple(columns),
                   tuple(tuple(range(lay.starts[i], lay.starts[i] + lay.limbs[i])) for i in columns),
                   tuple(tuple(w * limb for limb in range(lay.limbs[i])) for i in columns),
                   tuple(max(1, bits[i]) + row_bits <= 63 for i in columns))


def release_products(lay_a: Layout, lay_b: Layout, bits_a: list[int], bits_b: list[int],
                     pairs: list[tuple[int, int]], row_bits: int) -> Release:
    w, kb = lay_a.limb_bits, lay_b.words
    cells, shifts = [], []
    for i, j in pairs:
        here = [((lay_a.starts[i] + la) * kb + lay_b.starts[j] + lb, w * (la + lb))
                for la in range(lay_a.limbs[i]) for lb in range(lay_b.limbs[j])]
        cells.append(tuple(c for c, _ in here))
        shifts.append(tuple(sh for _, sh in here))
    return Release(tuple(tuple(p) for p in pairs), tuple(cells), tuple(shifts),
                   tuple(max(1, bits_a[i]) + max(1, bits_b[j]) + row_bits <= 63 for i, j in pairs))


def fold(values: np.ndarray, rel: Release) -> np.ndarray:
    """A party's share of the released sums (linear, modulo 2^64, so the parties' folds add up)."""
    flat = np.asarray(values, dtype=np.uint64).ravel()
    out = []
    for cells, shifts, folded in zip(rel.cells, rel.shifts, rel.folded):
        if folded:
            weights = np.array([(1 << sh) if sh < 64 else 0 for sh in shifts], dtype=np.uint64)
            out.append((flat[list(cells)] * weights).sum(dtype=np.uint64))
        else:
            out.extend(flat[list(cells)])
    return np.array(out, dtype=np.uint64)


def unfold(vector: np.ndarray, rel: Release) -> dict:
    """C: the released sums as exact integers, from the sum of every party's fold."""
    words = [int(v) for v in np.asarray(vector, dtype=np.uint64)]
    out, at = {}, 0
    for key, shifts, folded in zip(rel.keys, rel.shifts, rel.folded):
        if folded:
            out[key] = words[at]
            at += 1
        else:
            out[key] = sum(word << sh for word, sh in zip(words[at:at + len(shifts)], shifts))
            at += len(shifts)
    return out


def row_bits_for(max_rows: int) -> int:
    return max(1, int(max_rows)).bit_length()


# ---------------------------------------------------------------------------------------------------
# aligned shares
# ---------------------------------------------------------------------------------------------------
def station_key(private_hex: str, peer_public_hex: str, one: str, other: str) -> bytes:
    """The secret of a station pair for this protocol (masks, triples, zero-sharings, sealing)."""
    return pair_key(private_hex, peer_public_hex, (one, other), PURPOSE)


def mask_stream(key: bytes, station: str, n_rows: int, words: int) -> np.ndarray:
    """S's pad, named after S: two stations that are each other's partner share one pair key."""
    return prg(key, f"upload|{station}", (n_rows, words))


def upload(columns: list[np.ndarray], bits: list[int], lay: Layout, key: bytes, station: str) -> str:
    """S's side: its limb words plus the mask stream it shares with its partner (uniform to C)."""
    words = encode(columns, bits, lay)
    return pack(words + mask_stream(key, station, *words.shape))


def align(text: str, rows: np.ndarray, words: int) -> np.ndarray:
    """C's side: the masked words of the cohort's records, in cohort order."""
    up = unpack(text)
    if up.ndim != 2 or up.shape[1] != words:
        raise ValueError("a station's shared columns do not match the plan")
    return up[np.asarray(rows, dtype=np.int64)]


def partner_share(key: bytes, station: str, n_rows: int, words: int, rows: np.ndarray) -> np.ndarray:
    """P's side: minus S's mask stream at the cohort's positions, so that C's words plus this are S's columns."""
    return np.uint64(0) - mask_stream(key, station, n_rows, words)[np.asarray(rows, dtype=np.int64)]


# ---------------------------------------------------------------------------------------------------
# G^T H with G at C and H at a station Q, dealt by a third station D
# ---------------------------------------------------------------------------------------------------
def _triple(key: bytes, label: str, n: int, g_words: int, h_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Q's half of the triple, which D derives too: beta (n x h) and Q's share of alpha^T beta."""
    return prg(key, label + "|beta", (n, h_words)), prg(key, label + "|gamma", (g_words, h_words))


def _alpha(seed: bytes, n: int, g_words: int) -> np.ndarray:
    return prg(seed, "alpha", (n, g_words))


def open_c_side(g: np.ndarray, seed: bytes) -> np.ndarray:
    """C: its matrix minus alpha (from a seed only C and the dealer know), for Q."""
    return g - _alpha(seed, *g.shape)


def participant(h: np.ndarray, opened: np.ndarray, key: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Q: its opening H - beta for C, and its share (G - alpha)^T H + gamma_Q of G^T H."""
    beta, gamma = _triple(key, label, h.shape[0], opened.shape[1], h.shape[1])
    return h - beta, _dot(opened, h) + gamma


def dealer(seed: bytes, key: bytes, label: str, n: int, g_words: int, h_words: int) -> np.ndarray:
    """D: C's share of the triple product, alpha^T beta - gamma_Q."""
    beta, gamma = _triple(key, label, n, g_words, h_words)
    return _dot(_alpha(seed, n, g_words), beta) - gamma


def c_share(seed: bytes, opened_h: np.ndarray, gamma_c: np.ndarray, g_words: int) -> np.ndarray:
    """C: alpha^T (H - beta) + gamma_C; with Q's share, G^T H."""
    return _dot(_alpha(seed, opened_h.shape[0], g_words), opened_h) + gamma_c


# ---------------------------------------------------------------------------------------------------
# x_a^T x_b between two stations, dealt by C (their openings travel sealed)
# ---------------------------------------------------------------------------------------------------
def c_deal(seed_a: bytes, seed_b: bytes, n: int, a_words: int, b_words: int) -> np.ndarray:
    """C: P_b's share of alpha^T beta (P_a's is derived from its seed)."""
    alpha, gamma_a = _station_triple(seed_a, n, a_words, b_words)
    beta = prg(seed_b, "beta", (n, b_words))
    return _dot(alpha, beta) - gamma_a


def _station_triple(seed_a: bytes, n: int, a_words: int, b_words: int) -> tuple[np.ndarray, np.ndarray]:
    return prg(seed_a, "alpha", (n, a_words)), prg(seed_a, "gamma", (a_words, b_words))


def station_open(x: np.ndarray, seed: bytes, side: str) -> np.ndarray:
    """P_a: x_a - alpha; P_b: x_b - beta (sealed for the other station)."""
    return x - prg(seed, "alpha" if side == "a" else "beta", x.shape)


def station_share(side: str, seed: bytes, mine: np.ndarray, theirs_opened: np.ndarray,
                  gamma_b: np.ndarray | None = None) -> np.ndarray:
    """P_a: alpha^T (x_b - beta) + gamma_a; P_b: (x_a - alpha)^T x_b + gamma_b."""
    if side == "a":
        alpha, gamma_a = _station_triple(seed, mine.shape[0], mine.shape[1], theirs_opened.shape[1])
        return _dot(alpha, theirs_opened) + gamma_a
    return _dot(theirs_opened, mine) + gamma_b


def zero_shares(key: bytes, label: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three uniform blinds the two stations of a pair both derive; the fourth is minus their sum."""
    return tuple(prg(key, f"{label}|zero{i}", shape) for i in range(3))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^T b modulo 2^64."""
    return np.ascontiguousarray(a.T) @ b


def unpack_shaped(text, shape: tuple[int, ...]) -> np.ndarray:
    """A relayed matrix of the expected shape (ValueError otherwise)."""
    try:
        values = unpack(str(text))
    except (ValueError, TypeError):
        values = None
    if values is None or values.shape != tuple(shape):
        raise ValueError("missing or of the wrong shape")
    return values


def read_seed(text: str) -> bytes:
    raw = bytes.fromhex(str(text))
    if len(raw) != 32:
        raise ValueError("a seed must be 32 bytes")
    return raw


__all__ = ["Layout", "MAX_WORDS", "Release", "align", "c_deal", "c_share", "dealer", "encode", "fold", "layout",
           "release_products", "release_totals", "row_bits_for", "unfold", "limb_bits_for", "open_c_side", "pack", "participant", "partner_share",
           "read_seed", "station_key", "station_open", "station_share", "unpack", "unpack_shaped", "upload",
           "zero_shares"]

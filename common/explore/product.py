"""Cohort sums of products across two stations, without revealing membership or records.

For a pair (L, R) of stations the coordinator C wants S = X_L[cohort]^T X_R[cohort]: every L
column times every R column, summed over the linked cohort (k-th L row linked to k-th R row).

1. R draws a fresh Paillier key for this job, packs each of its rows (its columns, in slots of
   per-column widths) and encrypts them: Enc_R(row_j), in R's shuffled order. As key owner it
   computes the fixed-base randomness by CRT (about 3x cheaper than anyone else can), and it also
   makes the fresh encryptions of 0 that C needs for padding (C asks for a count rounded up to a
   multiple of :data:`ZERO_QUANTUM`).
2. C, who knows the link, lays these out in L's shuffled order: L row i gets Enc_R(row_j) * z_i if
   i is linked to j in the cohort, otherwise z_i alone, where z_i is one of R's fresh Enc_R(0),
   each used once. L cannot tell which (semantic security, fresh randomness), so L does not learn
   its cohort members.
3. L computes, per L column a, prod_i c_i^(a_i) = Enc_R(sum_i a_i row_i) by multi-exponentiation
   (padding contributes 0), packs the results densely, re-randomises with randomness of its own
   and returns them.
4. C adds to every result's whole plaintext a uniform mask modulo n, R decrypts the masked
   values, and C removes the masks modulo n. R sees only uniform numbers (a one-time pad in Z_n).

Nobody sees a per-record value of another station; C learns the sums (the statistics before
disclosure control). Slots hold non-negative integers only, and each slot's width holds the
largest possible sum, so a slot can never carry into its neighbour; the mask needs no room in the
slots (an earlier per-slot mask of 40 extra bits made every slot about 42 bits wider).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import gmpy2
import numpy as np

from ..crypto import PrivateKey, PublicKey, generate_keypair
from ..crypto.multiexp import multiexp
from ..crypto.pool import process_pool
from ..crypto.serial import ciphertexts_from_str, ciphertexts_to_str, plaintexts_from_str, plaintexts_to_str

ZERO_QUANTUM = 1024     # padding encryptions are requested in multiples of this (hides exact row counts)
MAX_ZEROS = 1 << 23     # a station refuses to make more fresh encryptions of 0 than this in one job


def bound_bits(n_rows_l: int, bits_l: int, bits_r: int) -> int:
    """Bits of the largest possible sum of products of an L column (< 2^bits_l) and an R column."""
    return max(n_rows_l, 1).bit_length() + bits_l + bits_r


def width_for(bound: int) -> int:
    """Slot width that holds a sum below 2^bound without carry (masks are added modulo n, not per slot)."""
    return bound


def zeros_for(count: int) -> int:
    """How many fresh encryptions of 0 to ask for: ``count`` rounded up to a multiple of ZERO_QUANTUM."""
    return -(-count // ZERO_QUANTUM) * ZERO_QUANTUM if count > 0 else 0


def workers() -> int:
    forced = os.environ.get("LANCELOT_WORKERS", "")
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    return max(1, min(os.cpu_count() or 1, 4))


# ---------------------------------------------------------------------------------------------
# variable-width packing: slot i of a group holds a value below 2^widths[i]
# ---------------------------------------------------------------------------------------------
def pack(values: list[int], widths: list[int]) -> int:
    out, shift = 0, 0
    for v, w in zip(values, widths, strict=True):
        out |= int(v) << shift
        shift += w
    return out


def unpack(value: int, widths: list[int]) -> list[int]:
    out = []
    for w in widths:
        out.append(value & ((1 << w) - 1))
        value >>= w
    return out


def group_columns(widths: list[int], capacity: int) -> list[list[int]]:
    """Consecutive column indices per ciphertext group: as many as fit in ``capacity`` bits."""
    groups: list[list[int]] = []
    used = capacity + 1
    for i, w in enumerate(widths):
        if w > capacity:
            raise ValueError("values too large for one Paillier slot with this key size")
        if used + w > capacity:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += w
    return groups


# ---------------------------------------------------------------------------------------------
# R: encrypt rows and zeros (key owner: CRT fixed-base randomness); later decrypt masked sums
# ---------------------------------------------------------------------------------------------
def encrypt_rows(priv: PrivateKey, columns: list[np.ndarray], group_widths: list[list[int]]) -> list[list[int]]:
    """Per ciphertext group (consecutive columns with the given slot widths), Enc(packed row slice) per row."""
    n_rows = len(columns[0]) if columns else 0
    out, start = [], 0
    capacity = priv.public.n_bits - 1
    for widths in group_widths:
        if sum(widths) > capacity:
            raise ValueError("a group of slots does not fit below n")
        group = [[int(v) for v in columns[c]] for c in range(start, start + len(widths))]
        for col, w in zip(group, widths):
            if col and (min(col) < 0 or max(col).bit_length() > w):
                raise ValueError("a column value does not fit its slot")
        start += len(widths)
        plain = [pack([col[r] for col in group], widths) for r in range(n_rows)]
        out.append(priv.encrypt_many(plain, workers=workers(), fixed_base=True))
    return out


def make_zeros(priv: PrivateKey, count: int) -> list[int]:
    """Fresh encryptions of 0 under the owner's key, for the coordinator's padding (each used once)."""
    return priv.encrypt_many([0] * count, workers=workers(), fixed_base=True) if count else []


def new_key(key_bits: int) -> PrivateKey:
    _pub, priv = generate_keypair(key_bits)
    return priv


def decrypt_masked(priv: PrivateKey, cts: list[int]) -> list[int]:
    return priv.decrypt_many(cts, workers=workers())


# ---------------------------------------------------------------------------------------------
# C: lay out in L's order with padding; mask; unmask
# ---------------------------------------------------------------------------------------------
class Zeros:
    """A key owner's fresh encryptions of 0, handed out once each: single ciphertexts, or rows of ``width``
    points (exponential ElGamal, one point per key plus the row's first point)."""

    def __init__(self, items: list, width: int = 1):
        if len(items) % width:
            raise ValueError("the zero rows do not match the number of keys")
        self._items, self._width, self._next = items, width, 0

    def take(self, rows: int) -> list:
        end = self._next + rows * self._width
        if end > len(self._items):
            raise RuntimeError("not enough fresh encryptions of 0 from the key owner")
        out = self._items[self._next:end]
        self._next = end
        return out


def layout_for_l(pub: PublicKey, r_cts: list[list[int]], zeros: Zeros, l_rows: int, pairs_l: np.ndarray,
                 pairs_r: np.ndarray) -> list[list[int]]:
    """Per group, L-ordered ciphertexts: linked rows times a fresh Enc(0), the rest a fresh Enc(0) alone."""
    nsq = gmpy2.mpz(pub.n) * pub.n
    out = []
    for group in r_cts:
        vec = zeros.take(l_rows)
        for i, j in zip(pairs_l.tolist(), pairs_r.tolist()):
            vec[i] = gmpy2.mpz(group[j]) * vec[i] % nsq  # Enc(row_j) * Enc(0): unlinkable copy
        out.append([int(c) for c in vec])
    return out


def membership(pub: PublicKey, zeros: Zeros, l_rows: int, cohort_rows: np.ndarray) -> list[int]:
    """Enc(1) for L's rows in the cohort and Enc(0) for the others, from the key owner's fresh zeros.

    Enc(0) * (1 + n) = Enc(1): a plaintext addition, so every output is as fresh as its zero.
    Equivalent to laying out the partner's encrypted constant, without the partner encrypting rows.
    """
    nsq = gmpy2.mpz(pub.n) * pub.n
    member = np.zeros(l_rows, dtype=bool)
    member[cohort_rows] = True
    vec = zeros.take(l_rows)
    return [int(gmpy2.mpz(z) * (1 + pub.n) % nsq) if m else int(z) for z, m in zip(vec, member.tolist())]


@dataclass
class Masks:
    values: list[int]   # per result ciphertext, a uniform mask modulo n


def mask_results(pub: PublicKey, results: list[int], slots: list[list[tuple[int, int]]]) -> tuple[list[int], Masks]:
    """Add to every result's plaintext a uniform mask modulo n: the key owner decrypts uniform numbers."""
    nsq = gmpy2.mpz(pub.n) * pub.n
    masked, masks = [], []
    for c, layout in zip(results, slots, strict=True):
        if sum(width for width, _ in layout) >= pub.n_bits:
            raise ValueError("result slots do not fit below n")
        m = secrets.randbelow(pub.n)
        masked.append(int(gmpy2.mpz(c) * (1 + m * pub.n) % nsq))
        masks.append(m)
    return masked, Masks(masks)


def unmask(plaintexts: list[int], masks: Masks, slots: list[list[tuple[int, int]]], n: int) -> list[list[int]]:
    """The slots' sums: each plaintext minus its mask modulo n, unpacked (a sum above its bound is refused)."""
    out = []
    for m, mask, layout in zip(plaintexts, masks.values, slots, strict=True):
        value, widths = (int(m) - mask) % n, [width for width, _ in layout]
        sums = unpack(value, widths)
        if value >> sum(widths) or any(v.bit_length() > bound for v, (_w, bound) in zip(sums, layout)):
            raise ArithmeticError("a result came back outside its slots: not the sums that were masked")
        out.append(sums)
    return out


# ---------------------------------------------------------------------------------------------
# L: aggregate
# ---------------------------------------------------------------------------------------------
def aggregate(pub: PublicKey, cts: list[list[int]], columns: list[np.ndarray], groups_needed: list[list[int]],
              bits_per_group: list[int], combine: bool = True) -> tuple[list[int], list[list[tuple[int, int]]]]:
    """Enc(sum_i a_i row_i[g]) for each L column a and each group g it needs, packed densely.

    Results are combined into one ciphertext by shifting (Horner: one squaring per bit of the
    following results), so the key owner decrypts far fewer ciphertexts. Returns the re-randomised
    packed ciphertexts and, per ciphertext, the (column index, group) of each result from the
    lowest bits up.
    """
    nsq = gmpy2.mpz(pub.n) * pub.n
    mpz_groups = [[gmpy2.mpz(c) for c in group] for group in cts]
    capacity = pub.n_bits - 1
    layout: list[list[tuple[int, int]]] = []
    pending: list[tuple[object, int, tuple[int, int]]] = []

    batches: list[list[tuple[object, int]]] = []

    def flush() -> None:
        if not pending:
            return
        batches.append([(ct, bits) for ct, bits, _ in pending])
        layout.append([key for _, _, key in pending])
        pending.clear()

    used_bits = 0
    for a, col in enumerate(columns):
        col = np.asarray(col)
        nz = np.flatnonzero(col).tolist()
        values = [int(v) for v in col[nz]]
        ones = all(v == 1 for v in values)
        for g in groups_needed[a]:
            group = mpz_groups[g]
            if not nz:
                acc = gmpy2.mpz(1)
            elif ones:
                acc = gmpy2.mpz(1)
                for i in nz:
                    acc = acc * group[i] % nsq
            else:
                acc = multiexp([group[i] for i in nz], values, nsq)
            bits = bits_per_group[g]
            if used_bits + bits > capacity or (pending and not combine):
                flush()
                used_bits = 0
            pending.append((acc, bits, (a, g)))
            used_bits += bits
    flush()
    packed = _horner_all(batches, nsq)
    rerand = fresh_zeros(pub, len(packed))  # this station's own randomness
    return [int(c * z % nsq) for c, z in zip(packed, rerand)], layout


def _horner(batch: list[tuple[object, int]], nsq: object) -> object:
    """One packed ciphertext: each result shifted above the ones before it (one squaring per bit)."""
    acc = batch[-1][0]
    for ct, bits in reversed(batch[:-1]):
        acc = gmpy2.powmod(acc, 1 << bits, nsq) * ct % nsq
    return acc


def _horner_all(batches: list[list[tuple[object, int]]], nsq: object) -> list:
    """Every packed ciphertext; the squarings (about 2,000 per ciphertext) over worker processes when many."""
    n_workers = workers()
    if n_workers <= 1 or len(batches) < 8 * n_workers:
        return [_horner(b, nsq) for b in batches]
    with process_pool(n_workers) as pool:
        return list(pool.map(_horner, batches, [nsq] * len(batches), chunksize=max(1, len(batches) // (4 * n_workers))))


_TABLE_PAYS = 64  # below this many encryptions a fixed-base table (about 270 encryptions' work) does not pay


def fresh_zeros(pub: PublicKey, count: int) -> list[int]:
    """Fresh Enc(0) with randomness of the caller: hs^a, a of n_bits + 128 bits, as the public fixed base
    computes it; for a few, by plain exponentiation rather than building the 35 MB table."""
    if count >= _TABLE_PAYS or pub.hs is None:
        return pub.encrypt_many([0] * count, workers=workers())
    nsq = gmpy2.mpz(pub.n) * pub.n
    bits = pub.exponent_bits("full")
    return [int(gmpy2.powmod(gmpy2.mpz(pub.hs), secrets.randbits(bits), nsq)) for _ in range(count)]


def shift_rows(pub: PublicKey, cts: list[int], shifts: list[int]) -> list[int]:
    """c_i^(2^shift_i), re-randomised: moves each plaintext up by shift_i bits."""
    nsq = gmpy2.mpz(pub.n) * pub.n
    fresh = pub.encrypt_many([0] * len(cts), workers=workers())
    return [int(gmpy2.powmod(gmpy2.mpz(c), 1 << sh, nsq) * z % nsq) if sh else int(gmpy2.mpz(c) * z % nsq)
            for c, sh, z in zip(cts, shifts, fresh)]


def pack_cts(pub: PublicKey, cts: list[int]) -> str:
    return ciphertexts_to_str(pub, cts)


def unpack_cts(pub: PublicKey, text: str) -> list[int]:
    return ciphertexts_from_str(pub, text)


def pack_plain(pub: PublicKey, ms: list[int]) -> str:
    return plaintexts_to_str(pub, ms)


def unpack_plain(pub: PublicKey, text: str) -> list[int]:
    return plaintexts_from_str(pub, text)

"""Cohort sums of products across two stations, without revealing membership or records.

For a pair (L, R) of stations the coordinator C wants S = X_L[cohort]^T X_R[cohort]: every L
column times every R column, summed over the linked cohort (k-th L row linked to k-th R row).

1. R draws a fresh Paillier key for this job, packs each of its rows (all its columns, in slots
   of ``slot_bits``) and encrypts them: Enc_R(row_j), in R's shuffled order.
2. C, who knows the link, lays these out in L's shuffled order: L row i gets a re-randomised copy
   of Enc_R(row_j) if i is linked to j in the cohort, otherwise a fresh Enc_R(0). L cannot tell
   which (semantic security, fresh randomness), so L does not learn its cohort members.
3. L computes, per L column a, prod_i c_i^(a_i) = Enc_R(sum_i a_i row_i) by multi-exponentiation
   (padding contributes 0), re-randomises and returns the results.
4. C adds a uniformly random mask of ``stat_bits`` more bits than any slot sum to every slot, R
   decrypts the masked values, and C removes the masks. R sees only masked numbers.

Nobody sees a per-record value of another station; C learns the sums (the statistics before
disclosure control). Slots hold non-negative integers only, and ``slot_bits`` leaves room for
the largest possible sum plus the mask, so a slot can never carry into its neighbour.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import gmpy2
import numpy as np

from ..crypto import PackingScheme, PrivateKey, PublicKey, generate_keypair
from ..crypto.multiexp import multiexp
from ..crypto.serial import ciphertexts_from_str, ciphertexts_to_str, plaintexts_from_str, plaintexts_to_str

STAT_BITS = 40


def slot_bits_for(n_rows_l: int, max_bits_l: int, max_bits_r: int) -> tuple[int, int]:
    """(bits of the largest possible slot sum, slot width that also holds the statistical mask)."""
    bound = max(n_rows_l, 1).bit_length() + max_bits_l + max_bits_r
    return bound, bound + STAT_BITS + 2


def scheme_for(pub: PublicKey, slot_bits: int) -> PackingScheme:
    if slot_bits + 1 > pub.n_bits - 1:
        raise ValueError("values too large for one Paillier slot with this key size")
    return PackingScheme.for_key(pub, slot_bits, slot_bits - 1)


def workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


# ---------------------------------------------------------------------------------------------
# R: encrypt rows; later decrypt masked sums
# ---------------------------------------------------------------------------------------------
def encrypt_rows(priv: PrivateKey, columns: list[np.ndarray], slot_bits: int) -> list[list[int]]:
    """Per ciphertext group t (consecutive columns), Enc(packed row slice) for every row."""
    pub = priv.public
    scheme = scheme_for(pub, slot_bits)
    n_rows = len(columns[0])
    groups = [columns[i:i + scheme.n_slots] for i in range(0, len(columns), scheme.n_slots)]
    out = []
    for group in groups:
        plain = [scheme.pack([int(c[r]) for c in group]) for r in range(n_rows)]
        # the owner's own fixed-base table (hs made by the owner) beats CRT randomness by about 2x
        out.append(pub.encrypt_many(plain, workers=workers()))
    return out


def new_key(key_bits: int) -> PrivateKey:
    _pub, priv = generate_keypair(key_bits)
    return priv


def decrypt_masked(priv: PrivateKey, cts: list[int]) -> list[int]:
    return priv.decrypt_many(cts, workers=workers()) if hasattr(priv, "decrypt_many") else [priv.decrypt(c) for c in cts]


# ---------------------------------------------------------------------------------------------
# C: lay out in L's order with padding; mask; unmask
# ---------------------------------------------------------------------------------------------
def layout_for_l(pub: PublicKey, r_cts: list[list[int]], l_rows: int, pairs_l: np.ndarray,
                 pairs_r: np.ndarray) -> list[list[int]]:
    """Per group, L-ordered ciphertexts: linked rows re-randomised, the rest fresh encryptions of 0."""
    nsq = pub.n * pub.n
    fresh = pub.encrypt_many([0] * (l_rows * len(r_cts)), workers=workers())
    out = []
    for g, group in enumerate(r_cts):
        zeros = fresh[g * l_rows:(g + 1) * l_rows]
        vec = list(zeros)
        for i, j in zip(pairs_l.tolist(), pairs_r.tolist()):
            vec[i] = int(gmpy2.mpz(group[j]) * zeros[i] % nsq)  # Enc(row_j) * Enc(0): unlinkable copy
        out.append(vec)
    return out


def membership(pub: PublicKey, l_rows: int, cohort_rows: np.ndarray) -> list[int]:
    """Fresh Enc(1) for L's rows in the cohort and Enc(0) for the others: the layout of a constant column.

    Equivalent to laying out the partner's encrypted constant, without the partner encrypting anything.
    """
    member = np.zeros(l_rows, dtype=bool)
    member[cohort_rows] = True
    return pub.encrypt_many([int(m) for m in member], workers=workers())


@dataclass
class Masks:
    values: list[list[int]]   # per result ciphertext, per slot


def mask_results(pub: PublicKey, scheme: PackingScheme, results: list[int], bound_bits: int) -> tuple[list[int], Masks]:
    nsq = pub.n * pub.n
    masked, masks = [], []
    for c in results:
        m = [secrets.randbits(bound_bits + STAT_BITS) for _ in range(scheme.n_slots)]
        packed = scheme.pack(m)
        masked.append(int(gmpy2.mpz(c) * (1 + packed * pub.n) % nsq))
        masks.append(m)
    return masked, Masks(masks)


def unmask(scheme: PackingScheme, plaintexts: list[int], masks: Masks) -> list[list[int]]:
    out = []
    for m, mask in zip(plaintexts, masks.values):
        slots = scheme.unpack(m)
        sums = [s - r for s, r in zip(slots, mask)]
        if min(sums) < 0:
            raise ArithmeticError("a masked slot came back smaller than its mask: slot overflow")
        out.append(sums)
    return out


# ---------------------------------------------------------------------------------------------
# L: aggregate
# ---------------------------------------------------------------------------------------------
def aggregate(pub: PublicKey, cts: list[list[int]], columns: list[np.ndarray], groups_needed: list[list[int]],
              slots_per_group: list[int], slot_bits: int,
              combine: bool = True) -> tuple[list[int], list[list[tuple[int, int]]]]:
    """Enc(sum_i a_i row_i[g]) for each L column a and each group g it needs, packed densely.

    Results that use few slots are combined into one ciphertext by shifting (Horner: W squarings
    per slot), so the key owner decrypts far fewer ciphertexts. Returns the re-randomised packed
    ciphertexts and, per ciphertext, the (column index, group) of each result in slot order.
    """
    nsq = gmpy2.mpz(pub.n) * pub.n
    mpz_groups = [[gmpy2.mpz(c) for c in group] for group in cts]
    capacity = (pub.n_bits - 1) // slot_bits
    packed, layout = [], []
    pending: list[tuple[object, int, tuple[int, int]]] = []

    def flush() -> None:
        if not pending:
            return
        acc = pending[-1][0]
        for ct, used, _ in reversed(pending[:-1]):
            acc = gmpy2.powmod(acc, 1 << (used * slot_bits), nsq) * ct % nsq
        packed.append(acc)
        layout.append([key for _, _, key in pending])
        pending.clear()

    used_slots = 0
    for a, col in enumerate(columns):
        nz = [i for i, v in enumerate(col) if v]
        ones = all(col[i] == 1 for i in nz)
        for g in groups_needed[a]:
            group = mpz_groups[g]
            if not nz:
                acc = gmpy2.mpz(1)
            elif ones:
                acc = gmpy2.mpz(1)
                for i in nz:
                    acc = acc * group[i] % nsq
            else:
                acc = multiexp([group[i] for i in nz], [int(col[i]) for i in nz], nsq)
            width = slots_per_group[g]
            if used_slots + width > capacity or (pending and not combine):
                flush()
                used_slots = 0
            pending.append((acc, width, (a, g)))
            used_slots += width
    flush()
    rerand = pub.encrypt_many([0] * len(packed), workers=workers())
    return [int(c * z % nsq) for c, z in zip(packed, rerand)], layout


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

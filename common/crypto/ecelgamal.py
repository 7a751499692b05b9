"""Exponential ElGamal on edwards25519 (libsodium, through PyNaCl): additively homomorphic counts.

Why: a cohort count of 0/1 columns needs only small sums. Paillier encrypts a row in about 650 us
even for its key owner (two 2048-bit fixed-base tables by CRT); here a 0/1 value costs one
fixed-base scalar multiplication (about 35 us) and a ciphertext is 32 bytes per point instead of
512. The price: a sum is recovered as a discrete logarithm, so only small sums (counts) decrypt.

A row of k values is encrypted with one randomness r under k independent keys x_1..x_k:
``(rG, (m_1 + r x_1)G, ..., (m_k + r x_k)G)``. Reusing r across independent keys is secure under
DDH (multi-recipient ElGamal: Bellare, Boldyreva and Staddon, PKC 2003; Kurosawa, PKC 2002); the key
owner computes every point by fixed-base multiplication because it knows x_j. Decryption is split:
the key owner returns ``x_j * c1`` for a ciphertext's first point, the coordinator subtracts it
from the second and takes the discrete logarithm of the small result (a baby-step table).

Points travel as their canonical 32-byte encodings; libsodium rejects non-canonical or off-curve
input in every operation, and the key owner's multiplication also rejects points outside the
prime-order subgroup (so a crafted point cannot leak the key modulo the cofactor).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from nacl import bindings as _na
from nacl.exceptions import CryptoError

ORDER = 2**252 + 27742317777372353535851937790883648493   # the prime order of the base point's group
POINT = 32                                                  # bytes per encoded point
IDENTITY = (1).to_bytes(POINT, "little")                    # the neutral element (0, 1)


def _scalar() -> int:
    return 1 + secrets.randbelow(ORDER - 1)


def base_mult(s: int) -> bytes:
    """s * G for 0 < s < ORDER (libsodium's fixed-base table)."""
    return _na.crypto_scalarmult_ed25519_base_noclamp(s.to_bytes(POINT, "little"))


def mult(s: int, point: bytes) -> bytes:
    """s * P for 0 < s < ORDER; P must lie in the prime-order subgroup (checked by libsodium)."""
    try:
        return _na.crypto_scalarmult_ed25519_noclamp(s.to_bytes(POINT, "little"), point)
    except (CryptoError, TypeError):
        raise ValueError("not a point of the prime-order group") from None


def add(p: bytes, q: bytes) -> bytes:
    try:
        return _na.crypto_core_ed25519_add(p, q)
    except (CryptoError, TypeError):
        raise ValueError("not a valid curve point") from None


def sub(p: bytes, q: bytes) -> bytes:
    try:
        return _na.crypto_core_ed25519_sub(p, q)
    except (CryptoError, TypeError):
        raise ValueError("not a valid curve point") from None


class Keys:
    """A station's k secret scalars for one job (never leave it) and their public points x_j G."""

    def __init__(self, secret: Sequence[int]):
        if not secret or any(not 0 < int(x) < ORDER for x in secret):
            raise ValueError("ElGamal secret scalars must lie in (0, ORDER)")
        self.secret = [int(x) for x in secret]
        self.public = [base_mult(x) for x in self.secret]

    @classmethod
    def fresh(cls, k: int) -> Keys:
        return cls([_scalar() for _ in range(k)])

    def to_dict(self) -> dict:
        return {"secret": [format(x, "x") for x in self.secret]}

    @classmethod
    def from_dict(cls, d: dict) -> Keys:
        return cls([int(x, 16) for x in d["secret"]])


def public_to_str(public: Sequence[bytes]) -> str:
    return points_to_str(public)


def public_from_str(text: str, k_max: int) -> list[bytes]:
    pts = points_from_str(text)
    if not 0 < len(pts) <= k_max or any(not _na.crypto_core_ed25519_is_valid_point(p) for p in pts):
        raise ValueError("not a valid ElGamal public key")
    return pts


def encrypt_rows(secret: Sequence[int], rows: Sequence[Sequence[int]]) -> bytes:
    """The key owner's encryptions, one per row of k small non-negative values: k + 1 points per row."""
    out = []
    for values in rows:
        while True:
            r = _scalar()
            scalars = [(int(m) + r * x) % ORDER for m, x in zip(values, secret, strict=True)]
            if all(scalars):  # a zero scalar (probability ~k/2^252) would be the identity: draw again
                break
        out.append(base_mult(r))
        out.extend(base_mult(s) for s in scalars)
    return b"".join(out)


def rerandomise(public: Sequence[bytes], c1: bytes, c2s: Sequence[bytes], which: Sequence[int]) -> list[bytes]:
    """(c1 + sG, c2_j + s x_j G for j in which) with a fresh s of the caller: the key owner cannot
    recognise the sum of its own randomness any more."""
    s = _scalar()
    return [add(c1, base_mult(s))] + [add(c2, mult(s, public[j])) for c2, j in zip(c2s, which, strict=True)]


def partial_decrypt(secret: Sequence[int], c1: bytes, which: Sequence[int]) -> list[bytes]:
    """x_j * c1 for each key j asked for (the coordinator subtracts it from the matching second point)."""
    return [mult(secret[j], c1) for j in which]


class SmallLog:
    """Discrete logarithms m of mG for 0 <= m <= bound, by baby steps (a table of ``baby`` points) and giant steps."""

    def __init__(self, bound: int, baby: int = 4096):
        self.bound = int(bound)
        self.baby = max(1, min(baby, self.bound + 1))
        g = base_mult(1)
        table, p = {IDENTITY: 0}, IDENTITY
        for m in range(1, self.baby):
            p = add(p, g)
            table[p] = m
        self.table = table
        self.giant = base_mult(self.baby) if self.baby < ORDER else IDENTITY

    def log(self, point: bytes) -> int:
        p, offset = point, 0
        while offset <= self.bound:
            m = self.table.get(p)
            if m is not None and offset + m <= self.bound:
                return offset + m
            p = sub(p, self.giant)
            offset += self.baby
        raise ArithmeticError("a decrypted count lies outside its bound: not the sum that was encrypted")


def points_to_str(points: Sequence[bytes] | bytes) -> str:
    raw = points if isinstance(points, bytes | bytearray) else b"".join(points)
    return base64.b64encode(raw).decode("ascii")


def points_from_str(text: str) -> list[bytes]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % POINT:
        raise ValueError(f"payload length {len(raw)} is not a multiple of {POINT} bytes")
    return [raw[i:i + POINT] for i in range(0, len(raw), POINT)]

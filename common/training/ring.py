"""Additive shares modulo 2^128, 2^192 and 2^256, for the parts of Cox regression that need room.

Logistic regression fits in 64-bit shares (:mod:`.shares`). Cox regression multiplies risk
scores exp(z) by features, sums them over risk sets and divides by blinded risk-set sums; those
products need 100-200 bits before they are scaled back. Python integers in numpy object arrays
give exact arithmetic in Z/2^bits at a speed that is enough for 10^4-10^5 records (a 13,500 x 21
matrix product takes under a second).

Two tools make mixed precision work with plain local computation:

* **lifting**: a 2-party sharing of a *small* value (|v| << 2^bits) in a smaller ring becomes a
  sharing in a larger ring by reading each share as a signed number; it fails (off by the small
  ring's modulus) with probability about |v| / 2^bits;
* **truncation**: each party shifts its own share right (SecureML); the result is v / 2^k up to
  one unit, failing with probability about |v| / 2^bits.

Both need the true values to stay far below the ring size; the fixed-point scales in
:mod:`.cox` are chosen to keep at least 40 bits of headroom.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

MASK64 = (1 << 64) - 1


def _stream(seed: bytes, label: str, nbytes: int) -> bytes:
    key = hashlib.blake2b(label.encode(), key=seed, digest_size=32).digest()
    return Cipher(algorithms.ChaCha20(key, b"\1" + b"\0" * 15), mode=None).encryptor().update(b"\0" * nbytes)


def _limbs_to_ints(limbs: np.ndarray) -> np.ndarray:
    """(count, k) little-endian uint64 limbs -> object array of Python ints."""
    out = limbs[:, 0].astype(object)
    for j in range(1, limbs.shape[1]):
        out = out + (limbs[:, j].astype(object) << (64 * j))
    return out


class Ring:
    """Z/2^bits with numpy object arrays of Python ints as elements."""

    def __init__(self, bits: int):
        if bits % 64:
            raise ValueError("ring size must be a multiple of 64 bits")
        self.bits = bits
        self.limbs = bits // 64
        self.modulus = 1 << bits
        self.mask = self.modulus - 1

    def __repr__(self) -> str:
        return f"Ring(2^{self.bits})"

    def _mod(self, x) -> np.ndarray:
        """Reduce into the ring; a 0-d result stays a 0-d object array (numpy's bitwise_and would
        convert a lone Python int to a C long)."""
        x = np.asarray(x, dtype=object)
        if x.ndim == 0:
            return np.asarray(int(x) & self.mask, dtype=object)
        return np.bitwise_and(x, self.mask)

    # ---- construction -------------------------------------------------------------------
    def prg(self, seed: bytes, label: str, shape) -> np.ndarray:
        """Uniform ring elements from (seed, label), reproducible by whoever holds the seed."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        count = int(np.prod(shape)) if shape else 1
        raw = np.frombuffer(_stream(seed, label, 8 * self.limbs * count), dtype="<u8").reshape(count, self.limbs)
        return _limbs_to_ints(raw.astype(np.uint64)).reshape(shape)

    def element(self, values) -> np.ndarray:
        """Integers (any sign, any size) reduced into the ring, as an object array."""
        return self._mod(values)

    def encode(self, values, frac_bits: int) -> np.ndarray:
        """Reals to fixed point: round(x * 2^frac_bits), exactly, via Python integers."""
        arr = np.asarray(values, dtype=float)
        scaled = np.vectorize(lambda v: int(round(v * 2.0 ** frac_bits)), otypes=[object])(arr) if arr.size else \
            np.zeros(arr.shape, dtype=object)
        return self.element(scaled)

    def from_u64(self, values: np.ndarray) -> np.ndarray:
        """A 64-bit ring element read as a signed number and placed in this ring (the lift of a share)."""
        signed = np.asarray(values, dtype=np.uint64).view(np.int64).astype(object)
        return self.element(signed)

    def lift(self, values: np.ndarray, smaller: Ring) -> np.ndarray:
        """Signed lift of shares from a smaller ring into this one (see the module docstring)."""
        v = np.asarray(values, dtype=object)
        half = 1 << (smaller.bits - 1)
        signed = np.where(v >= half, v - smaller.modulus, v)
        return self.element(signed)

    def reduce_to(self, values: np.ndarray, smaller: Ring) -> np.ndarray:
        """Reduction to a smaller power-of-two ring (always exact for a sharing)."""
        return smaller._mod(values)

    # ---- arithmetic -----------------------------------------------------------------------
    def add(self, *arrays) -> np.ndarray:
        out = np.asarray(arrays[0], dtype=object)
        for a in arrays[1:]:
            out = out + np.asarray(a, dtype=object)
        return self._mod(out)

    def sub(self, a, b) -> np.ndarray:
        return self._mod(np.asarray(a, dtype=object) - np.asarray(b, dtype=object))

    def mul(self, a, b) -> np.ndarray:
        return self._mod(np.asarray(a, dtype=object) * np.asarray(b, dtype=object))

    def dot(self, a, b) -> np.ndarray:
        """Matrix product in the ring (numpy's object matmul, then one reduction)."""
        return self._mod(np.asarray(a, dtype=object).dot(np.asarray(b, dtype=object)))

    def neg(self, a) -> np.ndarray:
        return self._mod(-np.asarray(a, dtype=object))

    def truncate(self, share: np.ndarray, k: int, first: bool) -> np.ndarray:
        """One party's share of v / 2^k (SecureML local truncation; exact up to one unit)."""
        s = self._mod(share)
        if first:
            return s >> k
        return self._mod(self.modulus - (self._mod(self.modulus - s) >> k))

    def signed(self, values) -> np.ndarray:
        """Opened ring elements as signed Python ints in [-2^(bits-1), 2^(bits-1))."""
        v = self._mod(values)
        return np.where(v >= (1 << (self.bits - 1)), v - self.modulus, v).astype(object)

    def decode(self, values, frac_bits: int) -> np.ndarray:
        """Opened fixed-point ring elements back to floats."""
        s = self.signed(values)
        return np.vectorize(lambda v: float(v) / 2.0 ** frac_bits if abs(v) < (1 << 1000) else float("nan"),
                            otypes=[float])(s) if np.size(s) else np.zeros(np.shape(s))

    # ---- transport --------------------------------------------------------------------------
    def to_limbs(self, values) -> np.ndarray:
        """Ring elements as little-endian uint64 limbs (shape + (limbs,)), for sealed numpy blobs."""
        v = self._mod(values)
        flat = v.reshape(-1)
        out = np.empty((flat.size, self.limbs), dtype=np.uint64)
        for j in range(self.limbs):
            out[:, j] = np.bitwise_and(flat >> (64 * j), MASK64).astype(np.uint64)
        return out.reshape(v.shape + (self.limbs,))

    def from_limbs(self, limbs: np.ndarray) -> np.ndarray:
        limbs = np.asarray(limbs, dtype=np.uint64)
        if limbs.shape[-1] != self.limbs:
            raise ValueError("limbs do not match the ring")
        shape = limbs.shape[:-1]
        return _limbs_to_ints(limbs.reshape(-1, self.limbs)).reshape(shape)

    def pack(self, values) -> str:
        """Compact JSON text: the shape, then base64 of fixed-width little-endian limbs."""
        v = self._mod(values)
        flat = v.reshape(-1)
        limbs = np.empty((flat.size, self.limbs), dtype="<u8")
        for j in range(self.limbs):
            limbs[:, j] = np.bitwise_and(flat >> (64 * j), MASK64).astype(np.uint64)
        return ",".join(str(d) for d in v.shape) + ":" + base64.b64encode(limbs.tobytes()).decode()

    def unpack(self, text: str) -> np.ndarray:
        head, _, body = text.partition(":")
        shape = tuple(int(d) for d in head.split(",")) if head else ()
        raw = np.frombuffer(base64.b64decode(body), dtype="<u8").astype(np.uint64)
        count = int(np.prod(shape)) if shape else 1
        if raw.size != count * self.limbs:
            raise ValueError("packed array does not match its shape")
        return _limbs_to_ints(raw.reshape(count, self.limbs)).reshape(shape)


R128 = Ring(128)
R192 = Ring(192)
R256 = Ring(256)


def log_uniform_blinds(seed: bytes, label: str, count: int, bits: int = 64) -> np.ndarray:
    """Positive integers whose base-2 logarithm is about uniform on [0, bits): multiplicative blinds.

    A value S times such a blind shows S only up to a factor of 2^bits, so the coordinator cannot
    sort or difference blinded risk-set sums (see docs/leakage/training.md).
    """
    raw = np.frombuffer(_stream(seed, label, 16 * count), dtype="<u8").reshape(count, 2).astype(np.uint64)
    out = np.empty(count, dtype=object)
    for i, (a, b) in enumerate(raw.tolist()):
        k = a % bits
        out[i] = (1 << k) | (b & ((1 << k) - 1))
    return out

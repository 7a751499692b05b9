"""Additive shares modulo 2^128, 2^192 and 2^256, for the parts of Cox regression that need room.

Logistic regression fits in 64-bit shares (:mod:`.shares`). Cox regression multiplies risk
scores exp(z) by features, sums them over risk sets and divides by blinded risk-set sums; those
products need 100-200 bits before they are scaled back. Python integers in numpy object arrays
give exact arithmetic in Z/2^bits; wide matrix products (the Hessian's X'WX) go through exact
float64 products of 16-bit limbs instead (:func:`_limb_dot`, about 3-7 times faster).

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


_LIMB_DOT_MIN = 256     # inner dimension and
_LIMB_DOT_SIDE = 4      # outer dimensions from which the limb product pays for its conversions (one per element
#                         of either factor, against one Python product per element and column of the other)
_LIMB_BITS = 16
_LIMB_CHUNK = 1 << 16   # rows per float64 product: a sum of 2^16 products of 16-bit limbs, times the up to 16
#                         limb pairs of one shift, stays below 2^53, so every float64 sum is an exact integer


def _le_bytes(x: np.ndarray, ring: Ring) -> bytes:
    """Elements as fixed-width little-endian bytes, reduced into the ring (one to_bytes per element: the cheapest
    way out of Python integers)."""
    size = ring.bits // 8
    values = np.asarray(x, dtype=object).reshape(-1).tolist()
    try:
        return b"".join([v.to_bytes(size, "little") for v in values])
    except (OverflowError, AttributeError):    # not reduced into the ring (or not Python integers)
        return b"".join([(int(v) & ring.mask).to_bytes(size, "little") for v in values])


def _limbs16(x: np.ndarray, ring: Ring) -> np.ndarray:
    """(r, c) ring elements -> (limbs, r, c) float64 16-bit limbs, least significant first."""
    limbs = np.frombuffer(_le_bytes(x, ring), dtype="<u2").reshape(x.shape + (ring.bits // 16,))
    return np.moveaxis(limbs, -1, 0).astype(np.float64)


def _limb_dot(a: np.ndarray, b: np.ndarray, ring: Ring) -> np.ndarray:
    """a @ b modulo 2^bits for (m, n) and (n, q) ring elements, exactly: the sum over limb pairs (i, j) with
    i + j below the ring's limb count of (a_i @ b_j) 2^(16 (i + j)), each a_i @ b_j a float64 product of
    integers below 2^16 summed over at most 2^16 rows."""
    m, n = a.shape
    q = b.shape[1]
    count = ring.bits // _LIMB_BITS
    total = np.zeros((m, q), dtype=object)
    for lo in range(0, n, _LIMB_CHUNK):
        al = _limbs16(a[:, lo:lo + _LIMB_CHUNK], ring)             # (L, m, c)
        bl = _limbs16(b[lo:lo + _LIMB_CHUNK], ring)                # (L, c, q)
        prod = (al.reshape(count * m, -1) @ bl.transpose(1, 0, 2).reshape(-1, count * q)).reshape(count, m, count, q)
        for k in range(count):
            shifted = sum(prod[i, :, k - i, :] for i in range(k + 1))
            total = total + (shifted.astype(np.int64).astype(object) << (_LIMB_BITS * k))
    return total


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
        """Matrix product in the ring. Large products go through exact float64 matrix products of 16-bit
        limbs (:func:`_limb_dot`, BLAS instead of Python integers: the Cox Hessian's X'WX was half of a
        fit's time); small ones through numpy's object matmul, then one reduction."""
        a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
        if a.ndim == 2 and b.ndim == 2 and a.shape[1] >= _LIMB_DOT_MIN and min(a.shape[0], b.shape[1]) >= _LIMB_DOT_SIDE:
            return self._mod(_limb_dot(a, b, self))
        return self._mod(a.dot(b))

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
        shape = np.shape(values)
        return np.frombuffer(_le_bytes(values, self), dtype="<u8").astype(np.uint64).reshape(shape + (self.limbs,))

    def from_limbs(self, limbs: np.ndarray) -> np.ndarray:
        limbs = np.asarray(limbs, dtype=np.uint64)
        if limbs.shape[-1] != self.limbs:
            raise ValueError("limbs do not match the ring")
        shape = limbs.shape[:-1]
        return _limbs_to_ints(limbs.reshape(-1, self.limbs)).reshape(shape)

    def pack(self, values) -> str:
        """Compact JSON text: the shape, then base64 of fixed-width little-endian limbs."""
        return ",".join(str(d) for d in np.shape(values)) + ":" + base64.b64encode(_le_bytes(values, self)).decode()

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


def log_uniform_blinds(seed: bytes, label: str, count: int, bits: int = 64, low: int = 16) -> np.ndarray:
    """Positive integers whose base-2 logarithm is about uniform on [low, bits): multiplicative blinds.

    A value S times such a blind shows S only up to a factor of 2^(bits - low), so the coordinator cannot
    sort or difference blinded risk-set sums (see docs/leakage/training.md). The floor keeps at least ``low``
    random bits in every blind: with [0, bits) one blind in 64 was 1 and showed its sum exactly (found in review).
    """
    raw = np.frombuffer(_stream(seed, label, 16 * count), dtype="<u8").reshape(count, 2).astype(np.uint64)
    out = np.empty(count, dtype=object)
    for i, (a, b) in enumerate(raw.tolist()):
        k = low + a % (bits - low)
        out[i] = (1 << k) | (b & ((1 << k) - 1))
    return out

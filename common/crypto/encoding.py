"""Signed fixed-point encoding with one power-of-two scale per vector.

A value ``x`` becomes the integer ``round(x * 2^frac_bits)``; negatives are stored mod n as ``n - |v|``, so
homomorphic sums of encodings are encodings of sums as long as the true result stays below ``n/2`` in
magnitude. One scale per vector (rather than phe's per-number exponent) keeps ciphertexts directly addable
and lets packing and multi-exponentiation work on plain integers. Scaling by a power of two is exact for
float64, so integers (counts) round-trip exactly and floats keep ~53 significant bits given enough
``frac_bits``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point codec: ``frac_bits`` fractional bits; ``max_bits`` bounds the encoded magnitude.

    ``max_bits=None`` only enforces the hard limit ``|v| < n/2`` at :meth:`encode` time.
    """

    frac_bits: int = 0
    max_bits: int | None = None

    def __post_init__(self) -> None:
        if self.frac_bits < 0:
            raise ValueError("frac_bits must be >= 0")
        if self.max_bits is not None and self.max_bits <= 0:
            raise ValueError("max_bits must be positive")

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    def to_ints(self, values: Iterable[float] | np.ndarray) -> list[int]:
        """Signed Python ints ``round(x * 2^frac_bits)``; raises OverflowError above ``2^max_bits``."""
        arr = np.asarray(values)
        if arr.dtype.kind in "iub":
            out = [int(v) << self.frac_bits for v in arr.ravel().tolist()]
        elif arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise ValueError("cannot encode NaN or infinity")
            # ldexp is exact for float64; rint rounds half to even; int() of an integral float is exact
            out = [int(v) for v in np.rint(np.ldexp(arr.astype(np.float64).ravel(), self.frac_bits)).tolist()]
        elif arr.dtype.kind == "O":
            out = [int(v) << self.frac_bits if isinstance(v, int) else _float_to_int(float(v), self.frac_bits)
                   for v in arr.ravel().tolist()]
        else:
            raise TypeError(f"cannot encode dtype {arr.dtype}")
        if self.max_bits is not None:
            self.check(out)
        return out

    def check(self, ints: Sequence[int]) -> None:
        """Raise OverflowError if some ``|v| >= 2^max_bits``."""
        if self.max_bits is None:
            return
        limit = 1 << self.max_bits
        for v in ints:
            if not -limit < v < limit:
                raise OverflowError(f"encoded value {v} exceeds the declared bound 2^{self.max_bits}")

    def from_ints(self, ints: Iterable[int], frac_bits: int | None = None) -> np.ndarray:
        """Signed ints at scale ``2^frac_bits`` (default: ours) back to float64 (correctly rounded)."""
        d = 1 << (self.frac_bits if frac_bits is None else frac_bits)
        return np.array([v / d for v in ints], dtype=np.float64)

    def encode(self, values: Iterable[float] | np.ndarray, n: int) -> list[int]:
        """Plaintexts mod ``n``: negatives become ``n - |v|``; magnitudes must stay below ``n/2``."""
        ints = self.to_ints(values)
        half = n // 2
        for v in ints:
            if not -half <= v <= half:
                raise OverflowError("encoded value does not fit in the plaintext space (|v| > n/2)")
        return [v % n for v in ints]

    def decode_ints(self, plains: Iterable[int], n: int) -> list[int]:
        """Plaintexts mod n to signed ints (values above n/2 are negative)."""
        return [signed(int(m), n) for m in plains]

    def decode(self, plains: Iterable[int], n: int, frac_bits: int | None = None) -> np.ndarray:
        """Plaintexts mod n to float64 at scale ``2^frac_bits`` (default: ours)."""
        return self.from_ints(self.decode_ints(plains, n), frac_bits)


def signed(m: int, n: int) -> int:
    """Map ``m`` in [0, n) to the signed representative (``m > n/2`` means negative)."""
    m %= n
    return m - n if m > n // 2 else m


def _float_to_int(x: float, frac_bits: int) -> int:
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("cannot encode NaN or infinity")
    return int(np.rint(np.ldexp(x, frac_bits)))

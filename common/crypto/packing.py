"""Many fixed-point values per Paillier ciphertext, with overflow tracking.

Slot ``i`` of a plaintext holds ``v_i + offset`` in bits ``[i*slot_bits, (i+1)*slot_bits)``; contents are
kept non-negative so a homomorphic sum adds slot-wise without borrows. A :class:`PackedVector` carries a
public upper bound ``max_slot`` on every slot's content (derived from the DECLARED value bound, never from
the data, so it leaks nothing) and the accumulated ``offset``. Every operation checks that the new bound is
still ``< 2^slot_bits`` and raises ``OverflowError`` before a carry could reach the neighbouring slot.
``n_slots * slot_bits <= n_bits - 1`` keeps the whole packed integer below ``n``.

Unused slots (the tail of the last ciphertext) hold the encoding of 0. Before someone else decrypts,
:func:`mask` adds a fresh uniform mask of ``bits(max_slot) + stat_bits`` bits to EVERY slot (used or not),
so each decrypted slot is statistically within ``2^-stat_bits`` of uniform; the masker keeps the mask and
removes it with :func:`unmask`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .encoding import FixedPoint
from .paillier import PrivateKey, PublicKey, RandomnessPool

DEFAULT_STAT_BITS = 40


@dataclass(frozen=True)
class PackingScheme:
    """Slot layout: ``n_slots`` slots of ``slot_bits``; encoded values satisfy ``|v| < 2^value_bits``."""

    slot_bits: int
    value_bits: int
    n_slots: int
    frac_bits: int = 0

    def __post_init__(self) -> None:
        if self.n_slots < 1 or self.slot_bits < 2:
            raise ValueError("need at least one slot of >= 2 bits")
        if self.value_bits + 1 > self.slot_bits:
            raise ValueError("slot_bits must be >= value_bits + 1")

    @classmethod
    def for_key(cls, pub: PublicKey, slot_bits: int, value_bits: int, frac_bits: int = 0) -> PackingScheme:
        """As many slots as fit below ``n`` for this key."""
        return cls(slot_bits, value_bits, (pub.n_bits - 1) // slot_bits, frac_bits)

    def check_key(self, pub: PublicKey) -> None:
        if self.n_slots * self.slot_bits > pub.n_bits - 1:
            raise ValueError("packing scheme does not fit in this key's plaintext space")

    @property
    def offset(self) -> int:
        return 1 << self.value_bits

    @property
    def initial_max(self) -> int:
        """Largest slot content of a fresh encryption: ``(2^value_bits - 1) + offset``."""
        return (1 << (self.value_bits + 1)) - 1

    @property
    def slot_limit(self) -> int:
        return 1 << self.slot_bits

    @property
    def codec(self) -> FixedPoint:
        return FixedPoint(self.frac_bits, self.value_bits)

    def n_ciphertexts(self, length: int) -> int:
        return max(1, math.ceil(length / self.n_slots))

    # ---- plaintext packing -------------------------------------------------------------------------------
    def pack(self, contents: Sequence[int]) -> int:
        """Non-negative slot contents (each ``< 2^slot_bits``), slot 0 lowest, into one integer."""
        if len(contents) > self.n_slots:
            raise ValueError("too many slot contents")
        sb = self.slot_bits
        if contents and (min(contents) < 0 or max(contents) >= 1 << sb):
            raise OverflowError("slot content outside [0, 2^slot_bits)")
        if sb % 8 == 0 and sb <= 64:
            arr = np.asarray(contents, dtype=np.uint64).astype("<u8")
            raw = arr.view(np.uint8).reshape(-1, 8)[:, : sb // 8].tobytes()
            return int.from_bytes(raw, "little")
        acc = 0
        for v in reversed(contents):
            acc = (acc << sb) | v
        return acc

    def unpack(self, m: int) -> list[int]:
        """All ``n_slots`` slot contents of a plaintext."""
        sb = self.slot_bits
        if sb % 8 == 0 and sb <= 64:
            b = sb // 8
            raw = np.frombuffer(int(m).to_bytes(self.n_slots * b, "little"), dtype=np.uint8).reshape(-1, b)
            wide = np.zeros((self.n_slots, 8), dtype=np.uint8)
            wide[:, :b] = raw
            return wide.view("<u8").ravel().tolist()
        mask = (1 << sb) - 1
        return [(m >> (sb * i)) & mask for i in range(self.n_slots)]


@dataclass
class PackedVector:
    """Encrypted packed vector plus the public bookkeeping needed to add it safely and to decode it."""

    scheme: PackingScheme
    ciphertexts: list[int]
    length: int
    max_slot: int
    offset: int
    frac_bits: int
    masked: bool = False

    def to_dict(self, pub: PublicKey) -> dict[str, Any]:
        """JSON-able form (ciphertexts in the compact fixed-width encoding)."""
        from .serial import ciphertexts_to_str

        s = self.scheme
        return {
            "scheme": [s.slot_bits, s.value_bits, s.n_slots, s.frac_bits],
            "ciphertexts": ciphertexts_to_str(pub, self.ciphertexts),
            "length": self.length, "max_slot": str(self.max_slot), "offset": str(self.offset),
            "frac_bits": self.frac_bits, "masked": self.masked,
        }

    @classmethod
    def from_dict(cls, pub: PublicKey, d: dict[str, Any]) -> PackedVector:
        from .serial import ciphertexts_from_str

        return cls(PackingScheme(*d["scheme"]), ciphertexts_from_str(pub, d["ciphertexts"]), int(d["length"]),
                   int(d["max_slot"]), int(d["offset"]), int(d["frac_bits"]), bool(d["masked"]))


@dataclass
class SlotMask:
    """The masker's secret: one mask per slot (row per ciphertext), needed by :func:`unmask`."""

    values: list[list[int]] = field(repr=False)


# ---- encryption ------------------------------------------------------------------------------------------
def encrypt_packed(key: PublicKey | PrivateKey | RandomnessPool, scheme: PackingScheme,
                   values: Sequence[float] | np.ndarray, mode: str = "full", workers: int = 1) -> PackedVector:
    """Encode ``values`` with the scheme's fixed-point codec and encrypt ``ceil(len/n_slots)`` ciphertexts.

    ``key`` picks the randomness: PrivateKey (owner, CRT), PublicKey (fixed base, ``mode``) or a pool.
    Raises OverflowError if some encoded ``|v| >= 2^value_bits``.
    """
    pub = key.public if isinstance(key, (PrivateKey, RandomnessPool)) else key
    scheme.check_key(pub)
    ints = scheme.codec.to_ints(values)
    off = scheme.offset
    contents = [v + off for v in ints]
    k = scheme.n_slots
    n_ct = scheme.n_ciphertexts(len(contents))
    contents += [off] * (n_ct * k - len(contents))  # unused slots encode 0
    plains = [scheme.pack(contents[i * k:(i + 1) * k]) for i in range(n_ct)]
    if isinstance(key, RandomnessPool):
        cts = [key.encrypt(m) for m in plains]
    elif isinstance(key, PrivateKey):
        cts = key.encrypt_many(plains, workers=workers)
    else:
        cts = key.encrypt_many(plains, mode=mode, workers=workers)
    return PackedVector(scheme, cts, len(ints), scheme.initial_max, off, scheme.frac_bits)


# ---- homomorphic operations ------------------------------------------------------------------------------
def _require_plain(*vs: PackedVector) -> None:
    for v in vs:
        if v.masked:
            raise ValueError("masked vectors only go to decryption; operate before masking")


def add_packed(pub: PublicKey, a: PackedVector, b: PackedVector) -> PackedVector:
    """Slot-wise sum; raises OverflowError if a slot could reach ``2^slot_bits``."""
    _require_plain(a, b)
    if a.scheme != b.scheme or a.length != b.length or len(a.ciphertexts) != len(b.ciphertexts):
        raise ValueError("packed vectors have different layouts")
    if a.frac_bits != b.frac_bits:
        raise ValueError("packed vectors have different scales")
    new_max = a.max_slot + b.max_slot
    if new_max >= a.scheme.slot_limit:
        raise OverflowError(f"slot bound {new_max} would overflow {a.scheme.slot_bits}-bit slots")
    cts = [pub.add(x, y) for x, y in zip(a.ciphertexts, b.ciphertexts)]
    return replace(a, ciphertexts=cts, max_slot=new_max, offset=a.offset + b.offset)


def sum_packed(pub: PublicKey, vectors: Sequence[PackedVector]) -> PackedVector:
    """Sum of several packed vectors (bound checked before any ciphertext work)."""
    if not vectors:
        raise ValueError("nothing to sum")
    total = sum(v.max_slot for v in vectors)
    if total >= vectors[0].scheme.slot_limit:
        raise OverflowError(f"slot bound {total} would overflow {vectors[0].scheme.slot_bits}-bit slots")
    acc = vectors[0]
    for v in vectors[1:]:
        acc = add_packed(pub, acc, v)
    return acc


def mul_packed(pub: PublicKey, a: PackedVector, k: int) -> PackedVector:
    """Multiply every slot by a non-negative integer ``k``; raises OverflowError before a carry."""
    _require_plain(a)
    k = int(k)
    if k < 0:
        raise ValueError("packed slots can only be multiplied by non-negative scalars")
    new_max = a.max_slot * k
    if new_max >= a.scheme.slot_limit:
        raise OverflowError(f"slot bound {new_max} would overflow {a.scheme.slot_bits}-bit slots")
    cts = [pub.mul_scalar(c, k) for c in a.ciphertexts]
    return replace(a, ciphertexts=cts, max_slot=new_max, offset=a.offset * k)


# ---- masking ---------------------------------------------------------------------------------------------
def mask(pub: PublicKey, packed: PackedVector, rng: Any = secrets, stat_bits: int = DEFAULT_STAT_BITS,
         mode: str = "full") -> tuple[PackedVector, SlotMask]:
    """Add a fresh uniform ``bits(max_slot)+stat_bits``-bit mask to every slot (unused ones too).

    The mask encryption also rerandomises the ciphertexts. Raises OverflowError if the masked bound no
    longer fits in a slot. ``rng`` must offer ``randbits`` (default: ``secrets``).
    """
    _require_plain(packed)
    s = packed.scheme
    mbits = packed.max_slot.bit_length() + stat_bits
    new_max = packed.max_slot + (1 << mbits) - 1
    if new_max >= s.slot_limit:
        raise OverflowError(f"a {mbits}-bit mask does not fit in the slot headroom ({s.slot_bits}-bit slots)")
    rows = [[rng.randbits(mbits) for _ in range(s.n_slots)] for _ in packed.ciphertexts]
    cts = [pub.add(c, pub.encrypt(s.pack(r), mode)) for c, r in zip(packed.ciphertexts, rows)]
    return replace(packed, ciphertexts=cts, max_slot=new_max, masked=True), SlotMask(rows)


# ---- decryption ------------------------------------------------------------------------------------------
def decrypt_slots(priv: PrivateKey, packed: PackedVector, workers: int = 1) -> list[int]:
    """Raw contents of ALL slots (what the key owner returns for a masked vector)."""
    s = packed.scheme
    return [v for m in priv.decrypt_many(packed.ciphertexts, workers) for v in s.unpack(m)]


def _finish(packed: PackedVector, contents: Sequence[int]) -> list[int]:
    off = packed.offset
    return [int(c) - off for c in contents[: packed.length]]


def decrypt_packed_ints(priv: PrivateKey, packed: PackedVector, workers: int = 1) -> list[int]:
    """Signed integers (at scale ``2^frac_bits``) of an unmasked packed vector."""
    if packed.masked:
        raise ValueError("vector is masked: decrypt_slots it and unmask with the mask")
    return _finish(packed, decrypt_slots(priv, packed, workers))


def decrypt_packed(priv: PrivateKey, packed: PackedVector, workers: int = 1) -> np.ndarray:
    """float64 values of an unmasked packed vector."""
    return FixedPoint(packed.frac_bits).from_ints(decrypt_packed_ints(priv, packed, workers))


def unmask_ints(packed: PackedVector, slot_mask: SlotMask, contents: Sequence[int]) -> list[int]:
    """Remove the mask (and offset) from decrypted slot contents; returns signed ints."""
    flat = [m for row in slot_mask.values for m in row]
    if len(contents) != len(flat):
        raise ValueError("slot count does not match the mask")
    return _finish(packed, [int(c) - m for c, m in zip(contents, flat)])


def unmask(packed: PackedVector, slot_mask: SlotMask, contents: Sequence[int]) -> np.ndarray:
    """float64 values from masked slot contents decrypted by someone else."""
    return FixedPoint(packed.frac_bits).from_ints(unmask_ints(packed, slot_mask, contents))

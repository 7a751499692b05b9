"""Cohort totals of one station's own columns by masked sums: no Paillier, no fresh encryptions.

A station S whose totals no cross job gives packs every record's columns into 64-bit words (slots
wide enough for their sum over all its rows), adds to each word a uniform mask from a ChaCha20
stream keyed by a secret S shares only with its partner P (X25519 through C), and sends the masked
words to C. C sums the words of the cohort's records; P, told S's cohort positions, sums the same
positions of the mask stream; C subtracts. Arithmetic is modulo 2^64, where every slot's sum fits,
so the difference is exactly the cohort's packed sums. C learns the totals (as from a totals job
under Paillier), P the cohort's positions in S's secretly shuffled table and its size (as training's
receiver does), S nothing. This replaces a Paillier totals job, whose cost was one fresh key-owner
encryption per row of S, when a record's words are few (a wide one-hot set, such as Kaplan-Meier
exits at the hub, stays with Paillier: its words would outweigh the ciphertexts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crypto.pairkey import pair_key
from ..training.shares import pack, prg, unpack

WORD_BITS = 64
LIMB_BITS = 32                 # columns too wide for a word alone are split into limbs of this many bits
MAX_WORDS = 128                # per record (1 KB): above it a Paillier totals job relays fewer bytes
PURPOSE = "lancelot-explore-totals"
_LIMB_MASK = (1 << LIMB_BITS) - 1


@dataclass(frozen=True)
class Layout:
    """Where each column's value (or each of its limbs) sits: per column, ``(word, shift, width, limb)``."""

    places: tuple[tuple[tuple[int, int, int, int], ...], ...]
    words: int


def layout(bits: list[int], n_rows: int) -> Layout:
    """Slots of ``bits + bit_length(n_rows)`` bits (every sum over the rows fits), first fit into words."""
    headroom = max(1, int(n_rows)).bit_length()
    if headroom + LIMB_BITS > WORD_BITS:
        raise ValueError("too many rows for masked 64-bit sums")
    used: list[int] = []
    places = []
    for b in bits:
        b = max(1, int(b))
        limbs = [(0, b)] if b + headroom <= WORD_BITS else \
            [(i, min(LIMB_BITS, b - LIMB_BITS * i)) for i in range((b + LIMB_BITS - 1) // LIMB_BITS)]
        here = []
        for limb, limb_bits in limbs:
            width = limb_bits + headroom
            word = next((w for w, u in enumerate(used) if u + width <= WORD_BITS), None)
            if word is None:
                used.append(0)
                word = len(used) - 1
            here.append((word, used[word], width, limb))
            used[word] += width
        places.append(tuple(here))
    return Layout(tuple(places), len(used))


def encode(columns: list[np.ndarray], bits: list[int], lay: Layout) -> np.ndarray:
    """Every record's columns packed into ``lay.words`` uint64 words (refuses a value above its bits)."""
    n = len(columns[0]) if columns else 0
    words = np.zeros((n, lay.words), dtype=np.uint64)
    for values, b, places in zip(columns, bits, lay.places):
        values = np.asarray(values)
        ints = [int(v) for v in values.tolist()] if values.dtype == object or len(places) > 1 else None
        low, high = ((min(ints), max(ints)) if ints is not None else (int(values.min()), int(values.max()))) \
            if n else (0, 0)
        if low < 0 or high.bit_length() > max(1, b):
            raise ValueError("a column value does not fit the bits it was described with")
        for word, shift, _width, limb in places:
            if ints is None:  # numpy integers that fit one slot
                part = values.astype(np.uint64)
            else:
                part = np.array([(v >> (LIMB_BITS * limb)) & _LIMB_MASK if len(places) > 1 else v for v in ints],
                                dtype=np.uint64)
            words[:, word] += part << np.uint64(shift)
    return words


def decode(word_sums: np.ndarray, lay: Layout) -> list[int]:
    """The per-column sums from the per-word sums (each slot read at its shift, limbs recombined)."""
    total = [int(w) for w in np.asarray(word_sums, dtype=np.uint64)]
    return [sum(((total[word] >> shift) & ((1 << width) - 1)) << (LIMB_BITS * limb)
                for word, shift, width, limb in places) for places in lay.places]


def mask_stream(key: bytes, station: str, n_rows: int, words: int) -> np.ndarray:
    """S's stream: named after S, so that two stations masking under the same pair key (each the other's
    partner) never reuse one pad (C would subtract their uploads)."""
    return prg(key, f"masks|{station}", (n_rows, words))


def station_key(private_hex: str, peer_public_hex: str, station: str, partner: str) -> bytes:
    return pair_key(private_hex, peer_public_hex, (station, partner), PURPOSE)


def masked_words(columns: list[np.ndarray], bits: list[int], key: bytes, station: str) -> str:
    """S's side: its packed records plus the mask stream, as compact text."""
    lay = layout(bits, len(columns[0]) if columns else 0)
    words = encode(columns, bits, lay)
    return pack(words + mask_stream(key, station, *words.shape))


def cohort_sum(text: str, rows: np.ndarray) -> np.ndarray:
    """C's side: the masked words summed over the cohort's rows (mod 2^64)."""
    words = unpack(text)
    return words[np.asarray(rows, dtype=np.int64)].sum(axis=0, dtype=np.uint64)


def mask_sum(key: bytes, station: str, n_rows: int, words: int, rows: np.ndarray) -> np.ndarray:
    """P's side: the mask stream summed over the cohort's rows (mod 2^64)."""
    return mask_stream(key, station, n_rows, words)[np.asarray(rows, dtype=np.int64)].sum(axis=0, dtype=np.uint64)


def totals(masked_sum: np.ndarray, masks_sum: np.ndarray, lay: Layout) -> list[int]:
    """C: the cohort's column sums (exact: every slot's sum is below its width, the word's below 2^64)."""
    return decode(np.asarray(masked_sum, dtype=np.uint64) - np.asarray(masks_sum, dtype=np.uint64), lay)


def pack_rows(rows: np.ndarray) -> str:
    return pack(np.asarray(rows, dtype=np.uint64))


def unpack_rows(text: str) -> np.ndarray:
    """Cohort positions relayed by C (a station refuses anything but one flat list)."""
    try:
        rows = unpack(str(text))
    except (ValueError, TypeError) as exc:
        raise ValueError("unreadable cohort positions") from exc
    if rows.ndim != 1:
        raise ValueError("cohort positions must be one flat list")
    return rows.astype(np.int64)


def pack_sums(sums: np.ndarray) -> str:
    return pack(np.asarray(sums, dtype=np.uint64))


def unpack_sums(text: str, words: int) -> np.ndarray:
    try:
        sums = unpack(str(text))
    except (ValueError, TypeError):
        sums = None
    if sums is None or sums.shape != (words,):
        raise ValueError("the partner's mask sums are missing or of the wrong length")
    return sums

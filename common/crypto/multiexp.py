"""Encrypted dot products as multi-exponentiations ``prod c_i^{x_i} mod n^2``.

Computing each ``c_i^{x_i}`` separately costs about ``1.5 * bits(x)`` multiplications per element; the
bucket (Pippenger) method shares the squarings and costs about ``bits(x)/w * (N + 2^(w+1))`` in total.
Negative scalars are grouped: ``prod_{x>0} c^x * (prod_{x<0} c^{|x|})^{-1}``, one inversion at the end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from .encoding import FixedPoint
from .paillier import PublicKey, _split
from .pool import process_pool

_SMALL = 8  # below this many terms, plain powmod is as fast


def _window(n_terms: int, max_bits: int) -> int:
    """Window minimising ``ceil(bits/w) * (N + 2^(w+1))`` (bucket adds plus running-sum combination)."""
    best_w, best_cost = 1, None
    for w in range(1, 17):
        cost = -(-max_bits // w) * (n_terms + (1 << (w + 1))) + max_bits
        if best_cost is None or cost < best_cost:
            best_w, best_cost = w, cost
    return best_w


def multiexp(bases: Sequence[Any], exps: Sequence[int], modulus: int) -> Any:
    """``prod bases[i]^exps[i] mod modulus`` for non-negative integer exponents (returns mpz)."""
    mod = mpz(modulus)
    pairs = [(mpz(b), int(e)) for b, e in zip(bases, exps, strict=True) if e]
    if any(e < 0 for _, e in pairs):
        raise ValueError("multiexp needs non-negative exponents; use encrypted_dot for signed scalars")
    if not pairs:
        return mpz(1)
    if len(pairs) < _SMALL:
        acc = mpz(1)
        for b, e in pairs:
            acc = acc * gmpy2.powmod(b, e, mod) % mod
        return acc
    max_bits = max(e.bit_length() for _, e in pairs)
    w = _window(len(pairs), max_bits)
    n_win = -(-max_bits // w)
    mask = (1 << w) - 1
    bs = [b for b, _ in pairs]
    if max_bits <= 63:
        e_arr = np.array([e for _, e in pairs], dtype=np.uint64)
        digit_rows = [((e_arr >> np.uint64(k * w)) & np.uint64(mask)).tolist() for k in range(n_win)]
    else:
        es = [e for _, e in pairs]
        digit_rows = [[(e >> (k * w)) & mask for e in es] for k in range(n_win)]
    result = None
    for k in range(n_win - 1, -1, -1):
        if result is not None:
            for _ in range(w):
                result = result * result % mod
        buckets: list[Any] = [None] * (mask + 1)
        for b, d in zip(bs, digit_rows[k]):
            if d:
                cur = buckets[d]
                buckets[d] = b if cur is None else cur * b % mod
        # sum_d d * B_d as running products, from the top bucket down
        running = None
        acc = None
        for d in range(mask, 0, -1):
            bd = buckets[d]
            if bd is not None:
                running = bd if running is None else running * bd % mod
            if running is not None:
                acc = running if acc is None else acc * running % mod
        if acc is not None:
            result = acc if result is None else result * acc % mod
    return mpz(1) if result is None else result


def _as_int_list(scalars: Sequence[int] | np.ndarray) -> list[int]:
    arr = np.asarray(scalars)
    if arr.dtype.kind == "f":
        raise TypeError("scalars must be integers; use encrypted_dot_float for floats")
    return [int(x) for x in arr.ravel().tolist()]


def encrypted_dot(pub: PublicKey, ciphertexts: Sequence[int], scalars: Sequence[int] | np.ndarray,
                  workers: int = 1) -> int:
    """Enc(sum x_i m_i) from Enc(m_i) and signed integer scalars ``x_i`` (no fresh randomness added).

    ``workers > 1`` splits the terms over processes (partial multiexps multiplied at the end).
    """
    xs = _as_int_list(scalars)
    if len(xs) != len(ciphertexts):
        raise ValueError("length mismatch")
    pos_b, pos_e, neg_b, neg_e = [], [], [], []
    for c, x in zip(ciphertexts, xs):
        if x > 0:
            pos_b.append(c)
            pos_e.append(x)
        elif x < 0:
            neg_b.append(c)
            neg_e.append(-x)
    n2 = pub._n2
    if workers > 1 and len(xs) >= 256 * workers:
        res = _multiexp_parallel(pos_b, pos_e, n2, workers)
        if neg_b:
            res = res * gmpy2.invert(_multiexp_parallel(neg_b, neg_e, n2, workers), n2) % n2
        return int(res)
    res = multiexp(pos_b, pos_e, n2)
    if neg_b:
        res = res * gmpy2.invert(multiexp(neg_b, neg_e, n2), n2) % n2
    return int(res)


def _multiexp_parallel(bases: list[Any], exps: list[int], mod: Any, workers: int) -> Any:
    """Multiexp with the terms split over ``workers`` processes (forked workers inherit the terms)."""
    if len(bases) < 2 * _SMALL * workers:
        return multiexp(bases, exps, mod)
    step = -(-len(bases) // workers)
    ranges = [(i, min(i + step, len(bases))) for i in range(0, len(bases), step)]
    _MX.update(bases=bases, exps=exps, mod=int(mod))
    try:
        ex = process_pool(len(ranges), _init_mx_worker, (bases, exps, int(mod)))
        ex.submit(int, 0).result()
    finally:
        _MX.clear()
    res = mpz(1)
    with ex:
        for part in ex.map(_mx_range, ranges):
            res = res * part % mod
    return res


def encrypted_matvec(pub: PublicKey, ciphertexts: Sequence[int], matrix_int: Sequence[Sequence[int]] | np.ndarray,
                     workers: int = 1) -> list[int]:
    """``Enc(A @ m)`` for an integer matrix ``A`` (rows x len(m)): one multiexp per ROW of ``A``.

    ``workers > 1`` spreads rows over processes (ciphertexts are sent to each worker once).
    """
    rows = [_as_int_list(r) for r in matrix_int]
    cts = [int(c) for c in ciphertexts]
    if workers is None or workers <= 0:
        workers = os.cpu_count() or 1
    if workers <= 1 or len(rows) < 2:
        return [encrypted_dot(pub, cts, r) for r in rows]
    chunks = _split(rows, min(workers, len(rows)))
    _DOT.update(pub=pub, cts=cts)  # forked workers inherit these; others get them via the initializer
    try:
        ex = process_pool(len(chunks), _init_dot_worker, (pub.n, cts))
        ex.submit(int, 0).result()
    finally:
        _DOT.clear()
    with ex:
        return [v for part in ex.map(_dot_rows, chunks) for v in part]


def encrypted_dot_float(pub: PublicKey, ciphertexts: Sequence[int], weights: Sequence[float] | np.ndarray,
                        codec: FixedPoint, ciphertext_frac_bits: int = 0) -> tuple[int, int]:
    """Dot product with float weights encoded by ``codec``; returns ``(ciphertext, result_frac_bits)``.

    The result is at scale ``2^(ciphertext_frac_bits + codec.frac_bits)``: decode it with that many
    fractional bits.
    """
    xs = codec.to_ints(weights)
    return encrypted_dot(pub, ciphertexts, xs), ciphertext_frac_bits + codec.frac_bits


_DOT: dict[str, Any] = {}
_MX: dict[str, Any] = {}


def _init_mx_worker(bases: list[Any], exps: list[int], mod: int) -> None:
    if "bases" not in _MX:
        _MX.update(bases=bases, exps=exps, mod=mod)


def _mx_range(r: tuple[int, int]) -> int:
    a, b = r
    return int(multiexp(_MX["bases"][a:b], _MX["exps"][a:b], _MX["mod"]))


def _init_dot_worker(n: int, cts: list[int]) -> None:
    if "pub" not in _DOT:
        _DOT["pub"] = PublicKey(n)
        _DOT["cts"] = cts


def _dot_rows(rows: list[list[int]]) -> list[int]:
    return [encrypted_dot(_DOT["pub"], _DOT["cts"], r) for r in rows]

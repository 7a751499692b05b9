"""Cohort counts across two stations on exponential ElGamal, for cross jobs whose columns are all 0/1.

The same four steps and the same parties as :mod:`.product` (Paillier), with a cheaper cipher where
only counts are summed (:mod:`lancelot.crypto.ecelgamal`): a Kaplan-Meier curve stratified by a
column at another station (thousands of 0/1 exit columns at one station times a few one-hot
levels at the other), a quantile grid or histogram by a category, and the like.

1. R (key owner) draws k fresh keys for its k columns, encrypts each row as k + 1 points (one
   randomness r shared by the row's columns, every point by fixed-base multiplication) and makes
   the fresh zero rows C pads with.
2. C lays these out in L's order: a linked row plus a fresh zero row (point by point), any other L
   row a zero row alone. L cannot tell which.
3. L sums, per L column a, the rows where a = 1, for the R columns a is multiplied with. Rows with
   the same set of L columns are summed once (a "pattern"), so a family of one-hot columns costs one
   row sum per row. Every column's sum is re-randomised with a fresh s of L's (c1 + sG,
   c2_j + s x_j G): the key owner, who knows every r and every zero's randomness, could otherwise
   recognise which of its rows and zeros make up a small sum.
4. R returns x_j c1_a for each result; C subtracts it from c2_(a, j) and takes the discrete
   logarithm of the small count.

C learns the sums (as with Paillier, before disclosure control); L sees only fresh ciphertexts in
its own order; R sees only uniformly random points. Leakage table: docs/leakage/exploration.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..crypto import ecelgamal as ec
from ..crypto.pool import process_pool
from .product import Zeros, workers

MAX_COLUMNS = 16        # R columns (keys) per job: each costs a point per row
_PARALLEL_FROM = 2000   # point operations below which worker processes do not pay


def _map(fn, chunks: list[tuple], n_workers: int) -> list:
    if n_workers <= 1 or len(chunks) <= 1:
        return [fn(*c) for c in chunks]
    with process_pool(n_workers) as pool:
        return list(pool.map(fn, *zip(*chunks, strict=True)))


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    step = -(-n // max(1, parts))
    return [(i, min(n, i + step)) for i in range(0, n, step)] if n else []


# ---------------------------------------------------------------------------------------------
# R: keys, rows, zero rows, partial decryption
# ---------------------------------------------------------------------------------------------
def encrypt(keys: ec.Keys, columns: list[np.ndarray]) -> bytes:
    """Every row's k 0/1 (small non-negative) values: (k + 1) points per row, in row order."""
    matrix = np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1) if columns else np.zeros((0, 0))
    if matrix.size and (matrix.min() < 0 or matrix.max() > 1):
        raise ValueError("only 0/1 columns are encrypted for counts")
    return _encrypt_matrix(keys, matrix.tolist())


def make_zeros(keys: ec.Keys, count: int) -> bytes:
    """``count`` fresh zero rows (k + 1 points each) for the coordinator's padding, each used once."""
    return _encrypt_matrix(keys, [[0] * len(keys.secret)] * count)


def _encrypt_matrix(keys: ec.Keys, rows: list[list[int]]) -> bytes:
    n_workers = workers() if len(rows) * (len(keys.secret) + 1) >= _PARALLEL_FROM else 1
    parts = _map(ec.encrypt_rows, [(keys.secret, rows[a:b]) for a, b in _split(len(rows), 4 * n_workers)], n_workers)
    return b"".join(parts)


def partial_decrypt(keys: ec.Keys, c1s: list[bytes], needs: list[list[int]]) -> list[bytes]:
    """x_j * c1_a for every result (a, j), in the order of ``needs``."""
    if len(c1s) != len(needs) or any(j not in range(len(keys.secret)) for js in needs for j in js):
        raise ValueError("the results do not match this station's keys")
    count = sum(len(js) for js in needs)
    n_workers = workers() if count >= _PARALLEL_FROM // 10 else 1
    chunks = [(keys.secret, c1s[a:b], needs[a:b]) for a, b in _split(len(c1s), 4 * n_workers)]
    return [p for part in _map(_decrypt_chunk, chunks, n_workers) for p in part]


def _decrypt_chunk(secret: list[int], c1s: list[bytes], needs: list[list[int]]) -> list[bytes]:
    return [d for c1, js in zip(c1s, needs, strict=True) for d in ec.partial_decrypt(secret, c1, js)]


# ---------------------------------------------------------------------------------------------
# C: layout in L's order; counts from the partial decryptions
# ---------------------------------------------------------------------------------------------
def layout_for_l(rows: list[bytes], zeros: Zeros, width: int, l_rows: int, pairs_l: np.ndarray,
                 pairs_r: np.ndarray) -> bytes:
    """L-ordered rows: a linked row plus a fresh zero row (an unlinkable copy), any other row a zero row."""
    out = zeros.take(l_rows)
    pairs = list(zip(pairs_l.tolist(), pairs_r.tolist()))
    n_workers = workers() if len(pairs) * width >= _PARALLEL_FROM else 1
    spans = _split(len(pairs), n_workers)
    chunks = [([p for i, j in pairs[a:b] for p in rows[j * width:(j + 1) * width]],
               [z for i, _ in pairs[a:b] for z in out[i * width:(i + 1) * width]]) for a, b in spans]
    for (a, b), added in zip(spans, _map(_add_all, chunks, n_workers), strict=True):
        for k, (i, _) in enumerate(pairs[a:b]):
            out[i * width:(i + 1) * width] = added[k * width:(k + 1) * width]
    return b"".join(out)


def _add_all(points: list[bytes], others: list[bytes]) -> list[bytes]:
    return [ec.add(p, q) for p, q in zip(points, others, strict=True)]


def membership(zeros: Zeros, width: int, l_rows: int, cohort_rows: np.ndarray) -> bytes:
    """Enc(1) under the first key for L's rows in the cohort and Enc(0) for the others, from the key owner's zero
    rows: adding G to a zero row's second point is a plaintext addition, so every row is as fresh as its zero."""
    out = zeros.take(l_rows)
    g = ec.base_mult(1)
    for i in np.asarray(cohort_rows).tolist():
        out[i * width + 1] = ec.add(out[i * width + 1], g)
    return b"".join(out)


def _per_column(results: list[bytes], needs: list[list[int]]) -> Iterator[tuple[bytes, list[bytes]]]:
    """The flat result layout, per L column: its first point and one second point per needed R column."""
    if len(results) != len(needs) + sum(len(js) for js in needs):
        raise ValueError("the results do not match the job")
    pos = 0
    for js in needs:
        yield results[pos], results[pos + 1:pos + 1 + len(js)]
        pos += 1 + len(js)


def counts(results: list[bytes], decryptions: list[bytes], needs: list[list[int]], bound: int) -> list[list[int]]:
    """Per L column a, the counts for the R columns in ``needs[a]`` (each at most ``bound``)."""
    if len(decryptions) != sum(len(js) for js in needs):
        raise ValueError("the results and their decryptions do not match the job")
    logs = ec.SmallLog(bound)
    shares = iter(decryptions)
    return [[logs.log(ec.sub(c2, next(shares))) for c2 in c2s] for _, c2s in _per_column(results, needs)]


def c1_of(results: list[bytes], needs: list[list[int]]) -> list[bytes]:
    """The first point of every L column's result (what the key owner partially decrypts)."""
    return [c1 for c1, _ in _per_column(results, needs)]


# ---------------------------------------------------------------------------------------------
# L: aggregate
# ---------------------------------------------------------------------------------------------
def aggregate(public: list[bytes], layout: list[bytes], columns: list[np.ndarray],
              needs: list[list[int]]) -> list[bytes]:
    """Per L column a: [c1_a, c2_(a, j) for j in needs[a]], summed over the rows where a = 1, re-randomised."""
    width = len(public) + 1
    if len(layout) % width or len(columns) != len(needs):
        raise ValueError("the relayed layout does not match the job")
    n = len(layout) // width
    if any(j not in range(len(public)) for js in needs for j in js):
        raise ValueError("a column needs a key the job does not have")
    per_row: list[list[int]] = [[] for _ in range(n)]
    for a, col in enumerate(columns):
        col = np.asarray(col)
        if col.shape != (n,):
            raise ValueError("a column does not match the relayed layout's rows")
        nz = np.flatnonzero(col)
        if nz.size and np.any(col[nz] != 1):
            raise ValueError("only 0/1 columns are summed for counts")
        if needs[a]:
            for i in nz.tolist():
                per_row[i].append(a)
    pattern_of: dict[tuple[int, ...], int] = {}
    row_patterns = [(i, pattern_of.setdefault(tuple(p), len(pattern_of))) for i, p in enumerate(per_row) if p]
    n_workers = workers() if len(row_patterns) * width >= _PARALLEL_FROM else 1
    chunks = [(layout, width, row_patterns[a:b], len(pattern_of)) for a, b in _split(len(row_patterns), n_workers)]
    sums = _merge(_map(_bucket_sums, chunks, n_workers))
    by_column: list[list[int]] = [[] for _ in columns]
    for pattern, p in pattern_of.items():
        for a in pattern:
            by_column[a].append(p)
    n_workers = workers() if len(columns) * width >= _PARALLEL_FROM // 10 else 1
    chunks = [(public, sums, by_column[a:b], needs[a:b]) for a, b in _split(len(columns), 4 * n_workers)]
    return [p for part in _map(_column_results, chunks, n_workers) for p in part]


def _bucket_sums(layout: list[bytes], width: int, row_patterns: list[tuple[int, int]],
                 n_patterns: int) -> list[list[bytes] | None]:
    sums: list[list[bytes] | None] = [None] * n_patterns
    for i, p in row_patterns:
        row = layout[i * width:(i + 1) * width]
        acc = sums[p]
        sums[p] = row if acc is None else [ec.add(x, y) for x, y in zip(acc, row)]
    return sums


def _merge(parts: list[list[list[bytes] | None]]) -> list[list[bytes] | None]:
    out = parts[0] if parts else []
    for part in parts[1:]:
        out = [b if a is None else a if b is None else [ec.add(x, y) for x, y in zip(a, b)]
               for a, b in zip(out, part, strict=True)]
    return out


def _column_results(public: list[bytes], sums: list[list[bytes] | None], patterns: list[list[int]],
                    needs: list[list[int]]) -> list[bytes]:
    out: list[bytes] = []
    for ps, js in zip(patterns, needs, strict=True):
        c1, c2s = ec.IDENTITY, [ec.IDENTITY] * len(js)
        for p in ps:
            points = sums[p]
            c1 = ec.add(c1, points[0])
            c2s = [ec.add(c2, points[1 + j]) for c2, j in zip(c2s, js)]
        out.extend(ec.rerandomise(public, c1, c2s, js))
    return out

"""Paillier encryption with g = n + 1, tuned for throughput.

Ciphertexts are plain Python ints ``c = (1 + m*n) * rho mod n^2`` where ``rho`` is an n-th residue.
Where ``rho`` comes from decides speed and the security assumption, so there are three sources:

* **Key owner** (:meth:`PrivateKey.encrypt`, :meth:`PrivateKey.random_rn`): ``r`` uniform in Z_n^*,
  ``r^n mod n^2`` computed by CRT mod p^2 and q^2 (using ``x^p mod p^2`` depends only on ``x mod p``).
  This is exactly textbook Paillier randomness; assumption: DCR.
* **Anyone else** (:meth:`PublicKey.encrypt`): Damgard-Jurik-Nielsen style fixed base. A public
  ``hs = h^n mod n^2`` with ``h = -x^2 mod n`` (``x`` random) replaces ``r^n`` by ``hs^a`` (so ``r = h^a``),
  evaluated with a fixed-base windowed table (about ``len(a)/w`` multiplications mod n^2).

  - ``mode="full"`` (default): ``a`` uniform with ``n_bits + 128`` bits, so ``hs^a`` is statistically
    close (2^-128) to uniform in the cyclic group ``<hs>``. Security argument: DJN (2010, journal version),
    reducing to DCR. Caveat written down honestly: ``r`` ranges over ``<h>``, not all of Z_n^*, and DJN's
    analysis is stated for safe primes; the primes here come from OpenSSL's RSA generator (not safe primes),
    so we rely on the common practice that this subgroup variant is as hard as DCR.
  - ``mode="short"``: ``a`` has ``n_bits/2`` bits (DJN's short-exponent variant). This additionally assumes
    that short exponents ``h^a`` are indistinguishable from full-length ones in a group of unknown order
    (a short-exponent / DCR-variant assumption). Faster (about 2x), but a stronger assumption.

  ``hs`` must come from the key owner (published in ``PublicKey.to_dict``) or be made by the encrypting
  party itself (:meth:`PublicKey.make_hs`): a third party could publish a degenerate ``hs`` and break hiding.
* **Bulk precomputation** (:class:`RandomnessPool`): ``rho`` values precomputed from either source above,
  optionally in worker processes, each handed out exactly once.

Decryption uses CRT with precomputed ``hp, hq`` (the same algorithm as ``phe``).

One module: the keys' batch methods and :class:`RandomnessPool` run on the worker-process functions at its
end, which rebuild these keys in each worker, so the keys and their batch helpers would import each other.
"""

from __future__ import annotations

import os
import secrets
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import gmpy2
from gmpy2 import mpz

from .pool import process_pool

DEFAULT_BITS = 2048
_STAT_BITS = 128  # extra exponent bits for statistical closeness in "full" mode
_OWNER_WINDOW = 10  # the owner's CRT tables: 2 x 103 x 1023 residues mod p^2 (about 60 MB at 2048 bits)
MODES = ("full", "short")


def _hex(x: int) -> str:
    return format(int(x), "x")


class FixedBaseTable:
    """Precomputed ``base^(j * 2^(w*i))`` so that ``base^a`` costs one multiplication per nonzero digit.

    Window ``w=8`` (default) lets the digits come straight from ``a.to_bytes``; memory is
    ``ceil(max_bits/8) * 255`` residues mod n^2 (about 35 MB for 2048-bit keys in full mode). A wider
    window trades memory and build time for fewer multiplications (``w=10``: 20% fewer, 4x the table).
    """

    def __init__(self, base: int, modulus: int, max_bits: int, window: int = 8):
        if not 1 <= window <= 16:
            raise ValueError("window must be 1-16 bits")
        self.modulus = mpz(modulus)
        self.max_bits = max_bits
        self.window = window
        self.n_windows = (max_bits + window - 1) // window
        rows: list[list[Any]] = []
        g = mpz(base) % self.modulus
        for _ in range(self.n_windows):
            row = [mpz(1), g]
            acc = g
            for _j in range(2, 1 << window):
                acc = acc * g % self.modulus
                row.append(acc)
            rows.append(row)
            g = acc * g % self.modulus  # g^(2^w): base of next window
        self.rows = rows

    def pow(self, a: int) -> Any:
        """``base^a mod modulus`` for ``0 <= a < 2^max_bits`` (returns an mpz)."""
        if a < 0 or a.bit_length() > self.max_bits:
            raise ValueError("exponent out of the table's range")
        mod = self.modulus
        rows = self.rows
        acc = None
        if self.window == 8:
            for i, d in enumerate(int(a).to_bytes(self.n_windows, "little")):
                if d:
                    acc = rows[i][d] if acc is None else acc * rows[i][d] % mod
        else:
            a, w, mask = int(a), self.window, (1 << self.window) - 1
            for row in rows:
                d = a & mask
                a >>= w
                if d:
                    acc = row[d] if acc is None else acc * row[d] % mod
        return mpz(1) if acc is None else acc


class PublicKey:
    """Paillier public key (g = n + 1), optionally carrying a published DJN base ``hs``."""

    def __init__(self, n: int, hs: int | None = None):
        self.n = int(n)
        self.nsquare = self.n * self.n
        self.n_bits = self.n.bit_length()
        self._n = mpz(self.n)
        self._n2 = mpz(self.nsquare)
        self.hs: int | None = None
        self._table: FixedBaseTable | None = None
        if hs is not None:
            self.set_hs(hs)

    # ---- identity / (de)serialisation -------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.n)

    def __repr__(self) -> str:
        return f"PublicKey(n_bits={self.n_bits}, hs={'yes' if self.hs else 'no'})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (hex strings); includes ``hs`` when one is attached."""
        d: dict[str, Any] = {"kind": "paillier-public", "n": _hex(self.n)}
        if self.hs is not None:
            d["hs"] = _hex(self.hs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublicKey:
        if d.get("kind", "paillier-public") != "paillier-public":
            raise ValueError("not a Paillier public key dict")
        hs = d.get("hs")
        return cls(int(d["n"], 16), int(hs, 16) if hs is not None else None)

    # ---- DJN fixed base -----------------------------------------------------------------------------
    def set_hs(self, hs: int) -> None:
        """Attach a DJN base; only accept one made by the key owner or by yourself (see module doc)."""
        hs = int(hs)
        if not (1 < hs < self.nsquare) or gmpy2.gcd(hs, self._n) != 1:
            raise ValueError("invalid hs")
        self.hs = hs
        self._table = None

    def make_hs(self) -> int:
        """Make and attach our own ``hs = (-x^2)^n mod n^2`` (for parties that do not trust a published one)."""
        while True:
            x = secrets.randbelow(self.n - 2) + 2
            if gmpy2.gcd(x, self._n) == 1:
                break
        h = (-(mpz(x) * x)) % self._n
        hs = int(gmpy2.powmod(h, self._n, self._n2))
        self.set_hs(hs)
        return hs

    def exponent_bits(self, mode: str) -> int:
        if mode == "full":
            return self.n_bits + _STAT_BITS
        if mode == "short":
            return self.n_bits // 2
        raise ValueError(f"mode must be one of {MODES}")

    @property
    def table(self) -> FixedBaseTable:
        """The fixed-base table for ``hs`` (built on first use; covers both modes)."""
        if self._table is None:
            if self.hs is None:
                self.make_hs()
            assert self.hs is not None
            self._table = FixedBaseTable(self.hs, self.nsquare, self.exponent_bits("full"))
        return self._table

    # ---- randomness and encryption ------------------------------------------------------------------
    def random_rn(self, mode: str = "full") -> Any:
        """A fresh n-th residue ``hs^a mod n^2`` (mpz), ``a`` drawn with ``secrets``."""
        a = secrets.randbits(self.exponent_bits(mode))
        return self.table.pow(a)

    def random_rn_plain(self) -> Any:
        """Textbook ``r^n mod n^2`` with r uniform in Z_n^* (slow; reference for tests and fallback)."""
        return gmpy2.powmod(_random_unit(self.n), self._n, self._n2)

    def _encode_message(self, m: int) -> Any:
        m = int(m)
        if not 0 <= m < self.n:
            m %= self.n
        return m

    def raw_encrypt(self, m: int, rn: Any) -> int:
        """``(1 + m*n) * rn mod n^2`` computed as ``rn + n*(m*rn mod n)`` (one cheap product)."""
        m = self._encode_message(m)
        rn = mpz(rn)
        return int((rn + self._n * (m * rn % self._n)) % self._n2)

    def encrypt(self, m: int, mode: str = "full", rn: Any | None = None) -> int:
        """Encrypt plaintext ``m`` (taken mod n) with fixed-base randomness (or the given ``rn``)."""
        return self.raw_encrypt(m, self.random_rn(mode) if rn is None else rn)

    def encrypt_many(self, ms: Iterable[int], mode: str = "full", workers: int = 1) -> list[int]:
        """Encrypt a batch; ``workers > 1`` spreads it over processes (each rebuilds the table once)."""
        ms = [int(m) for m in ms]
        if workers <= 1 or len(ms) < 2 * workers:
            return [self.encrypt(m, mode) for m in ms]
        _ = self.table  # build once here; forked workers inherit it
        chunks = _split(ms, workers)
        with _executor(workers, "pub", self, _init_pub_worker, (self.n, self.hs)) as ex:
            parts = ex.map(_pub_encrypt_chunk, chunks, [mode] * len(chunks))
            return [c for part in parts for c in part]

    # ---- homomorphic operations ---------------------------------------------------------------------
    def add(self, c1: int, c2: int) -> int:
        """Enc(m1 + m2)."""
        return int(mpz(c1) * c2 % self._n2)

    def add_plain(self, c: int, m: int) -> int:
        """Enc(c + m) without fresh randomness (rerandomise before sending if needed)."""
        return int(mpz(c) * (1 + self._encode_message(m) * self._n) % self._n2)

    def mul_scalar(self, c: int, k: int) -> int:
        """Enc(k * m) for a signed integer ``k`` (negative via one inversion)."""
        k = int(k)
        if k < 0:
            return int(gmpy2.powmod(gmpy2.invert(mpz(c), self._n2), -k, self._n2))
        return int(gmpy2.powmod(mpz(c), k, self._n2))

    def neg(self, c: int) -> int:
        return int(gmpy2.invert(mpz(c), self._n2))

    def rerandomise(self, c: int, mode: str = "full", rn: Any | None = None) -> int:
        """``c * rho`` with a fresh n-th residue, so the result is unlinkable to ``c``."""
        rho = self.random_rn(mode) if rn is None else rn
        return int(mpz(c) * rho % self._n2)


def _random_unit(n: int) -> int:
    while True:
        r = secrets.randbelow(n - 1) + 1
        if gmpy2.gcd(r, n) == 1:
            return r


class PrivateKey:
    """Paillier private key (p, q) with CRT precomputation for encryption and decryption."""

    def __init__(self, p: int, q: int, public: PublicKey | None = None):
        p, q = int(p), int(q)
        if p == q:
            raise ValueError("p and q must differ")
        if p > q:
            p, q = q, p
        self.p, self.q = p, q
        n = p * q
        self.public = public if public is not None else PublicKey(n)
        if self.public.n != n:
            raise ValueError("public key does not match p*q")
        P, Q = mpz(p), mpz(q)
        self._p, self._q = P, Q
        self._p2, self._q2 = P * P, Q * Q
        self._n = mpz(n)
        # decryption: h_p = L_p(g^(p-1) mod p^2)^-1 mod p with g = n+1
        self._hp = gmpy2.invert(self._l(gmpy2.powmod(self._n + 1, P - 1, self._p2), P), P)
        self._hq = gmpy2.invert(self._l(gmpy2.powmod(self._n + 1, Q - 1, self._q2), Q), Q)
        self._p_inv_q = gmpy2.invert(P, Q)  # CRT mod p, q
        # encryption: r^n mod p^2 = (r^q mod p)^p mod p^2; q reduced mod p-1 (and vice versa)
        self._q_mod_pm1 = Q % (P - 1)
        self._p_mod_qm1 = P % (Q - 1)
        self._p2_inv_q2 = gmpy2.invert(self._p2, self._q2)  # CRT mod p^2, q^2
        self._fixed: tuple[FixedBaseTable, FixedBaseTable] | None = None  # hs mod p^2, q^2 (built on first use)

    @staticmethod
    def _l(x: Any, d: Any) -> Any:
        return (x - 1) // d

    def __repr__(self) -> str:
        return f"PrivateKey(n_bits={self.public.n_bits})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and (other.p, other.q) == (self.p, self.q)

    def __hash__(self) -> int:
        return hash((self.p, self.q))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the secret primes; never produced by the public key's serialisation."""
        return {"kind": "paillier-private", "p": _hex(self.p), "q": _hex(self.q)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], public: PublicKey | None = None) -> PrivateKey:
        if d.get("kind") != "paillier-private":
            raise ValueError("not a Paillier private key dict")
        return cls(int(d["p"], 16), int(d["q"], 16), public)

    def make_hs(self) -> int:
        """Make ``hs = (-x^2)^n mod n^2`` by CRT and attach it to the public key for publication."""
        x = _random_unit(self.public.n)
        hs = int(self.rn_of(-(mpz(x) * x) % self._n))
        self.public.set_hs(hs)
        return hs

    # ---- CRT randomness / encryption -----------------------------------------------------------------
    def rn_of(self, r: int) -> Any:
        """``r^n mod n^2`` via CRT: ``x^p mod p^2`` only depends on ``x mod p``, so exponents shrink to
        ``|p|`` bits."""
        r = mpz(r)
        sp = gmpy2.powmod(gmpy2.powmod(r % self._p, self._q_mod_pm1, self._p), self._p, self._p2)
        sq = gmpy2.powmod(gmpy2.powmod(r % self._q, self._p_mod_qm1, self._q), self._q, self._q2)
        return sp + self._p2 * ((sq - sp) * self._p2_inv_q2 % self._q2)

    def random_rn(self) -> Any:
        """Fresh ``r^n mod n^2`` with ``r`` uniform in Z_n^* (full strength, CRT speed)."""
        return self.rn_of(_random_unit(self.public.n))

    def _fixed_tables(self) -> tuple[FixedBaseTable, FixedBaseTable]:
        if self._fixed is None:
            if self.public.hs is None:
                self.make_hs()
            hs = mpz(self.public.hs)
            self._fixed = (FixedBaseTable(hs % self._p2, self._p2, self.p.bit_length(), window=_OWNER_WINDOW),
                           FixedBaseTable(hs % self._q2, self._q2, self.q.bit_length(), window=_OWNER_WINDOW))
        return self._fixed

    def random_rn_fixed(self) -> Any:
        """``hs^a mod n^2`` for ``a`` of ``n_bits+128`` bits, exactly as :meth:`PublicKey.random_rn` (full mode)
        computes it, but by CRT: ``hs`` mod p^2 lies in the subgroup of order ``p-1``, so its power only
        depends on ``a mod (p-1)``; two tables mod p^2 and q^2 with half-length exponents (about 3x faster).
        Same distribution, same assumption as the public fixed base (DJN, full mode). Tables with 10-bit
        windows (103 multiplications each)."""
        return self.rn_fixed_of(secrets.randbits(self.public.exponent_bits("full")))

    def rn_fixed_of(self, a: int) -> Any:
        """``hs^a mod n^2`` by CRT (see :meth:`random_rn_fixed`)."""
        tp, tq = self._fixed_tables()
        sp = tp.pow(a % (self._p - 1))
        sq = tq.pow(a % (self._q - 1))
        return sp + self._p2 * ((sq - sp) * self._p2_inv_q2 % self._q2)

    def encrypt_fixed(self, m: int) -> int:
        return self.public.raw_encrypt(m, self.random_rn_fixed())

    def raw_encrypt(self, m: int, r: int | None = None) -> int:
        """Encrypt with explicit ``r`` (or a fresh one)."""
        rn = self.rn_of(r) if r is not None else self.random_rn()
        return self.public.raw_encrypt(m, rn)

    def encrypt(self, m: int) -> int:
        return self.public.raw_encrypt(m, self.random_rn())

    def encrypt_many(self, ms: Iterable[int], workers: int = 1, fixed_base: bool = False) -> list[int]:
        """Encrypt a batch with textbook CRT randomness, or (``fixed_base``) with :meth:`random_rn_fixed`."""
        ms = [int(m) for m in ms]
        if workers <= 1 or len(ms) < 2 * workers:
            enc = self.encrypt_fixed if fixed_base else self.encrypt
            return [enc(m) for m in ms]
        if fixed_base:
            self._fixed_tables()  # build once here; forked workers inherit them
        chunks = _split(ms, workers)
        with _executor(workers, "priv", self, _init_priv_worker, (self.p, self.q, self.public.hs)) as ex:
            return [c for part in ex.map(_priv_encrypt_chunk, chunks, [fixed_base] * len(chunks)) for c in part]

    # ---- decryption -----------------------------------------------------------------------------------
    def decrypt(self, c: int) -> int:
        """Plaintext in [0, n) (CRT; signed decoding is done by the encoders)."""
        c = mpz(c)
        if not 0 < c < self.public._n2:
            raise ValueError("ciphertext out of range")
        P, Q = self._p, self._q
        mp = (gmpy2.powmod(c, P - 1, self._p2) - 1) // P * self._hp % P
        mq = (gmpy2.powmod(c, Q - 1, self._q2) - 1) // Q * self._hq % Q
        return int(mp + P * ((mq - mp) * self._p_inv_q % Q))

    def decrypt_many(self, cs: Sequence[int], workers: int = 1) -> list[int]:
        """Batch decrypt, optionally over ``workers`` processes (each receives p, q once)."""
        cs = list(cs)
        if workers <= 1 or len(cs) < 2 * workers:
            return [self.decrypt(c) for c in cs]
        chunks = _split(cs, workers)
        with _executor(workers, "priv", self, _init_priv_worker, (self.p, self.q)) as ex:
            return [m for part in ex.map(_priv_decrypt_chunk, chunks) for m in part]


def generate_keypair(bits: int = DEFAULT_BITS) -> tuple[PublicKey, PrivateKey]:
    """New key pair; primes come from OpenSSL's RSA generator (via ``cryptography``), re-checked here."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    if bits < 1024 or bits % 2:
        raise ValueError("bits must be an even number >= 1024")
    for _ in range(8):
        nums = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
        p, q = nums.p, nums.q
        n = p * q
        if p != q and p.bit_length() == q.bit_length() == bits // 2 and n.bit_length() == bits:
            priv = PrivateKey(p, q)
            return priv.public, priv
    raise RuntimeError("prime generation did not meet the size checks")


# ---- bulk randomness -------------------------------------------------------------------------------------
class RandomnessPool:
    """Precomputed n-th residues, each handed out exactly once.

    ``source`` is a :class:`PrivateKey` (CRT, full-strength r) or a :class:`PublicKey` (fixed base, ``mode``).
    ``pop()`` refills synchronously when empty if ``auto_refill`` else raises ``IndexError``; a value is
    removed from the pool before it is returned, so it can never be reused.
    """

    def __init__(self, source: PublicKey | PrivateKey, mode: str = "full", workers: int | None = 1,
                 auto_refill: bool = True):
        self.source = source
        self.mode = mode
        self.workers = max(1, int(workers)) if workers else (os.cpu_count() or 1)
        self.auto_refill = auto_refill
        self._pool: deque[Any] = deque()
        self.public = source.public if isinstance(source, PrivateKey) else source

    def __len__(self) -> int:
        return len(self._pool)

    def fill(self, count: int) -> None:
        """Precompute ``count`` more values (in ``workers`` processes when > 1)."""
        if count <= 0:
            return
        if self.workers <= 1 or count < 2 * self.workers:
            self._pool.extend(self._one() for _ in range(count))
            return
        sizes = [len(c) for c in _split(list(range(count)), self.workers)]
        if isinstance(self.source, PrivateKey):
            kind, init, args, fn = "priv", _init_priv_worker, (self.source.p, self.source.q), _priv_rn_chunk
        else:
            _ = self.source.table  # build once here; forked workers inherit it
            kind, init, args, fn = "pub", _init_pub_worker, (self.source.n, self.source.hs), _pub_rn_chunk
        with _executor(self.workers, kind, self.source, init, args) as ex:
            for part in ex.map(fn, sizes, [self.mode] * len(sizes)):
                self._pool.extend(mpz(x) for x in part)

    def _one(self) -> Any:
        if isinstance(self.source, PrivateKey):
            return self.source.random_rn()
        return self.source.random_rn(self.mode)

    def pop(self) -> Any:
        if not self._pool:
            if not self.auto_refill:
                raise IndexError("randomness pool is empty")
            return self._one()
        return self._pool.popleft()

    def encrypt(self, m: int) -> int:
        return self.public.raw_encrypt(m, self.pop())

    def rerandomise(self, c: int) -> int:
        return self.public.rerandomise(c, rn=self.pop())


# ---- worker-process helpers (module level so they pickle) --------------------------------------------------
_WORKER: dict[str, Any] = {}


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    k, r = divmod(len(items), parts)
    out, i = [], 0
    for j in range(parts):
        size = k + (1 if j < r else 0)
        if size:
            out.append(items[i:i + size])
        i += size
    return out


def _init_pub_worker(n: int, hs: int) -> None:
    # with the "fork" start method the parent's key (and its built table) is inherited: reuse it
    pub = _WORKER.get("pub")
    if pub is None or pub.n != n or pub.hs != hs:
        _WORKER["pub"] = PublicKey(n, hs)


def _init_priv_worker(p: int, q: int, hs: int | None = None) -> None:
    priv = _WORKER.get("priv")
    if priv is None or (priv.p, priv.q) != (min(p, q), max(p, q)) or (hs is not None and priv.public.hs != hs):
        priv = PrivateKey(p, q)
        if hs is not None:
            priv.public.set_hs(hs)
        _WORKER["priv"] = priv


def _executor(workers: int, kind: str, obj: Any, initializer: Any, initargs: tuple[Any, ...]) -> Any:
    """Process pool whose forked children inherit ``obj`` (no table rebuild); others rebuild it."""
    _WORKER[kind] = obj
    ex = process_pool(workers, initializer, initargs)
    ex.submit(int, 0).result()  # start the workers while ``obj`` is in place
    _WORKER.pop(kind, None)
    return ex


def _pub_encrypt_chunk(ms: list[int], mode: str) -> list[int]:
    pub = _WORKER["pub"]
    return [pub.encrypt(m, mode) for m in ms]


def _pub_rn_chunk(count: int, mode: str) -> list[int]:
    pub = _WORKER["pub"]
    return [int(pub.random_rn(mode)) for _ in range(count)]


def _priv_rn_chunk(count: int, mode: str) -> list[int]:
    priv = _WORKER["priv"]
    return [int(priv.random_rn()) for _ in range(count)]


def _priv_encrypt_chunk(ms: list[int], fixed_base: bool = False) -> list[int]:
    priv = _WORKER["priv"]
    enc = priv.encrypt_fixed if fixed_base else priv.encrypt
    return [enc(m) for m in ms]


def _priv_decrypt_chunk(cs: list[int]) -> list[int]:
    priv = _WORKER["priv"]
    return [priv.decrypt(c) for c in cs]

"""Pseudonyms of match-key values: keyed (the default) or two-party blinded.

Keyed: BLAKE2b keyed with the station pair's secret (X25519 + HKDF, :mod:`..crypto.pairkey`; the
coordinator relays only the public halves) over a 16-byte digest of the value; about a microsecond
per value, both hashes together.
The coordinator cannot test a guess without the pair key; with one station's help it could, as it
could decode that pair's Bloom filters (outside the non-colluding model).

Blinded (``"pseudonyms": "blinded"``, or a node policy that resists collusion): H(key)^(a*b) on
Curve25519 (X25519 via ``cryptography``/OpenSSL), two curve operations per value and station.
Why X25519: the ladder accepts any 32-byte string as a point (on the curve or its twist, and
Curve25519 is twist-secure), so hashing a key to a point is a plain SHA-512 truncation; scalar
multiplication commutes, so a^(b P) = b^(a P); it is constant-time, vetted code at ~40 us per
operation. Each station draws a fresh secret scalar per job, so pseudonyms of different jobs
cannot be joined, and the coordinator, even together with one station, lacks the other station's
scalar needed for a dictionary attack (a DDH-type assumption on Curve25519).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..crypto.pool import process_pool

POINT_BYTES = 32
PSEUDONYM_BYTES = 16   # what the coordinator receives of each doubly blinded point
_DOMAIN = b"lancelot/linkage/v1/"
_PARALLEL_THRESHOLD = 20000
KEYED_PURPOSE = "lancelot-linkage-pseudonyms"   # the pair key's purpose (the Bloom filters use another)
_KEYED_PARALLEL_THRESHOLD = 400_000


def new_secret() -> bytes:
    return secrets.token_bytes(POINT_BYTES)


def hash_to_point(key: str) -> bytes:
    digest = bytearray(hashlib.sha512(_DOMAIN + key.encode()).digest()[:POINT_BYTES])
    digest[31] &= 0x7F  # RFC 7748 ignores the top bit; clear it so encodings are canonical
    return bytes(digest)


def dummy_point() -> bytes:
    return hash_to_point("dummy/" + secrets.token_hex(16))


def _exponentiate_chunk(secret: bytes, points: list[bytes]) -> list[bytes]:
    key = X25519PrivateKey.from_private_bytes(secret)
    out = []
    for p in points:
        try:
            out.append(key.exchange(X25519PublicKey.from_public_bytes(p)))
        except ValueError:  # a low-order input point: map it to an unlinkable dummy
            out.append(dummy_point())
    return out


def exponentiate(secret: bytes, points: list[bytes], workers: int | None = None) -> list[bytes]:
    """Multiply every point by the secret scalar, in parallel worker processes for large inputs."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(points) < _PARALLEL_THRESHOLD:
        return _exponentiate_chunk(secret, points)
    size = -(-len(points) // workers)
    chunks = [points[i:i + size] for i in range(0, len(points), size)]
    with process_pool(workers) as pool:
        parts = list(pool.map(_exponentiate_chunk, [secret] * len(chunks), chunks))
    return [p for part in parts for p in part]


def _blind_chunk(secret: bytes, keys: list[str | None]) -> bytes:
    """Hash each key to a point (a random dummy for None) and multiply by the secret; packed bytes."""
    return b"".join(_exponentiate_chunk(secret, [dummy_point() if k is None else hash_to_point(k) for k in keys]))


def blind_keys(secret: bytes, keys: list[str | None], workers: int | None = None) -> bytes:
    """H(key)^secret for every key (random dummies for None), packed, hashing and curve work spread
    over all cores: the bulk of a station's linkage work."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(keys) < _PARALLEL_THRESHOLD:
        return _blind_chunk(secret, keys)
    size = -(-len(keys) // (4 * workers))   # several chunks per worker: even load on a busy machine
    chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
    with process_pool(workers) as pool:
        return b"".join(pool.map(_blind_chunk, [secret] * len(chunks), chunks))


def _exponentiate_packed(secret: bytes, raw: bytes) -> bytes:
    return b"".join(_exponentiate_chunk(secret, [raw[i:i + POINT_BYTES] for i in range(0, len(raw), POINT_BYTES)]))


def exponentiate_packed(secret: bytes, raw: bytes, workers: int | None = None) -> bytes:
    """Multiply every packed 32-byte point by the secret, in parallel worker processes for large inputs."""
    workers = workers or os.cpu_count() or 1
    n = len(raw) // POINT_BYTES
    if workers <= 1 or n < _PARALLEL_THRESHOLD:
        return _exponentiate_packed(secret, raw)
    size = -(-n // (4 * workers)) * POINT_BYTES
    chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
    with process_pool(workers) as pool:
        return b"".join(pool.map(_exponentiate_packed, [secret] * len(chunks), chunks))


def key_digests(values: list[str | None]) -> bytes:
    """Unkeyed 16-byte BLAKE2b digests of one match key's values, packed (16 random bytes for None: an
    unlinkable dummy). They stay in the station's job folder between the rounds, so that round 2 needs
    neither the data nor the key strings again; only keyed values of them ever leave."""
    out = []
    for v in values:
        out.append(secrets.token_bytes(PSEUDONYM_BYTES) if v is None
                   else hashlib.blake2b(_DOMAIN + v.encode(), digest_size=PSEUDONYM_BYTES).digest())
    return b"".join(out)


def _keyed_chunk(key: bytes, name: str, digests: bytes) -> bytes:
    base = hashlib.blake2b(key=key, digest_size=PSEUDONYM_BYTES)
    base.update(name.encode() + b"\x1f")      # the key's name: equal strings of two keys stay unrelated
    out = []
    for i in range(0, len(digests), PSEUDONYM_BYTES):
        h = base.copy()
        h.update(digests[i:i + PSEUDONYM_BYTES])
        out.append(h.digest())
    return b"".join(out)


def keyed_pseudonyms(key: bytes, name: str, digests: bytes, workers: int | None = None) -> bytes:
    """The keyed pseudonym of every packed digest of match key ``name`` (:func:`key_digests`), packed;
    spread over all cores for large inputs."""
    workers = workers or os.cpu_count() or 1
    n = len(digests) // PSEUDONYM_BYTES
    if workers <= 1 or n < _KEYED_PARALLEL_THRESHOLD:
        return _keyed_chunk(key, name, digests)
    size = -(-n // workers) * PSEUDONYM_BYTES
    chunks = [digests[i:i + size] for i in range(0, len(digests), size)]
    with process_pool(workers) as pool:
        return b"".join(pool.map(_keyed_chunk, [key] * len(chunks), [name] * len(chunks), chunks))


def pack_points(points: list[bytes]) -> str:
    return base64.b64encode(b"".join(points)).decode("ascii")


def unpack_points(text: str) -> list[bytes]:
    raw = base64.b64decode(text)
    if len(raw) % POINT_BYTES:
        raise ValueError("a packed point vector must be a multiple of 32 bytes")
    return [raw[i:i + POINT_BYTES] for i in range(0, len(raw), POINT_BYTES)]


def unpack_points_array(text: str) -> np.ndarray:
    """The same as :func:`unpack_points`, as a numpy array of 32-byte strings (fast joins)."""
    return np.frombuffer(base64.b64decode(text), dtype=f"S{POINT_BYTES}")


def truncate(raw: bytes) -> bytes:
    """The first PSEUDONYM_BYTES of every packed point."""
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(-1, POINT_BYTES)
    return arr[:, :PSEUDONYM_BYTES].tobytes()


def unpack_pseudonyms(text: str) -> np.ndarray:
    """A packed vector of truncated pseudonyms as a numpy array of PSEUDONYM_BYTES-byte strings."""
    raw = base64.b64decode(text)
    if len(raw) % PSEUDONYM_BYTES:
        raise ValueError(f"a packed pseudonym vector must be a multiple of {PSEUDONYM_BYTES} bytes")
    return np.frombuffer(raw, dtype=f"S{PSEUDONYM_BYTES}")


def secure_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation from the OS CSPRNG: rows sorted by 128-bit random keys from
    ``secrets`` (two keys coincide with probability below n^2 / 2^129, the only departure from uniform)."""
    keys = np.frombuffer(secrets.token_bytes(16 * n), dtype="<u8").reshape(n, 2) if n else np.zeros((0, 2), "<u8")
    return np.lexsort((keys[:, 1], keys[:, 0])).astype(np.int64)

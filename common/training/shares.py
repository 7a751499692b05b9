"""Additive sharing modulo 2^64, seeded masks, secret permutations and sealed station-to-station blobs.

Training works on additive shares of fixed-point integers in the ring Z/2^64 (numpy ``uint64``
arithmetic wraps exactly there). Masks and permutations come from a keyed stream cipher (ChaCha20
from ``cryptography``), so two parties holding the same seed derive the same values without
sending them. Station-to-station data travels through the coordinator, sealed with an AEAD key
that only the two stations share (X25519 + HKDF), so the relay cannot read it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..crypto.pairkey import new_exchange_key, pair_key  # noqa: F401 - new_exchange_key: the stations' import


def new_seed() -> bytes:
    return secrets.token_bytes(32)


def prg(seed: bytes, label: str, shape: tuple[int, ...] | int) -> np.ndarray:
    """Uniform ``uint64`` values from (seed, label): a ChaCha20 keystream under a per-label key."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    count = int(np.prod(shape)) if shape else 1
    key = hashlib.blake2b(label.encode(), key=seed, digest_size=32).digest()
    stream = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor().update(b"\0" * (8 * count))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64).reshape(shape)


def permutation(seed: bytes, label: str, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n), known to whoever holds the seed."""
    return np.argsort(prg(seed, label, n), kind="stable")


def to_ring(values: np.ndarray) -> np.ndarray:
    """Signed integers to ring elements (two's complement)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def encode(values: np.ndarray, frac_bits: int) -> np.ndarray:
    """Reals to fixed point in the ring: round(x * 2^frac_bits)."""
    return to_ring(np.rint(np.asarray(values, dtype=float) * float(2 ** frac_bits)).astype(np.int64))


def decode(ring: np.ndarray, frac_bits: int) -> np.ndarray:
    """Ring elements (whose true value fits in int64) back to reals."""
    return np.asarray(ring, dtype=np.uint64).view(np.int64).astype(float) / float(2 ** frac_bits)


def pack(array: np.ndarray) -> str:
    """A ``uint64`` array as compact JSON text (base64 of the raw little-endian bytes, with its shape)."""
    a = np.ascontiguousarray(array, dtype="<u8")
    return ",".join(str(d) for d in a.shape) + ":" + base64.b64encode(a.tobytes()).decode()


def unpack(text: str) -> np.ndarray:
    head, _, body = text.partition(":")
    shape = tuple(int(d) for d in head.split(",")) if head else ()
    return np.frombuffer(base64.b64decode(body), dtype="<u8").astype(np.uint64).reshape(shape)


# ---------------------------------------------------------------------------------------------
# station-to-station channel through the relay
# ---------------------------------------------------------------------------------------------
def shared_key(private_hex: str, peer_public_hex: str, names: tuple[str, str]) -> bytes:
    """The 32-byte secret two stations share (the coordinator relays the public keys only)."""
    return pair_key(private_hex, peer_public_hex, names, "lancelot-training")


def seal(key: bytes, arrays: dict[str, np.ndarray], label: str) -> str:
    """Encrypt and authenticate named arrays for the one station that shares ``key``."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    nonce = secrets.token_bytes(12)
    box = ChaCha20Poly1305(hashlib.sha256(key + b"|aead").digest()).encrypt(nonce, buf.getvalue(), label.encode())
    return base64.b64encode(nonce + box).decode()


def unseal(key: bytes, text: str, label: str) -> dict[str, np.ndarray]:
    raw = base64.b64decode(text)
    plain = ChaCha20Poly1305(hashlib.sha256(key + b"|aead").digest()).decrypt(raw[:12], raw[12:], label.encode())
    with np.load(io.BytesIO(plain), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}

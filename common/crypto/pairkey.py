"""A secret two stations share while the coordinator relays only the public halves (X25519 + HKDF).

Each use names its purpose, so the keys of two protocols between the same stations never coincide.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def new_exchange_key() -> tuple[str, str]:
    """(private, public) X25519 key as hex; the private half stays in the station's job state."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex(), public.hex()


def pair_key(private_hex: str, peer_public_hex: str, names: tuple[str, str], purpose: str) -> bytes:
    """The 32-byte secret of the station pair ``names`` (in either order) for ``purpose``."""
    private = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    secret = private.exchange(X25519PublicKey.from_public_bytes(bytes.fromhex(peer_public_hex)))
    info = (purpose + "|" + "|".join(sorted(names))).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)

"""Key conversion to and from ``phe`` (python-paillier), which also uses g = n + 1.

Raw ciphertext ints are interchangeable; ``phe`` is imported lazily because it is only a test/bench
dependency.
"""

from __future__ import annotations

from typing import Any

from .paillier import PrivateKey, PublicKey


def to_phe(key: PublicKey | PrivateKey) -> Any:
    """phe ``PaillierPublicKey`` for a PublicKey, ``PaillierPrivateKey`` for a PrivateKey."""
    import phe

    if isinstance(key, PrivateKey):
        return phe.PaillierPrivateKey(phe.PaillierPublicKey(key.public.n), key.p, key.q)
    if isinstance(key, PublicKey):
        return phe.PaillierPublicKey(key.n)
    raise TypeError("expected a lancelot PublicKey or PrivateKey")


def from_phe(key: Any) -> PublicKey | PrivateKey:
    """lancelot key from a phe public or private key."""
    import phe

    if isinstance(key, phe.PaillierPrivateKey):
        return PrivateKey(key.p, key.q)
    if isinstance(key, phe.PaillierPublicKey):
        if key.g != key.n + 1:
            raise ValueError("only g = n + 1 keys are supported")
        return PublicKey(key.n)
    raise TypeError("expected a phe PaillierPublicKey or PaillierPrivateKey")

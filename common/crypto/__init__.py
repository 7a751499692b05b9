"""Fast Paillier for lancelot: keys, three randomness sources, CRT decryption, fixed-point encoding,
slot packing with overflow tracking, multi-exponentiation dot products and compact serialisation.

See docs/paillier.md for the security assumptions of each randomness source.
"""

from __future__ import annotations

from .encoding import FixedPoint, signed
from .interop import from_phe, to_phe
from .multiexp import encrypted_dot, encrypted_dot_float, encrypted_matvec, multiexp
from .packing import (
    PackedVector,
    PackingScheme,
    SlotMask,
    add_packed,
    decrypt_packed,
    decrypt_packed_ints,
    decrypt_slots,
    encrypt_packed,
    mask,
    mul_packed,
    sum_packed,
    unmask,
    unmask_ints,
)
from .paillier import FixedBaseTable, PrivateKey, PublicKey, RandomnessPool, generate_keypair
from .serial import ciphertexts_from_str, ciphertexts_to_str, plaintexts_from_str, plaintexts_to_str

__all__ = [
    "FixedBaseTable", "FixedPoint", "PackedVector", "PackingScheme", "PrivateKey", "PublicKey",
    "RandomnessPool", "SlotMask", "add_packed", "ciphertexts_from_str", "ciphertexts_to_str",
    "decrypt_packed", "decrypt_packed_ints", "decrypt_slots", "encrypt_packed", "encrypted_dot",
    "encrypted_dot_float", "encrypted_matvec", "from_phe", "generate_keypair", "mask", "mul_packed",
    "multiexp", "plaintexts_from_str", "plaintexts_to_str", "signed", "sum_packed", "to_phe", "unmask",
    "unmask_ints",
]

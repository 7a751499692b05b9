from __future__ import annotations

import random
import secrets

import numpy as np
import pytest

from lancelot.crypto import (
    FixedPoint,
    PackedVector,
    PackingScheme,
    PrivateKey,
    PublicKey,
    RandomnessPool,
    add_packed,
    decrypt_packed,
    decrypt_packed_ints,
    decrypt_slots,
    encrypt_packed,
    generate_keypair,
    mask,
    mul_packed,
    signed,
    sum_packed,
    unmask,
    unmask_ints,
)

RNG = random.Random(99)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return generate_keypair(1024)


# ---- FixedPoint -----------------------------------------------------------------------------------------
def test_fixed_point_integers_exact():
    n = 2**127 - 1
    fp = FixedPoint(0)
    xs = np.array([0, 1, -1, 2**62, -(2**62), 123456789], dtype=np.int64)
    enc = fp.encode(xs, n)
    assert all(0 <= m < n for m in enc)
    assert enc[2] == n - 1
    assert fp.decode_ints(enc, n) == xs.tolist()
    fp8 = FixedPoint(8)
    assert fp8.decode(fp8.encode(np.array([3, -5]), n), n).tolist() == [3.0, -5.0]


def test_fixed_point_float_relative_precision():
    n = 2**1023 - 1
    fp = FixedPoint(80)
    xs = np.array([RNG.uniform(-1, 1) * 10 ** RNG.randint(-6, 12) for _ in range(200)] + [0.0, -0.0, 1e-9])
    got = fp.decode(fp.encode(xs, n), n)
    np.testing.assert_allclose(got, xs, rtol=1e-12, atol=0)


def test_fixed_point_overflow():
    fp = FixedPoint(4, max_bits=10)
    fp.to_ints([63.9375, -63.9375])  # 1023 / 16
    with pytest.raises(OverflowError):
        fp.to_ints([64.0])
    with pytest.raises(OverflowError):
        fp.to_ints(np.array([-64.0]))
    with pytest.raises(OverflowError):
        FixedPoint(0).encode([60], 101)  # |v| > n/2
    with pytest.raises(ValueError):
        FixedPoint(2).to_ints([float("nan")])


def test_signed():
    assert signed(0, 11) == 0 and signed(5, 11) == 5 and signed(6, 11) == -5 and signed(10, 11) == -1


# ---- packing ------------------------------------------------------------------------------------------
def test_packing_roundtrip_floats_and_ints(keys):
    pub, priv = keys
    s = PackingScheme.for_key(pub, slot_bits=64, value_bits=40, frac_bits=20)
    assert s.n_slots == 15
    xs = np.array([RNG.uniform(-1e5, 1e5) for _ in range(37)])
    pv = encrypt_packed(pub, s, xs)
    assert len(pv.ciphertexts) == 3
    np.testing.assert_allclose(decrypt_packed(priv, pv), xs, rtol=0, atol=2**-20)
    si = PackingScheme.for_key(pub, slot_bits=50, value_bits=30)  # non byte-aligned slots
    ints = [RNG.randrange(-(2**30) + 1, 2**30) for _ in range(45)]
    for key in (pub, priv, RandomnessPool(priv)):
        assert decrypt_packed_ints(priv, encrypt_packed(key, si, ints)) == ints


def test_packing_sums_and_scalar_vs_numpy(keys):
    pub, priv = keys
    s = PackingScheme.for_key(pub, slot_bits=64, value_bits=32, frac_bits=16)
    vecs = [np.array([RNG.uniform(-1000, 1000) for _ in range(20)]) for _ in range(5)]
    pvs = [encrypt_packed(pub, s, v, mode="short") for v in vecs]
    total = sum_packed(pub, pvs)
    np.testing.assert_allclose(decrypt_packed(priv, total), np.sum(vecs, axis=0), atol=5 * 2**-16)
    tripled = mul_packed(pub, pvs[0], 3)
    np.testing.assert_allclose(decrypt_packed(priv, tripled), 3 * vecs[0], atol=3 * 2**-16)
    with pytest.raises(ValueError):
        mul_packed(pub, pvs[0], -1)


def test_packing_overflow_boundary_is_exact(keys):
    """17 * 15 = 255 fits an 8-bit slot; an 18th addend would carry into the neighbour."""
    pub, priv = keys
    s = PackingScheme.for_key(pub, slot_bits=8, value_bits=3)
    vals = [7, -7, 7, 0, -7] * 3  # extremes: slot contents 15 and 1
    one = encrypt_packed(pub, s, vals, mode="short")
    assert one.max_slot == 15
    acc = sum_packed(pub, [one] * 17)
    assert acc.max_slot == 255
    assert decrypt_packed_ints(priv, acc) == [17 * v for v in vals]
    with pytest.raises(OverflowError):
        add_packed(pub, acc, one)
    with pytest.raises(OverflowError):
        sum_packed(pub, [one] * 18)
    with pytest.raises(OverflowError):
        mul_packed(pub, one, 18)
    assert decrypt_packed_ints(priv, mul_packed(pub, one, 17)) == [17 * v for v in vals]
    # the check is not conservative: bypassing it really corrupts the neighbouring slot
    raw = PackedVector(s, [pub.add(acc.ciphertexts[0], one.ciphertexts[0])], len(vals), 270, 18 * s.offset, 0)
    slots = decrypt_slots(priv, raw)
    assert slots[0] != 18 * 15 and slots[1] == 18 * 1 + 1  # carry from slot 0 lands in slot 1
    with pytest.raises(OverflowError):
        FixedPoint(0, 3).to_ints([8])
    with pytest.raises(OverflowError):
        encrypt_packed(pub, s, [8])


def test_mask_hides_unused_slots_and_unmask_recovers(keys):
    pub, priv = keys
    s = PackingScheme.for_key(pub, slot_bits=96, value_bits=32, frac_bits=10)
    xs = np.array([RNG.uniform(-100, 100) for _ in range(12)])  # 10 slots per ct -> 8 unused in ct 2
    pv = add_packed(pub, encrypt_packed(pub, s, xs), encrypt_packed(pub, s, xs))
    masked, m = mask(pub, pv, rng=secrets)
    assert masked.masked and masked.ciphertexts != pv.ciphertexts
    contents = decrypt_slots(priv, masked)  # what the key owner sees
    plain = decrypt_slots(priv, pv)
    mbits = pv.max_slot.bit_length() + 40
    for i in range(len(contents)):
        assert contents[i] != plain[i]
        assert plain[i] <= contents[i] < plain[i] + (1 << mbits)
    unused = contents[len(xs):]
    assert len(unused) == 8 and len(set(unused)) == 8 and all(u != pv.offset for u in unused)
    np.testing.assert_allclose(unmask(masked, m, contents), 2 * xs, atol=2**-9)
    assert unmask_ints(masked, m, contents) == decrypt_packed_ints(priv, pv)
    with pytest.raises(ValueError):
        decrypt_packed(priv, masked)
    with pytest.raises(ValueError):
        add_packed(pub, masked, masked)
    # a second masking of the same vector gives different slot contents
    again, _ = mask(pub, pv)
    assert decrypt_slots(priv, again) != contents


def test_mask_requires_headroom(keys):
    pub, _ = keys
    s = PackingScheme.for_key(pub, slot_bits=64, value_bits=32)
    pv = encrypt_packed(pub, s, [1, 2, 3], mode="short")
    with pytest.raises(OverflowError):
        mask(pub, pv)  # 33 + 40 bits > 64
    mask(pub, pv, stat_bits=30)


def test_packed_vector_dict_roundtrip(keys):
    pub, priv = keys
    s = PackingScheme.for_key(pub, slot_bits=64, value_bits=30, frac_bits=8)
    pv = encrypt_packed(pub, s, [1.5, -2.25, 3.0], mode="short")
    back = PackedVector.from_dict(pub, pv.to_dict(pub))
    assert back == pv
    np.testing.assert_array_equal(decrypt_packed(priv, back), [1.5, -2.25, 3.0])

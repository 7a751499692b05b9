from __future__ import annotations

import json
import random
import secrets

import numpy as np
import phe
import pytest

from lancelot.crypto import (
    FixedBaseTable,
    FixedPoint,
    PrivateKey,
    PublicKey,
    RandomnessPool,
    ciphertexts_from_str,
    ciphertexts_to_str,
    encrypted_dot,
    encrypted_dot_float,
    encrypted_matvec,
    from_phe,
    generate_keypair,
    multiexp,
    plaintexts_from_str,
    plaintexts_to_str,
    signed,
    to_phe,
)
from lancelot.crypto.serial import ciphertext_width

RNG = random.Random(1234)  # test data only; keys and encryption randomness come from secrets


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return generate_keypair(1024)


def test_keygen_sizes(keys):
    pub, priv = keys
    assert pub.n_bits == 1024
    assert priv.p != priv.q
    assert priv.p.bit_length() == priv.q.bit_length() == 512
    assert priv.p * priv.q == pub.n


def test_keygen_3072():
    pub, priv = generate_keypair(3072)
    assert pub.n_bits == 3072
    m = RNG.getrandbits(3000)
    assert priv.decrypt(priv.encrypt(m)) == m


def test_key_dicts_roundtrip_json(keys):
    pub, priv = keys
    priv.make_hs()  # owner publishes hs with the public key
    d = json.loads(json.dumps(pub.to_dict()))
    assert "p" not in d and "q" not in d
    pub2 = PublicKey.from_dict(d)
    assert priv.decrypt(pub.encrypt(9)) == 9
    assert pub2 == pub and pub2.hs == pub.hs
    priv2 = PrivateKey.from_dict(json.loads(json.dumps(priv.to_dict())), pub2)
    assert priv2 == priv
    c = pub2.encrypt(42)
    assert priv.decrypt(c) == 42
    with pytest.raises(ValueError):
        PrivateKey.from_dict(pub.to_dict())
    assert "hs" not in PublicKey(pub.n).to_dict()


def test_owner_fixed_base_rn_is_the_public_fixed_base_by_crt(keys):
    """The owner's CRT tables give exactly hs^a mod n^2, the public fixed base's value, for any a."""
    pub, priv = keys
    if pub.hs is None:
        priv.make_hs()
    for _ in range(5):
        a = secrets.randbits(pub.exponent_bits("full"))
        assert priv.rn_fixed_of(a) == pub.table.pow(a) == pow(pub.hs, a, pub.nsquare)
    ms = [RNG.getrandbits(1000) for _ in range(9)]
    assert priv.decrypt_many(priv.encrypt_many(ms, fixed_base=True)) == ms
    assert priv.decrypt_many(priv.encrypt_many(ms, workers=2, fixed_base=True)) == ms


def test_owner_crt_rn_matches_textbook(keys):
    pub, priv = keys
    for _ in range(5):
        r = RNG.randrange(2, pub.n)
        assert priv.rn_of(r) == pow(r, pub.n, pub.nsquare)


def test_fixed_base_table_matches_pow():
    mod = (2**127 - 1) * (2**89 - 1)
    base = 123456789
    t = FixedBaseTable(base, mod, 200)
    for a in [0, 1, 255, 256, 2**200 - 1] + [RNG.getrandbits(200) for _ in range(20)]:
        assert t.pow(a) == pow(base, a, mod)
    with pytest.raises(ValueError):
        t.pow(2**200)


@pytest.mark.parametrize("source", ["full", "short", "owner", "plain_rn", "pool"])
def test_encrypt_decrypt_roundtrip(keys, source):
    pub, priv = keys
    pool = RandomnessPool(pub, mode="full")
    for m in [0, 1, pub.n - 1, pub.n // 2] + [RNG.randrange(pub.n) for _ in range(10)]:
        if source in ("full", "short"):
            c = pub.encrypt(m, source)
        elif source == "owner":
            c = priv.encrypt(m)
        elif source == "plain_rn":
            c = pub.raw_encrypt(m, pub.random_rn_plain())
        else:
            c = pool.encrypt(m)
        assert 0 < c < pub.nsquare
        assert priv.decrypt(c) == m


def test_matches_textbook_formula(keys):
    pub, priv = keys
    m, r = RNG.randrange(pub.n), RNG.randrange(2, pub.n)
    expected = pow(pub.n + 1, m, pub.nsquare) * pow(r, pub.n, pub.nsquare) % pub.nsquare
    assert priv.raw_encrypt(m, r) == expected


def test_probabilistic(keys):
    pub, _ = keys
    assert pub.encrypt(5) != pub.encrypt(5)
    assert pub.encrypt(5, "short") != pub.encrypt(5, "short")


def test_homomorphic_sum_vs_numpy(keys):
    pub, priv = keys
    fp = FixedPoint(30)
    xs = np.array([RNG.uniform(-1000, 1000) for _ in range(20)])
    ys = np.array([RNG.uniform(-1000, 1000) for _ in range(20)])
    cx = [pub.encrypt(m) for m in fp.encode(xs, pub.n)]
    cy = [pub.encrypt(m, "short") for m in fp.encode(ys, pub.n)]
    sums = [pub.add(a, b) for a, b in zip(cx, cy)]
    got = fp.decode([priv.decrypt(c) for c in sums], pub.n)
    np.testing.assert_allclose(got, xs + ys, rtol=0, atol=2**-29)
    total = cx[0]
    for c in cx[1:]:
        total = pub.add(total, c)
    assert fp.decode([priv.decrypt(total)], pub.n)[0] == pytest.approx(xs.sum(), abs=1e-6)


def test_scalar_ops_and_rerandomise(keys):
    pub, priv = keys
    c = pub.encrypt(1000)
    assert signed(priv.decrypt(pub.mul_scalar(c, -7)), pub.n) == -7000
    assert priv.decrypt(pub.mul_scalar(c, 3)) == 3000
    assert signed(priv.decrypt(pub.neg(c)), pub.n) == -1000
    assert priv.decrypt(pub.add_plain(c, 5)) == 1005
    c2 = pub.rerandomise(c)
    assert c2 != c and priv.decrypt(c2) == 1000


def test_randomness_pool_hands_out_once(keys):
    pub, priv = keys
    pool = RandomnessPool(priv, auto_refill=False)
    pool.fill(6)
    assert len(pool) == 6
    vals = [pool.pop() for _ in range(6)]
    assert len(set(int(v) for v in vals)) == 6
    assert len(pool) == 0
    with pytest.raises(IndexError):
        pool.pop()
    for v in vals:  # each is an n-th residue: encrypts 0
        assert priv.decrypt(pub.raw_encrypt(0, v)) == 0


def test_randomness_pool_parallel(keys):
    pub, priv = keys
    for source in (pub, priv):
        pool = RandomnessPool(source, workers=2, auto_refill=False)
        pool.fill(8)
        vals = [int(pool.pop()) for _ in range(8)]
        assert len(set(vals)) == 8
        assert all(priv.decrypt(pub.raw_encrypt(7, v)) == 7 for v in vals)


def test_parallel_batches(keys):
    pub, priv = keys
    ms = [RNG.randrange(pub.n) for _ in range(8)]
    cs = pub.encrypt_many(ms, workers=2)
    assert priv.decrypt_many(cs, workers=2) == ms
    assert priv.decrypt_many(priv.encrypt_many(ms, workers=2)) == ms


def test_phe_interop_both_ways(keys):
    pub, priv = keys
    ppub, ppriv = to_phe(pub), to_phe(priv)
    assert ppub.n == pub.n and ppriv.p * ppriv.q == pub.n
    assert from_phe(ppub) == pub and from_phe(ppriv) == priv
    m = RNG.randrange(pub.n)
    # phe ciphertext -> lancelot
    assert priv.decrypt(ppub.raw_encrypt(m)) == m
    enc = ppub.encrypt(-12345)
    assert signed(priv.decrypt(enc.ciphertext(be_secure=True)), pub.n) == -12345
    # lancelot ciphertexts (all randomness sources) -> phe
    for c in (pub.encrypt(m), pub.encrypt(m, "short"), priv.encrypt(m)):
        assert ppriv.raw_decrypt(c) == m
    c = pub.encrypt(FixedPoint(0).encode([-99], pub.n)[0])
    assert ppriv.decrypt(phe.EncryptedNumber(ppub, c, 0)) == -99


def test_serialisation_roundtrip_fixed_width(keys):
    pub, _ = keys
    cts = [pub.encrypt(RNG.randrange(pub.n)) for _ in range(5)] + [1, pub.nsquare - 1]
    s = ciphertexts_to_str(pub, cts)
    assert isinstance(json.loads(json.dumps(s)), str)
    assert ciphertexts_from_str(pub, s) == cts
    w = ciphertext_width(pub)
    assert w == 256
    assert len(ciphertexts_to_str(pub, cts[:1])) == len(ciphertexts_to_str(pub, [1]))  # fixed width
    ms = [0, 1, pub.n - 1, RNG.randrange(pub.n)]
    assert plaintexts_from_str(pub, plaintexts_to_str(pub, ms)) == ms
    assert plaintexts_from_str(pub, plaintexts_to_str(pub, [])) == []
    with pytest.raises(ValueError):
        ciphertexts_to_str(pub, [pub.nsquare])
    with pytest.raises(ValueError):
        plaintexts_to_str(pub, [-1])
    with pytest.raises(ValueError):
        ciphertexts_from_str(pub, s[:-8])


def test_multiexp_vs_pow():
    mod = 2**521 - 1
    for n_terms, bits in [(3, 20), (50, 32), (300, 64), (40, 200)]:
        bases = [RNG.randrange(2, mod) for _ in range(n_terms)]
        exps = [RNG.getrandbits(bits) for _ in range(n_terms)]
        exps[0] = 0
        expected = 1
        for b, e in zip(bases, exps):
            expected = expected * pow(b, e, mod) % mod
        assert multiexp(bases, exps, mod) == expected
    assert multiexp([], [], mod) == 1
    with pytest.raises(ValueError):
        multiexp([3], [-1], mod)


@pytest.mark.parametrize("n_terms", [1, 5, 400, 1100])
def test_encrypted_dot_vs_integer_reference(keys, n_terms):
    pub, priv = keys
    ms = [RNG.randrange(-(2**40), 2**40) for _ in range(n_terms)]
    cts = [pub.encrypt(m % pub.n, "short") for m in ms]
    xs = np.array([RNG.randrange(-(2**31), 2**31) for _ in range(n_terms)], dtype=np.int64)
    expected = sum(int(x) * m for x, m in zip(xs, ms))
    assert signed(priv.decrypt(encrypted_dot(pub, cts, xs)), pub.n) == expected
    assert signed(priv.decrypt(encrypted_dot(pub, cts, [int(x) for x in xs])), pub.n) == expected
    assert signed(priv.decrypt(encrypted_dot(pub, cts, xs, workers=2)), pub.n) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_encrypted_matvec_vs_numpy(keys, workers):
    pub, priv = keys
    v = np.array([RNG.randrange(-1000, 1000) for _ in range(30)], dtype=np.int64)
    a = np.array([[RNG.randrange(-(2**20), 2**20) for _ in range(30)] for _ in range(4)], dtype=np.int64)
    cts = [pub.encrypt(int(x) % pub.n, "short") for x in v]
    out = encrypted_matvec(pub, cts, a, workers=workers)
    got = [signed(priv.decrypt(c), pub.n) for c in out]
    assert got == (a @ v).tolist()


def test_encrypted_dot_float(keys):
    pub, priv = keys
    fx = FixedPoint(20)
    x = np.array([RNG.uniform(-5, 5) for _ in range(50)])
    w = np.array([RNG.uniform(-2, 2) for _ in range(50)])
    cts = [pub.encrypt(m, "short") for m in fx.encode(x, pub.n)]
    c, frac = encrypted_dot_float(pub, cts, w, FixedPoint(24), ciphertext_frac_bits=fx.frac_bits)
    assert frac == 44
    got = FixedPoint(0).decode([priv.decrypt(c)], pub.n, frac_bits=frac)[0]
    assert got == pytest.approx(float(x @ w), abs=1e-4)

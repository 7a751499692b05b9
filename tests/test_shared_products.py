"""Cohort products on additive shares (lancelot.explore.shared): every party's step, run by hand,
against Python's exact integer sums over the cohort."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from lancelot.explore import shared


def _columns(rng, n, bits):
    cols = []
    for b in bits:
        if b <= 62:
            cols.append(rng.integers(0, 1 << b, n, dtype=np.int64))
        else:
            cols.append(np.array([int(rng.integers(0, 1 << 62)) << (b - 62) | 1 for _ in range(n)], dtype=object))
    return cols


def _exact(cols_a, rows_a, cols_b, rows_b):
    return {(i, j): sum(int(ca[r]) * int(cb[s]) for r, s in zip(rows_a, rows_b))
            for i, ca in enumerate(cols_a) for j, cb in enumerate(cols_b)}


@pytest.mark.parametrize("same_partner", [False, True])
def test_products_and_totals_equal_exact_integer_sums(same_partner):
    rng = np.random.default_rng(7)
    n_a, n_b, n_c = 900, 1300, 700
    bits_a, bits_b = [1, 1, 38, 70], [1, 20, 33]
    cols_a, cols_b = _columns(rng, n_a, bits_a), _columns(rng, n_b, bits_b)
    rows_a = rng.permutation(n_a)[:n_c]
    rows_b = rng.permutation(n_b)[:n_c]
    w = shared.limb_bits_for(max(n_a, n_b))
    lay_a, lay_b = shared.layout(bits_a, w), shared.layout(bits_b, w)
    # pair secrets (in the protocol each comes from X25519 between the two stations named)
    key = {name: secrets.token_bytes(32) for name in ("a-Pa", "b-Pb", "D2-Pb", "D3-Pa", "Pa-Pb")}
    # round 2: uploads; C aligns them
    big_a = shared.align(shared.upload(cols_a, bits_a, lay_a, key["a-Pa"], "a"), rows_a, lay_a.words)
    big_b = shared.align(shared.upload(cols_b, bits_b, lay_b, key["b-Pb"], "b"), rows_b, lay_b.words)
    # round 3: the partners' shares
    x_a = shared.partner_share(key["a-Pa"], "a", n_a, lay_a.words, rows_a)
    x_b = shared.partner_share(key["b-Pb"], "b", n_b, lay_b.words, rows_b)
    # term 2: A^T x_b (C with P_b, dealt by D2); term 3: B^T x_a (C with P_a, dealt by D3)
    s2, s3 = secrets.token_bytes(32), secrets.token_bytes(32)
    e2, q2 = shared.participant(x_b, shared.open_c_side(big_a, s2), key["D2-Pb"], "p|2")
    g2 = shared.dealer(s2, key["D2-Pb"], "p|2", n_c, lay_a.words, lay_b.words)
    e3, q3 = shared.participant(x_a, shared.open_c_side(big_b, s3), key["D3-Pa"], "p|3")
    g3 = shared.dealer(s3, key["D3-Pa"], "p|3", n_c, lay_b.words, lay_a.words)
    c = (big_a.T @ big_b) + shared.c_share(s2, e2, g2, lay_a.words) + shared.c_share(s3, e3, g3, lay_b.words).T
    if same_partner:  # P_a = P_b: the last term is local
        stations = q2 + q3.T + x_a.T @ x_b
    else:  # P_a and P_b: a Beaver product dealt by C, openings sealed between them, blinded by zero-sharing
        sa, sb = secrets.token_bytes(32), secrets.token_bytes(32)
        gamma_b = shared.c_deal(sa, sb, n_c, lay_a.words, lay_b.words)
        f, g = shared.station_open(x_a, sa, "a"), shared.station_open(x_b, sb, "b")
        z1, z2, z3 = shared.zero_shares(key["Pa-Pb"], "p", (lay_a.words, lay_b.words))
        round3 = [q3.T + z1, q2 + z2]
        round4 = [shared.station_share("a", sa, x_a, g) + z3,
                  shared.station_share("b", sb, x_b, f, gamma_b) - z1 - z2 - z3]
        for part in round3 + round4[:1]:  # each station message alone is uniform-looking, not a partial sum
            assert not np.array_equal(part, q3.T) and not np.array_equal(part, q2)
        stations = sum(round3) + sum(round4)
    row_bits = shared.row_bits_for(max(n_a, n_b))
    every = [(i, j) for i in range(len(bits_a)) for j in range(len(bits_b))]
    rel = shared.release_products(lay_a, lay_b, bits_a, bits_b, every, row_bits)
    assert rel.folded[every.index((0, 1))] and not rel.folded[every.index((3, 2))]  # 1+20 bits fold; 70+33 do not
    # every party folds its own share (linear modulo 2^64): the sum of the folds is the fold of the sum
    assert shared.unfold(shared.fold(c, rel) + shared.fold(stations, rel), rel) == _exact(cols_a, rows_a, cols_b, rows_b)
    some = [(0, 2), (3, 0)]
    rel = shared.release_products(lay_a, lay_b, bits_a, bits_b, some, row_bits)
    assert rel.size == 1 + lay_a.limbs[3]  # only what was asked for leaves the shares
    exact = _exact(cols_a, rows_a, cols_b, rows_b)
    assert shared.unfold(shared.fold(c + stations, rel), rel) == {p: exact[p] for p in some}
    tot = shared.release_totals(lay_a, bits_a, [0, 2, 3], row_bits)
    got = shared.unfold(shared.fold(big_a.sum(axis=0, dtype=np.uint64), tot)
                        + shared.fold(x_a.sum(axis=0, dtype=np.uint64), tot), tot)
    assert got == {i: sum(int(cols_a[i][r]) for r in rows_a) for i in (0, 2, 3)}


def test_uploaded_words_are_uniform_and_values_are_checked():
    lay = shared.layout([1], 20)
    words = shared.unpack(shared.upload([np.zeros(20000, dtype=np.int64)], [1], lay, secrets.token_bytes(32), "a"))
    assert abs(float(np.mean(words >> np.uint64(63))) - 0.5) < 0.02  # zeros come out with fair top bits
    with pytest.raises(ValueError, match="does not fit"):
        shared.encode([np.array([2])], [1], lay)
    with pytest.raises(ValueError, match="does not fit"):
        shared.encode([np.array([-1])], [1], lay)
    assert shared.limb_bits_for(10_000) == 24 and shared.limb_bits_for(2_000_000) == 21


# ---------------------------------------------------------------------------------------------------
# the station steps' own checks (what a station refuses whatever the coordinator sends)
# ---------------------------------------------------------------------------------------------------
import pandas as pd  # noqa: E402

from lancelot.crypto.pairkey import new_exchange_key  # noqa: E402
from lancelot.explore import masked  # noqa: E402
from lancelot.explore.steps import STATE_EXCHANGE, step_share_finish, step_share_products  # noqa: E402
from lancelot.policy import NodePolicy  # noqa: E402
from lancelot.runtime.errors import InputError, PrivacyError  # noqa: E402
from lancelot.runtime.state import JobState  # noqa: E402
from lancelot.runtime.station import StationContext  # noqa: E402

A, B, P = "registry", "gp_1", "gp_2"


def _station(tmp_path, name, k=10):
    ctx = StationContext(name, pd.DataFrame({"x": range(50)}), JobState(tmp_path / name), NodePolicy(min_cell_count=k))
    ctx.state.put(STATE_EXCHANGE, new_exchange_key()[0])
    return ctx


def _positions(rows, n_rows=60, bits=(1, 1)):
    keys = {s: new_exchange_key()[1] for s in (A, B, P)}
    return {"stations": [A, B, P], "keys": keys,
            "positions": {A: {"rows": masked.pack_rows(np.asarray(rows)), "n_rows": n_rows, "bits": list(bits),
                              "limb_bits": 20, "row_bits": 7, "totals": [0]}}}


def test_a_partner_refuses_unexpected_layouts_row_counts_and_columns(tmp_path):
    """(Too few, repeated or reused positions: tests/test_masked_totals.py, for both steps that take them.)"""
    other = _station(tmp_path, "other")
    for change, message in [({"bits": [1] * (shared.MAX_WORDS + 1)}, "unexpected shared layout"),
                            ({"limb_bits": 40}, "unexpected shared layout"),
                            ({"n_rows": 1 << 30}, "unexpected row count"), ({"totals": [5]}, "unknown columns"),
                            ({"rows": "not positions"}, "unreadable cohort positions")]:
        positions = _positions(range(12))
        with pytest.raises(InputError, match=message):
            step_share_products(other, {**positions, "stations": [A, B, P, "other"],
                                        "positions": {A: {**positions["positions"][A], **change}}})
    with pytest.raises(InputError, match="incomplete or malformed"):
        step_share_products(other, {**_positions(range(12)), "stations": [A, B, P, "other"],
                                    "positions": {B: {"rows": masked.pack_rows(np.arange(12))}}})


def test_a_station_refuses_products_over_a_small_cohort_unknown_stations_and_bad_matrices(tmp_path):
    p = _station(tmp_path, P, k=12)
    pair = {"id": "pair0", "a": A, "b": B, "pa": P, "pb": P, "n": 11, "bits": [[1, 1], [1, 1]], "limb_bits": 20,
            "row_bits": 7, "products": [[0, 0]], "dealer2": A, "dealer3": A}
    with pytest.raises(PrivacyError, match="at least 12"):
        step_share_products(p, {**_positions(range(12)), "pairs": [pair]})
    q = _station(tmp_path, A, k=12)
    with pytest.raises(InputError, match="unexpected station"):  # a dealer's participant outside the job
        step_share_products(q, {**_positions([])} | {"positions": {}, "pairs": [
            {**pair, "n": 12, "pb": "researcher", "deal2": "00" * 32}]})
    with pytest.raises(InputError, match="products of unknown columns"):
        step_share_products(q, {**_positions([])} | {"positions": {}, "pairs": [{**pair, "n": 12, "products": [[0, 2]]}]})
    r = _station(tmp_path, "r", k=12)
    payload = {**_positions(range(12)), "stations": [A, B, P, "r"]}
    with pytest.raises(InputError, match="no cohort positions of 'gp_1'"):  # P_b without b's positions
        step_share_products(r, {**payload, "positions": {}, "pairs": [{**pair, "n": 12, "pa": "r", "pb": "r",
                                                                      "open2": shared.pack(np.zeros((12, 2)))}]})
    with pytest.raises(InputError, match="holds no share of that pair"):  # round 4 only after this station's round 3
        step_share_finish(q, {"stations": [A, B, P], "keys": {}, "pairs": [{"id": "pair0", "sealed": ""}]})
